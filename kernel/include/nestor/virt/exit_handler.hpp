// The vendor-neutral exit handler: from a decoded VmExit and the guest's registers, decide
// what happens (complete the instruction, inject an exception, stop the guest). It has no
// hardware access and is tested on the host; the kernel's run loop applies the outcome.
//
// Nested virtualization: for a vCPU whose domain was accepted with nested virtualization
// (ExitEnvironment::nested_vcpu() not null) the handler asks the nested component's table about
// virtualization instructions, virtualization MSRs, CPUID and nested page faults. For every other
// vCPU it calls no nested code at all: SVM/VMX instructions #UD and virtualization MSRs #GP, as
// on a CPU without SVM/VMX.
#pragma once

#include "nestor/arch/vmx_vmcs.hpp"
#include "nestor/nested/nested_ops.hpp"
#include "nestor/virt/cpuid_policy.hpp"
#include "nestor/virt/device_bus.hpp"
#include "nestor/virt/exit.hpp"
#include "nestor/virt/exit_outcome.hpp"
#include "nestor/virt/mmio_access.hpp"
#include "nestor/virt/vcpu_state.hpp"
#include "nestor/virt/virt_ops.hpp"
#include "nestor/virt/xsave_policy.hpp"

namespace nestor::virt {

// MSRs a guest may touch without a #GP: reads return 0, writes are ignored.
inline constexpr u32 kMsrBiosSignId = 0x8B;  // microcode revision, read by every OS

// The MSRs of the virtualization interface. Without nested virtualization they #GP, except
// that IA32_FEATURE_CONTROL reads as locked with VMX off (kFeatureControlLockedNoVmx), as
// firmware leaves it on a machine with VMX disabled: guests (Windows among them) read it without
// a #GP handler, and Xen answers the same. Writing it #GPs, as writing a locked one does.
inline constexpr u32 kMsrFeatureControl = intel_vmx::vmx_msr::feature_control;  // IA32_FEATURE_CONTROL
inline constexpr u64 kFeatureControlLockedNoVmx = 1;                  // bit 0 LOCK; bits 1-2 (VMXON allowed) clear
inline constexpr u32 kMsrVmxBasic = intel_vmx::vmx_msr::vmx_basic;    // first VMX capability MSR (IA32_VMX_BASIC)
inline constexpr u32 kMsrVmxVmfunc = intel_vmx::vmx_msr::vmx_vmfunc;  // last VMX capability MSR (IA32_VMX_VMFUNC)
inline constexpr u32 kMsrVmCr = 0xC0010114;                           // AMD VM_CR
inline constexpr u32 kMsrVmHsavePa = 0xC0010117;                      // AMD VM_HSAVE_PA

bool is_virtualization_msr(u32 index);

// What the handler needs from the world outside the guest (the kernel or a test double). As a
// DeviceHost it is also what the VM's devices reach the world through (console_line).
class ExitEnvironment : public DeviceHost {
public:
    virtual CpuidValues host_cpuid(u32 leaf, u32 subleaf) = 0;
    // A hypercall whose instruction is already completed: the registers carry the call (see
    // sdk/include/nestor/abi/hypercall.h) and receive its result.
    virtual ExitOutcome hypercall(VcpuState& state) = 0;
    // The vCPU's nested state if its domain was accepted with NESTOR_DOMAIN_FLAG_NESTED_VIRT
    // (set up with nested_vcpu_initialise(), nestor/virt/platform_caps.hpp); nullptr otherwise,
    // and then the handler calls no nested code at all.
    virtual nested::NestedVcpu* nested_vcpu() { return nullptr; }
    // Ports the guest holds a capability for reach the real hardware through these, unless a
    // device on the VM's bus claims them (the bus decides first); every other port reads
    // all-ones and ignores writes.
    virtual bool port_held(u16 /*port*/, u8 /*size*/) { return false; }
    virtual u32 port_read(u16 /*port*/, u8 /*size*/) { return 0xFFFFFFFF; }
    virtual void port_write(u16 /*port*/, u8 /*size*/, u32 /*value*/) {}
    // The guest's CR4 and XCR0, which CPUID leaves 1, 7 and 0xD report (xsave_policy.hpp).
    virtual GuestXsaveControls guest_xsave_controls() { return {0, kXcr0X87}; }
    // An XSETBV the handler accepted: `xcr0` is the vCPU's XCR0 from now on.
    virtual void set_guest_xcr0(u64 /*xcr0*/) {}
    // A nested page fault hit a device's MMIO range: the instruction at the guest's CS:RIP,
    // decoded (decode_mmio_at_rip). An environment that reads no guest code cannot decode it, and
    // the guest stops with a report.
    virtual Result<MmioAccess, MmioDecodeError> decode_mmio(const VcpuState& /*state*/) {
        return fail(MmioDecodeError::unreadable);
    }
    // The guest touched an MSR nothing emulates (it gets #GP): for the log, once per MSR.
    virtual void unknown_msr(u32 /*index*/, bool /*write*/) {}

protected:
    ~ExitEnvironment() = default;
};

// Steps over the exiting instruction (RIP wraps at the code size); false if its length is unknown.
inline bool complete_instruction(const VmExit& exit, VcpuState& state) {
    if (exit.instruction_length == 0) return false;
    u64 next = state.rip + exit.instruction_length;
    switch (state.mode) {
    case CpuMode::real16:
    case CpuMode::protected16: next &= 0xFFFF; break;
    case CpuMode::protected32: next &= 0xFFFFFFFF; break;
    case CpuMode::long64: break;
    }
    state.rip = next;
    return true;
}

inline constexpr u8 kVectorUd = 6;
inline constexpr u8 kVectorGp = 13;

// Handles one exit. Completing an instruction advances state.rip by its length; an injected
// fault leaves RIP on the faulting instruction. Every CPUID is worked out through
// env.host_cpuid() and the policy. Port I/O, MSR accesses and nested page faults go first to the
// device on `bus` that claims their address (the VM's devices, vm_devices.hpp); no other exit
// looks at the bus.
ExitOutcome handle_exit(const VmExit& exit, VcpuState& state, DeviceBus& bus, ExitEnvironment& env);

// What a caller that keeps the vCPU's own state at hand (the kernel's run loop) passes along:
// it saves the exit path a virtual call and lets CPUID answer from the memo.
struct ExitContext {
    nested::NestedVcpu* nested;  // must be what env.nested_vcpu() returns
    CpuidMemo* cpuid;            // the vCPU's CPUID memo; nullptr: none
    // A PC's vCPU: its place in the domain's topology and the timing leaf; nullptr: bare platform.
    const CpuidTopology* topology = nullptr;
    // A PC's application processor: where its local APIC flags a pending INIT (Vcpu::init_pending).
    const bool* init_pending = nullptr;
};

// The handlers behind the dispatch below, each out of line: the dispatch inlines into the run
// loop, which then calls the one handler an exit needs (a call less per exit).
namespace exit_detail {
ExitOutcome handle_cpuid(const VmExit& exit, VcpuState& state, ExitEnvironment& env, const ExitContext& context);
// A hypercall's instruction is completed first, so the call sees (and may change) the RIP after it.
ExitOutcome handle_hypercall(const VmExit& exit, VcpuState& state, ExitEnvironment& env);
ExitOutcome handle_io(const VmExit& exit, VcpuState& state, DeviceBus& bus, ExitEnvironment& env);
// Every exit but the common three.
ExitOutcome handle_other_exit(const VmExit& exit, VcpuState& state, DeviceBus& bus, ExitEnvironment& env,
                              const ExitContext& context);
// An exit of L1's guest (L2) the nested component did not reflect into L1 itself: `decision` is
// its judgement (NestedVcpu::guest_exit), never Action::resume.
ExitOutcome handle_guest_mode_exit(nested::Decision decision, const VmExit& exit, VcpuState& state, DeviceBus& bus,
                                   ExitEnvironment& env, const ExitContext& context);

[[gnu::always_inline]] inline ExitOutcome dispatch_exit(const VmExit& exit, VcpuState& state, DeviceBus& bus,
                                                        ExitEnvironment& env, const ExitContext& context) {
    switch (exit.kind) {
    case ExitKind::cpuid: return handle_cpuid(exit, state, env, context);
    case ExitKind::hypercall: return handle_hypercall(exit, state, env);
    case ExitKind::io: return handle_io(exit, state, bus, env);
    default: return handle_other_exit(exit, state, bus, env, context);
    }
}
}  // namespace exit_detail

// handle_exit() for a vCPU with nested virtualization (context.nested set). While it runs L1's
// guest (L2) the exit is the nested component's to reflect, or not, into L1: its handler is
// called straight from here, and a reflected exit (Action::resume) needs nothing more.
[[gnu::always_inline]] inline ExitOutcome handle_nested_vcpu_exit(const VmExit& exit, VcpuState& state, DeviceBus& bus,
                                                                  ExitEnvironment& env, const ExitContext& context) {
    nested::NestedVcpu& nested = *context.nested;
    if (auto guest_exit = nested.guest_exit) {
        nested::Decision decision = guest_exit(nested, exit, state);
        if (decision.action == nested::Action::resume) return {};
        return exit_detail::handle_guest_mode_exit(decision, exit, state, bus, env, context);
    }
    return exit_detail::dispatch_exit(exit, state, bus, env, context);
}

// The same as above with the vCPU's context.
inline ExitOutcome handle_exit(const VmExit& exit, VcpuState& state, DeviceBus& bus, ExitEnvironment& env,
                               const ExitContext& context) {
    if (context.nested) return handle_nested_vcpu_exit(exit, state, bus, env, context);
    return exit_detail::dispatch_exit(exit, state, bus, env, context);
}

}  // namespace nestor::virt
