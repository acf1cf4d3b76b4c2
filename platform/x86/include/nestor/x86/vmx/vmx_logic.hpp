// The VMX backend's pure logic, with no hardware access, built into the kernel and unchanged into
// the host unit tests: control adjustment against the capability MSRs, control-register fixed
// bits, the initial guest state of each InitialMode, event injection and exit decoding.
#pragma once

#include "nestor/lib/result.hpp"
#include "nestor/virt/exit.hpp"
#include "nestor/virt/vcpu_state.hpp"
#include "nestor/x86/vmx/vmcs.hpp"

namespace nestor::x86::vmx {

enum class ControlError : u8 {
    not_allowed,       // a wanted bit may not be 1 on this CPU
    inconsistent_msr,  // the MSR requires a bit (allowed-0) that it does not allow (allowed-1)
};

// A VMX control value from the bits we want and the capability MSR of that control: its low
// half holds the allowed-0 settings (a 1 there: the bit must be 1), its high half the allowed-1
// settings (a 0 there: the bit must be 0). Required bits are added; a wanted bit that may not be
// 1 is an error, never silently dropped.
Result<u32, ControlError> adjust_controls(u32 wanted, u64 msr_value);

// Whether every bit of `bits` may be 1 according to the capability MSR.
constexpr bool controls_allowed(u64 msr_value, u32 bits) { return (static_cast<u32>(msr_value >> 32) & bits) == bits; }

// The capability MSR to read for a control: its TRUE_ variant when IA32_VMX_BASIC bit 55 says
// it exists (the TRUE_ MSRs may allow default-1 bits to be 0).
constexpr u32 control_msr(u64 basic, u32 plain_msr, u32 true_msr) {
    return (basic & basic::true_controls) ? true_msr : plain_msr;
}

// IA32_VMX_CR0/CR4_FIXED0 (bits that must be 1) and FIXED1 (bits that may be 1).
struct CrFixed {
    u64 fixed0;
    u64 fixed1;
};

// A guest control register: the value in the VMCS, the guest/host mask (bits the host owns) and
// the read shadow (what the guest reads for those bits).
struct GuestCr {
    u64 value;
    u64 mask;
    u64 shadow;
};

// The guest control register for `guest_view` (what the guest shall see): the fixed bits are
// forced in the real value and hidden behind mask and shadow; `exempt` bits are not forced (CR0.PE
// and PG under unrestricted guest). Fails if the guest view has a bit that may not be 1.
bool guest_control_register(u64 guest_view, CrFixed fixed, u64 exempt, GuestCr& out);

// The host's control register with the fixed bits applied; false if it has a bit that may not be 1.
bool host_control_register(u64 value, CrFixed fixed, u64& out);

struct SegmentState {
    u16 selector;
    u64 base;
    u32 limit;
    u32 access_rights;  // VMCS format, access_rights::*
};

// The architectural state a vCPU starts with in each InitialMode (guest view of CR0/CR4).
struct InitialGuestState {
    SegmentState es, cs, ss, ds, fs, gs, ldtr, tr;
    u64 gdtr_base;
    u32 gdtr_limit;
    u64 idtr_base;
    u32 idtr_limit;
    u64 cr0, cr3, cr4;
    u64 efer;
    u64 rflags;
    bool ia32e_mode;  // the "IA-32e mode guest" VM-entry control
};

// False for modes a vCPU cannot start in (protected16).
bool initial_guest_state(virt::CpuMode mode, u64 cr3, InitialGuestState& out);

// The mode the guest's code segment decodes in (cr0 as the guest has it, efer, rflags, CS
// access rights).
virt::CpuMode guest_mode(u64 cr0, u64 efer, u64 rflags, u32 cs_access_rights);

// Whether the architecture pushes an error code for this exception vector in protected mode.
constexpr bool exception_has_error_code(u8 vector) {
    return vector == 8 || (vector >= 10 && vector <= 14) || vector == 17 || vector == 21;
}

// The VM-entry interruption-information value injecting hardware exception `vector`. Whether an
// error code is delivered follows the architecture (VM entry checks it): only in protected mode
// and only for vectors that push one.
u32 exception_injection(u8 vector, bool protected_mode);

// DR6 after a #DB that exited. A VM exit for #DB leaves DR6 as it was; the exit qualification
// says what the CPU would have set (debug_qual). As KVM does: B0-B3 become the qualification's,
// BD and BS are added, RTM (active low) cleared when the qualification has it, the bits that
// read as 1 set, bit 12 and the high half clear.
u64 dr6_after_debug_exit(u64 dr6, u64 qualification);

// A machine check that struck the guest (an intercepted #MC) or its VM entry: the host's.
bool is_machine_check(u32 reason, u32 interruption_info);

// What a VM exit left in the VMCS's exit-information fields.
struct RawExit {
    u32 reason;  // with bit 31 for VM-entry failures
    u64 qualification;
    u32 instruction_length;
    u32 interruption_info;
    u32 interruption_error_code;
    u64 guest_physical;
};

// The exits whose handling needs nothing of the VMCS's exit information but the reason and the
// instruction length (with the guest's state). An exit an instruction causes comes after any
// event delivery, so its IDT-vectoring information is never valid (SDM 28.2.4); these are
// decoded without their qualification, which is 0 or unused (SDM 28.2.1), or read where it is
// needed: a CR access's by its emulation, a VMX instruction's by the nested component. `reason`
// is the exit reason field: an entry failure (bit 31) is none of them.
constexpr bool decoded_from_state_alone(u32 reason) {
    switch (reason) {
    case exit_reason::cpuid:
    case exit_reason::vmcall:
    case exit_reason::hlt:
    case exit_reason::rdmsr:
    case exit_reason::wrmsr:
    case exit_reason::xsetbv:
    case exit_reason::cr_access:
    case exit_reason::vmclear:
    case exit_reason::vmlaunch:
    case exit_reason::vmptrld:
    case exit_reason::vmptrst:
    case exit_reason::vmread:
    case exit_reason::vmresume:
    case exit_reason::vmwrite:
    case exit_reason::vmxoff:
    case exit_reason::vmxon:
    case exit_reason::invept:
    case exit_reason::invvpid: return true;
    default: return false;
    }
}

// An OUT/IN/INS/OUTS from its exit qualification; the value is RAX masked to the size.
virt::IoExit decode_io(u64 qualification, u64 rax);

// The neutral exit; `state` holds the guest's registers after the exit (RCX, RAX, RDX for MSRs
// and I/O).
virt::VmExit decode_exit(const RawExit& raw, const virt::VcpuState& state);

// The exit for a VMLAUNCH/VMRESUME that failed (VMfailValid with its VM-instruction error, or
// VMfailInvalid: error 0).
virt::VmExit entry_instruction_failure(u32 instruction_error);

// A name for a VM-instruction error number, for reports.
const char* instruction_error_name(u32 error);

}  // namespace nestor::x86::vmx
