// L1's VMX instructions (SDM vol. 3C ch. 31), each with the checks of its pseudo-code in the
// pseudo-code's order: the #UD cases (CR0.PE, RFLAGS.VM, compatibility mode, CR4.VMXE / VMX
// operation), #GP for CPL > 0 and VMXON's fixed bits and FEATURE_CONTROL, the memory operand's
// segment and canonical checks (#GP / #SS), then VMfailInvalid / VMfailValid with the SDM's
// VM-instruction error number. They run for L1 in VMX root operation only: L2's VMX instructions
// exit to L1 (vmx_l2.hpp).
//
// Pure code over the kernel's Host (L1's memory, L0's memory for the cache) and the backend's
// NestedHardware (L1's paging, an #SS), so the host unit tests drive it with fakes.
#pragma once

#include "../nested_component.hpp"
#include "vmcs12.hpp"
#include "vmx_operand.hpp"

namespace nestor::nested::vmx {

inline constexpr u64 kNoCurrentVmcs = ~u64{0};

enum class Outcome : u8 {
    succeed,       // VMsucceed: CF, PF, AF, ZF, SF, OF cleared
    fail_invalid,  // VMfailInvalid: CF set, the others cleared
    fail_valid,    // VMfailValid: ZF set, the others cleared, `error` in the current VMCS
    undefined_opcode,
    general_protection,
    stack_fault,  // #SS(0): a memory operand through SS
    page_fault,   // #PF: L1's paging refuses the memory operand at `address` (`error`: the error code)
    stop,         // stop the domain: `report` says why
    enter_l2,     // VMLAUNCH (`error` 1) / VMRESUME (0) passed its checks: run L2 (vmx_l2.hpp)
};

struct Result {
    Outcome outcome;
    u32 error;           // fail_valid: the VM-instruction error number; page_fault: the error code
    const char* report;  // stop
    u64 address = 0;     // page_fault: the linear address (CR2)
};

// Everything one VMX instruction works on; `cpu` was read once at the exit.
struct InstructionContext {
    VmxVcpu& vmx;
    Host& host;
    x86::vmx::NestedHardware& hardware;
    const L1Cpu& cpu;
    virt::VcpuState& state;
};

// Runs the VMX instruction whose exit reason is `reason` (19-27, 50, 53); writes what it
// architecturally writes (registers, L1 memory, the cached VMCS, its instruction-error field)
// but RFLAGS, which apply_flags sets from the result.
Result execute(u64 reason, InstructionContext& context);
void apply_flags(const Result& result, virt::VcpuState& state);

// Leaves VMX operation (VMXOFF, a reset, the vCPU's end): the current VMCS is written back to
// L1's memory and the cache goes back to L0.
void leave_vmx_operation(VmxVcpu& vmx, Host& host);

}  // namespace nestor::nested::vmx
