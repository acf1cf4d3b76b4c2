// The VMX capabilities nested VMX offers an L1: the capability MSRs (SDM appendix A) as one
// table. L1's RDMSR of them returns these values, and the checks of the VMX instructions
// (VMXON's CR0/CR4 fixed bits, the VM-entry checks on controls, INVEPT / INVVPID types) use the
// same table, so what L1 is told and what it is held to cannot disagree. It describes what the
// component implements (or, for running L2, will implement), nothing more: no feature is offered
// because the CPU has it.
#pragma once

#include "nestor/lib/types.hpp"
#include "nestor/x86/vmx/nested_hardware.hpp"

namespace nestor::nested::vmx {

// A VM-execution / exit / entry control MSR: the allowed-0 settings (bits that must be 1) in
// its low half, the allowed-1 settings (bits that may be 1) in its high half.
struct ControlCapability {
    u32 must_be_one;
    u32 may_be_one;

    constexpr u64 msr() const { return (u64{may_be_one} << 32) | must_be_one; }
    constexpr bool allows(u32 value) const { return (value & must_be_one) == must_be_one && !(value & ~may_be_one); }
};

struct Capabilities {
    u64 basic;
    // The plain MSRs report the default1 controls as fixed; the TRUE_ ones (BASIC bit 55) say
    // which of them may be 0, and are the ones VM entry checks against.
    ControlCapability pin, true_pin;
    ControlCapability primary, true_primary;
    ControlCapability secondary;
    ControlCapability exit, true_exit;
    ControlCapability entry, true_entry;
    u64 misc;
    u64 cr0_fixed0, cr0_fixed1;
    u64 cr4_fixed0, cr4_fixed1;
    u64 ept_vpid_cap;
};

const Capabilities& capabilities();

// IA32_FEATURE_CONTROL as L1 reads it: locked by "firmware" with VMX allowed outside SMX.
u64 feature_control();

// The CR4 bits of features L0 does not offer L1 (which L0 owns in every guest, as it owns
// VMXE): fixed to 0 for L1 and its L2s, whatever the table allows.
inline u64 cr4_not_offered(const x86::vmx::L0Controls& l0) { return l0.cr4_mask & ~l0.cr4_fixed0; }

// The value of the capability MSR `index` (0x480-0x491) as L1 reads it, CR4 FIXED1 without
// `cr4_not_offered`; false for one of that range this configuration does not have
// (IA32_VMX_VMFUNC: VM functions are not offered), which #GPs as on such a CPU.
bool capability_msr(u32 index, u64 cr4_not_offered, u64& value);

// VMXON's and VM entry's test of a control register against a FIXED0 / FIXED1 pair.
constexpr bool fixed_bits_hold(u64 value, u64 fixed0, u64 fixed1) {
    return (value & fixed0) == fixed0 && !(value & ~fixed1);
}

}  // namespace nestor::nested::vmx
