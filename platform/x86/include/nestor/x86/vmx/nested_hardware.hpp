// The contract between the VMX backend and the nested VMX component (components/nested/vmx): what
// the backend lends the component for a vCPU of a domain with nested virtualization, as the SVM
// backend lends nested SVM its NestedHardware (nestor/x86/svm/nested_hardware.hpp). The kernel
// only passes it along, opaque (InitialMode::nested_hardware, NestedVcpu::hardware).
//
// So far it serves L1's VMX instructions: what the exit recorded of the instruction (its
// qualification and instruction information), the part of L1's CPU an instruction is checked
// against (segments, CR4 as L1 sees it, interruptibility), L1's own paging for its memory
// operands, and the exceptions the kernel's Decision cannot name (#SS). The operations are
// virtual, so a NESTED_VIRT=MODULE component reaches them through this table, never a symbol.
// They read the VMCS of the vCPU whose exit is being handled.
#pragma once

#include "nestor/lib/types.hpp"

namespace nestor::x86::vmx {

// One of L1's segment registers as the VMCS holds it (access rights in VMCS format: type in bits
// 3:0, S 4, DPL 6:5, P 7, D/B 14, unusable 16).
struct GuestSegment {
    u64 base;
    u32 limit;
    u32 access_rights;
};

// What a VMX-instruction exit recorded: the displacement of a memory operand (the exit
// qualification) and the VM-exit instruction-information field (SDM 28.2.5).
struct InstructionExit {
    u64 qualification;
    u32 information;
};

class NestedHardware {
public:
    virtual InstructionExit instruction_exit() = 0;
    // ES, CS, SS, DS, FS, GS for 0-5 (the instruction-information field's numbering).
    virtual GuestSegment segment(u32 index) = 0;
    // CR4 as L1 sees it: the read shadow for the bits L0 owns (VMXE is always set in the real one).
    virtual u64 cr4() = 0;
    virtual u64 interruptibility() = 0;  // the guest interruptibility state (STI, MOV SS blocking)
    // The guest-physical address of L1's linear `linear` through L1's own paging (with L1's `efer`);
    // false if L1's tables do not map it. Permissions are not checked.
    virtual bool translate(u64 linear, u64 efer, u64& guest_physical) = 0;
    // Delivers `vector` with `error_code` to L1 at its next entry, on the instruction that exited.
    virtual void inject_exception(u8 vector, u32 error_code) = 0;
    virtual u32 physical_address_bits() = 0;  // MAXPHYADDR as L1's CPUID reports it

protected:
    NestedHardware() = default;
    ~NestedHardware() = default;
    NestedHardware(const NestedHardware&) = delete;
    NestedHardware& operator=(const NestedHardware&) = delete;
};

}  // namespace nestor::x86::vmx
