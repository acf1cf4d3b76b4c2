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

#include "nestor/nested/nested_ops.hpp"
#include "nestor/virt/cpuid_policy.hpp"
#include "nestor/virt/exit.hpp"
#include "nestor/virt/vcpu_state.hpp"
#include "nestor/virt/virt_ops.hpp"
#include "nestor/virt/xsave_policy.hpp"

namespace nestor::virt {

// The guest's own exit port (like QEMU's isa-debug-exit): OUT writes the guest's exit status.
inline constexpr u16 kGuestExitPort = 0xF4;
// The guest console: a 16550 at COM1; THR writes are printed line by line.
inline constexpr u16 kGuestConsolePort = 0x3F8;
inline constexpr u16 kGuestConsoleLcr = 0x3FB;
inline constexpr u16 kGuestConsolePorts = 8;  // 0x3F8-0x3FF: the emulated 16550
inline constexpr u8 kConsoleLcrDivisorLatch = 0x80;
inline constexpr u16 kGuestConsoleLsr = 0x3FD;
inline constexpr u8 kConsoleLsrIdle = 0x60;  // THR empty and transmitter idle

// MSRs a guest may touch without a #GP: reads return 0, writes are ignored.
inline constexpr u32 kMsrBiosSignId = 0x8B;  // microcode revision, read by every OS

// The MSRs of the virtualization interface. Without nested virtualization they #GP, except
// that IA32_FEATURE_CONTROL reads as locked with VMX off (kFeatureControlLockedNoVmx), as
// firmware leaves it on a machine with VMX disabled: guests (Windows among them) read it without
// a #GP handler, and Xen answers the same. Writing it #GPs, as writing a locked one does.
inline constexpr u32 kMsrFeatureControl = 0x3A;       // IA32_FEATURE_CONTROL
inline constexpr u64 kFeatureControlLockedNoVmx = 1;  // bit 0 LOCK; bits 1-2 (VMXON allowed) clear
inline constexpr u32 kMsrVmxBasic = 0x480;            // first VMX capability MSR (IA32_VMX_BASIC)
inline constexpr u32 kMsrVmxVmfunc = 0x491;           // last VMX capability MSR (IA32_VMX_VMFUNC)
inline constexpr u32 kMsrVmCr = 0xC0010114;           // AMD VM_CR
inline constexpr u32 kMsrVmHsavePa = 0xC0010117;      // AMD VM_HSAVE_PA

bool is_virtualization_msr(u32 index);

enum class StopReason : u8 {
    none,
    exit_port,          // OUT to kGuestExitPort; status = the value written
    halted,             // HLT
    triple_fault,       // shutdown
    bad_memory_access,  // nested page fault
    invalid_state,      // the hardware refused the guest state
    undecodable,        // an exit that needs the instruction length, which is unknown
    unsupported,        // an exit the kernel cannot emulate yet (string I/O, ...)
    unknown_exit,
    exit_limit,     // too many exits (set by the run loop)
    shutdown,       // the shutdown hypercall, or the domain was destroyed
    watchdog,       // ran too many time slices without an exit (set by the run loop)
    waits_forever,  // waits for a signal, and no running domain could send one (set by the run loop)
};

const char* stop_reason_name(StopReason reason);

// Line-buffered guest console output.
struct GuestConsole {
    static constexpr usize kLineCapacity = 120;
    char line[kLineCapacity + 1];
    usize length;
    u8 line_control;  // the UART's LCR, for its divisor-latch bit
};

// The flags first and no padding anywhere (the flags fill their word): "carry on" ({}) is three
// 8-byte stores, and every exit returns one.
struct ExitOutcome {
    bool stop = false;
    StopReason reason = StopReason::none;
    bool inject = false;
    u8 vector = 0;
    bool has_error_code = false;
    bool yield = false;  // the guest gave up the rest of its time slice
    bool wait = false;   // the guest halted with interrupts enabled: it waits for an event
    u8 reserved = 0;     // fills the flags' word, so that it is stored whole
    u32 status = 0;      // the guest's exit status (stop only; non-zero for every abnormal stop)
    u32 error_code = 0;
    const char* detail = nullptr;  // stop: a sentence saying why, for the log (e.g. from the nested component)
};
static_assert(sizeof(ExitOutcome) == 24 && __builtin_offsetof(ExitOutcome, status) == 8);

// What the handler needs from the world outside the guest (the kernel or a test double).
class ExitEnvironment {
public:
    virtual CpuidValues host_cpuid(u32 leaf, u32 subleaf) = 0;
    // One complete guest console line, without the newline.
    virtual void console_line(const char* text, usize length) = 0;
    // A hypercall whose instruction is already completed: the registers carry the call (see
    // sdk/include/nestor/abi/hypercall.h) and receive its result.
    virtual ExitOutcome hypercall(VcpuState& state, GuestConsole& console) = 0;
    // The vCPU's nested state if its domain was accepted with NESTOR_DOMAIN_FLAG_NESTED_VIRT
    // (set up with nested_vcpu_initialise(), nestor/virt/platform_caps.hpp); nullptr otherwise,
    // and then the handler calls no nested code at all.
    virtual nested::NestedVcpu* nested_vcpu() { return nullptr; }
    // Ports the guest holds a capability for (never the emulated console or exit port) reach
    // the real hardware through these; every other port reads all-ones and ignores writes.
    virtual bool port_held(u16 /*port*/, u8 /*size*/) { return false; }
    virtual u32 port_read(u16 /*port*/, u8 /*size*/) { return 0xFFFFFFFF; }
    virtual void port_write(u16 /*port*/, u8 /*size*/, u32 /*value*/) {}
    // The guest's CR4 and XCR0, which CPUID leaves 1, 7 and 0xD report (xsave_policy.hpp).
    virtual GuestXsaveControls guest_xsave_controls() { return {0, kXcr0X87}; }
    // An XSETBV the handler accepted: `xcr0` is the vCPU's XCR0 from now on.
    virtual void set_guest_xcr0(u64 /*xcr0*/) {}

protected:
    ~ExitEnvironment() = default;
};

inline constexpr u8 kVectorUd = 6;
inline constexpr u8 kVectorGp = 13;

// Handles one exit. Completing an instruction advances state.rip by its length; an injected
// fault leaves RIP on the faulting instruction. Every CPUID is worked out through
// env.host_cpuid() and the policy.
ExitOutcome handle_exit(const VmExit& exit, VcpuState& state, GuestConsole& console, ExitEnvironment& env);

// What a caller that keeps the vCPU's own state at hand (the kernel's run loop) passes along:
// it saves the exit path a virtual call and lets CPUID answer from the memo.
struct ExitContext {
    nested::NestedVcpu* nested;  // must be what env.nested_vcpu() returns
    CpuidMemo* cpuid;            // the vCPU's CPUID memo; nullptr: none
};

// The handlers behind the dispatch below, each out of line: the dispatch inlines into the run
// loop, which then calls the one handler an exit needs (a call less per exit).
namespace exit_detail {
ExitOutcome handle_cpuid(const VmExit& exit, VcpuState& state, ExitEnvironment& env, const ExitContext& context);
// A hypercall's instruction is completed first, so the call sees (and may change) the RIP after it.
ExitOutcome handle_hypercall(const VmExit& exit, VcpuState& state, GuestConsole& console, ExitEnvironment& env);
ExitOutcome handle_io(const VmExit& exit, VcpuState& state, GuestConsole& console, ExitEnvironment& env);
// Every exit but the common three.
ExitOutcome handle_other_exit(const VmExit& exit, VcpuState& state, GuestConsole& console, ExitEnvironment& env,
                              nested::NestedVcpu* nested);
// An exit of L1's guest (L2) the nested component did not reflect into L1 itself: `decision` is
// its judgement (NestedVcpu::guest_exit), never Action::resume.
ExitOutcome handle_guest_mode_exit(const nested::Decision& decision, const VmExit& exit, VcpuState& state,
                                   GuestConsole& console, ExitEnvironment& env, const ExitContext& context);

[[gnu::always_inline]] inline ExitOutcome dispatch_exit(const VmExit& exit, VcpuState& state, GuestConsole& console,
                                                        ExitEnvironment& env, const ExitContext& context) {
    switch (exit.kind) {
    case ExitKind::cpuid: return handle_cpuid(exit, state, env, context);
    case ExitKind::hypercall: return handle_hypercall(exit, state, console, env);
    case ExitKind::io: return handle_io(exit, state, console, env);
    default: return handle_other_exit(exit, state, console, env, context.nested);
    }
}
}  // namespace exit_detail

// handle_exit() for a vCPU with nested virtualization (context.nested set). While it runs L1's
// guest (L2) the exit is the nested component's to reflect, or not, into L1: its handler is
// called straight from here, and a reflected exit (Action::resume) needs nothing more.
[[gnu::always_inline]] inline ExitOutcome handle_nested_vcpu_exit(const VmExit& exit, VcpuState& state,
                                                                  GuestConsole& console, ExitEnvironment& env,
                                                                  const ExitContext& context) {
    nested::NestedVcpu& nested = *context.nested;
    if (auto guest_exit = nested.guest_exit) {
        nested::Decision decision = guest_exit(nested, exit, state);
        if (decision.action == nested::Action::resume) return {};
        return exit_detail::handle_guest_mode_exit(decision, exit, state, console, env, context);
    }
    return exit_detail::dispatch_exit(exit, state, console, env, context);
}

// The same as above with the vCPU's context.
inline ExitOutcome handle_exit(const VmExit& exit, VcpuState& state, GuestConsole& console, ExitEnvironment& env,
                               const ExitContext& context) {
    if (context.nested) return handle_nested_vcpu_exit(exit, state, console, env, context);
    return exit_detail::dispatch_exit(exit, state, console, env, context);
}

// Flushes a partial console line (when the guest stops).
void flush_console(GuestConsole& console, ExitEnvironment& env);
// Adds one byte to the console line, flushing it at a newline or when full.
void console_put(GuestConsole& console, ExitEnvironment& env, u8 byte);

}  // namespace nestor::virt
