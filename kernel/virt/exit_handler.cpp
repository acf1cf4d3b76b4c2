#include "nestor/virt/exit_handler.hpp"

#include "nestor/abi/errors.h"
#include "nestor/virt/cpuid_policy.hpp"

namespace nestor::virt {
namespace {

constexpr u32 kAbnormalStatus = 1;  // the exit status of a guest stopped for cause

ExitOutcome stop(StopReason reason, u32 status = kAbnormalStatus) {
    ExitOutcome out;
    out.stop = true;
    out.reason = reason;
    out.status = status;
    return out;
}

ExitOutcome inject(u8 vector, bool has_error_code = false, u32 error_code = 0) {
    ExitOutcome out;
    out.inject = true;
    out.vector = vector;
    out.has_error_code = has_error_code;
    out.error_code = error_code;
    return out;
}

bool complete(const VmExit& exit, VcpuState& state) { return complete_instruction(exit, state); }

u32 low_bits(u64 value, u8 size) {
    return size >= 4 ? static_cast<u32>(value) : static_cast<u32>(value & ((u64{1} << (8 * size)) - 1));
}

// Writes an IN result into RAX as the hardware would: AL/AX merge, EAX zero-extends.
void write_in_result(VcpuState& state, u8 size, u32 value) {
    u64& rax = state.rax();
    if (size == 1)
        rax = (rax & ~u64{0xFF}) | (value & 0xFF);
    else if (size == 2)
        rax = (rax & ~u64{0xFFFF}) | (value & 0xFFFF);
    else
        rax = value;
}

// A device's access that did not simply complete: a fault leaves the instruction undone; a stop
// completes it (the guest's last instruction did what it asked) after every device on the bus
// has handed on what it holds.
[[gnu::noinline]] ExitOutcome device_stop_or_fault(const VmExit& exit, VcpuState& state, DeviceOutcome outcome,
                                                   DeviceBus& bus, ExitEnvironment& env) {
    if (outcome.action == DeviceOutcome::Action::fault)
        return inject(outcome.vector, outcome.has_error_code, outcome.code);
    bus.flush(env);
    if (!complete(exit, state)) return stop(StopReason::undecodable);
    return stop(outcome.reason, outcome.code);
}

ExitOutcome finish_device_access(const VmExit& exit, VcpuState& state, DeviceOutcome outcome, DeviceBus& bus,
                                 ExitEnvironment& env) {
    if (outcome.action != DeviceOutcome::Action::complete) [[unlikely]]
        return device_stop_or_fault(exit, state, outcome, bus, env);
    if (!complete(exit, state)) return stop(StopReason::undecodable);
    return {};
}

ExitOutcome device_io(const VmExit& exit, VcpuState& state, Device& device, DeviceBus& bus, ExitEnvironment& env) {
    const IoExit& io = exit.io;
    DeviceOutcome outcome;
    if (io.direction == IoDirection::out) {
        outcome = device.io_write(io.port, io.size, low_bits(io.value, io.size), env);
    } else {
        u32 value = 0xFFFFFFFF;
        outcome = device.io_read(io.port, io.size, value, env);
        if (outcome.action != DeviceOutcome::Action::fault) write_in_result(state, io.size, value);
    }
    return finish_device_access(exit, state, outcome, bus, env);
}

// A port is the bus's device's if one claims it, else the hardware's if the guest holds it,
// else nothing's: reads float high (all-ones) and writes go nowhere.
ExitOutcome handle_io_exit(const VmExit& exit, VcpuState& state, DeviceBus& bus, ExitEnvironment& env) {
    const IoExit& io = exit.io;
    if (io.string) return stop(StopReason::unsupported);
    if (const BusRange<u16>* range = bus.port_range(io.port)) return device_io(exit, state, *range->device, bus, env);
    if (env.port_held(io.port, io.size)) {
        if (io.direction == IoDirection::out)
            env.port_write(io.port, io.size, low_bits(io.value, io.size));
        else
            write_in_result(state, io.size, env.port_read(io.port, io.size));
    } else if (io.direction == IoDirection::in) {
        write_in_result(state, io.size, 0xFFFFFFFF);
    }
    if (!complete(exit, state)) return stop(StopReason::undecodable);
    return {};
}

bool msr_allowed(u32 index) { return index == kMsrBiosSignId; }

// EFER is the guest's own (VcpuState::efer), written as efer_after_write says.
ExitOutcome handle_efer(const VmExit& exit, VcpuState& state) {
    if (exit.kind == ExitKind::msr_write) {
        u64 efer = 0;
        if (!efer_after_write(state.efer, state.cr0, exit.msr.value, efer)) return inject(kVectorGp, true, 0);
        if (!complete(exit, state)) return stop(StopReason::undecodable);
        state.efer = efer;
        return {};
    }
    if (!complete(exit, state)) return stop(StopReason::undecodable);
    state.rax() = state.efer & 0xFFFFFFFF;
    state.rdx() = state.efer >> 32;
    return {};
}

void set_edx_eax(VcpuState& state, u64 value) {
    state.rax() = value & 0xFFFFFFFF;
    state.rdx() = value >> 32;
}

// The rule for every guest without nested virtualization (and for MSRs the component leaves to
// the kernel): EFER is the guest's own, the virtualization interface is absent, the allow-list
// reads 0 and ignores writes.
ExitOutcome plain_msr(const VmExit& exit, VcpuState& state, ExitEnvironment& env) {
    u32 index = exit.msr.index;
    if (index == kMsrEfer) return handle_efer(exit, state);
    bool read = exit.kind == ExitKind::msr_read;
    u64 value = 0;
    if (read && index == kMsrFeatureControl) {
        value = kFeatureControlLockedNoVmx;
    } else if (is_virtualization_msr(index)) {
        return inject(kVectorGp, true, 0);
    } else if (!msr_allowed(index)) {
        env.unknown_msr(index, !read);
        return inject(kVectorGp, true, 0);
    }
    if (!complete(exit, state)) return stop(StopReason::undecodable);
    if (read) set_edx_eax(state, value);
    return {};
}

// Applies what the nested component decided about an exit.
ExitOutcome apply(nested::Decision decision, const VmExit& exit, VcpuState& state, DeviceBus& bus,
                  ExitEnvironment& env) {
    switch (decision.action) {
    case nested::Action::complete:
        if (!complete(exit, state)) return stop(StopReason::undecodable);
        if (exit.kind == ExitKind::msr_read) set_edx_eax(state, decision.value);
        return {};
    case nested::Action::inject_ud: return inject(kVectorUd);
    case nested::Action::inject_gp: return inject(kVectorGp, true, 0);
    case nested::Action::stop: {
        bus.flush(env);
        ExitOutcome out = stop(StopReason::unsupported);
        out.detail = decision.report;
        return out;
    }
    case nested::Action::resume: return {};
    case nested::Action::not_nested:
    case nested::Action::forward: break;
    }
    bus.flush(env);
    return stop(StopReason::unknown_exit);  // a decision that does not fit the exit: stop, never guess
}

// An MSR a device claims (device_bus.hpp), as RDMSR/WRMSR reach it: EDX:EAX.
ExitOutcome device_msr(const VmExit& exit, VcpuState& state, Device& device, DeviceBus& bus, ExitEnvironment& env) {
    bool read = exit.kind == ExitKind::msr_read;
    u64 value = ~u64{0};
    DeviceOutcome outcome =
        read ? device.msr_read(exit.msr.index, value, env) : device.msr_write(exit.msr.index, exit.msr.value, env);
    if (read && outcome.action == DeviceOutcome::Action::complete) set_edx_eax(state, value);
    return finish_device_access(exit, state, outcome, bus, env);
}

// A device on the bus answers the MSRs it claims; the kernel's rules (and the nested component's)
// answer the rest.
ExitOutcome handle_msr(const VmExit& exit, VcpuState& state, DeviceBus& bus, ExitEnvironment& env,
                       nested::NestedVcpu* nested) {
    if (const BusRange<u32>* range = bus.msr_range(exit.msr.index))
        return device_msr(exit, state, *range->device, bus, env);
    if (!nested) return plain_msr(exit, state, env);
    bool read = exit.kind == ExitKind::msr_read;
    nested::Decision d = read ? nested->ops->msr_read(*nested, exit.msr.index, state)
                              : nested->ops->msr_write(*nested, exit.msr.index, exit.msr.value, state);
    if (d.action == nested::Action::not_nested) return plain_msr(exit, state, env);
    if (d.action == nested::Action::forward && !read) {
        VmExit rest = exit;
        rest.msr.value = d.value;
        return plain_msr(rest, state, env);
    }
    return apply(d, exit, state, bus, env);
}

ExitOutcome stop_for_mmio(StopReason reason, const char* detail, DeviceBus& bus, ExitEnvironment& env) {
    bus.flush(env);
    ExitOutcome out = stop(reason);
    out.detail = detail;
    return out;
}

// The guest's instruction touched a device's MMIO range: decode it, let the device serve the
// access, write a load into its register, and step over it. An instruction that cannot be
// decoded, or whose access does not match the fault, stops the guest: a device acting on a
// misread operand would corrupt it silently.
[[gnu::noinline]] ExitOutcome handle_mmio(const VmExit& exit, VcpuState& state, const BusRange<u64>& range,
                                          DeviceBus& bus, ExitEnvironment& env) {
    const NestedPageFaultExit& fault = exit.npf;
    if (fault.access == MemoryAccess::execute)
        return stop_for_mmio(StopReason::bad_memory_access, "MMIO: the guest executes from a device's range", bus, env);
    auto decoded = env.decode_mmio(state);
    if (!decoded)
        return stop_for_mmio(StopReason::unsupported,
                             decoded.error() == MmioDecodeError::unreadable
                                 ? "MMIO: the instruction at CS:RIP could not be read"
                                 : "MMIO: the instruction at CS:RIP is not a MOV form the kernel emulates",
                             bus, env);
    const MmioAccess& access = *decoded;
    bool write = access.direction == MmioDirection::write;
    bool sized = access.size == 1 || access.size == 2 || access.size == 4 || access.size == 8;
    if (!sized || access.length == 0 || write != (fault.access == MemoryAccess::write))
        return stop_for_mmio(StopReason::unsupported, "MMIO: the decoded instruction does not match the fault", bus,
                             env);
    u64 last = 0;
    if (!checked_add(fault.guest_physical, u64{access.size} - 1, last) || last > range.last)
        return stop_for_mmio(StopReason::unsupported, "MMIO: an access runs past the end of a device's range", bus,
                             env);
    Device& device = *range.device;
    DeviceOutcome outcome;
    u64 value = ~u64{0};
    if (write)
        outcome = device.mmio_write(fault.guest_physical, access.size, mmio_store_value(access, state), env);
    else
        outcome = device.mmio_read(fault.guest_physical, access.size, value, env);
    VmExit decoded_exit = exit;  // the backend knows no length for a nested page fault: the decoder does
    decoded_exit.instruction_length = access.length;
    if (!write && outcome.action == DeviceOutcome::Action::complete) mmio_load_register(access, state, value);
    return finish_device_access(decoded_exit, state, outcome, bus, env);
}

// A nested page fault is the nested component's when L1's guest (L2) caused it; else a device's
// when it hit an MMIO range on the bus (never for L2, whose addresses are not the VM's); else a
// bad memory access that stops the guest.
ExitOutcome handle_nested_page_fault(const VmExit& exit, VcpuState& state, DeviceBus& bus, ExitEnvironment& env,
                                     nested::NestedVcpu* nested) {
    if (nested) {
        nested::Decision d = nested->ops->nested_page_fault(*nested, exit.npf);
        if (d.action != nested::Action::not_nested) return apply(d, exit, state, bus, env);
    }
    if (!nested || !nested->guest_exit)
        if (const BusRange<u64>* range = bus.mmio_range(exit.npf.guest_physical))
            return handle_mmio(exit, state, *range, bus, env);
    bus.flush(env);
    return stop(StopReason::bad_memory_access);
}

ExitOutcome handle_virtualization_instruction(const VmExit& exit, VcpuState& state, DeviceBus& bus,
                                              ExitEnvironment& env, nested::NestedVcpu* nested,
                                              const bool* init_pending) {
    if (!nested) return inject(kVectorUd);  // no nested virtualization: as on a CPU without SVM/VMX
    ExitOutcome out = apply(nested->ops->virtualization_instruction(*nested, exit, state), exit, state, bus, env);
    // An INIT L1 holds back may be let in by this instruction (VMXOFF, STGI; VMLAUNCH, VMRESUME
    // or VMRUN into an L2 that it exits): the slice ends, and the scheduler asks again before the
    // next entry (PcOps::application_processor_runs), as the CPU takes it at the next
    // instruction. Nothing else lets one in; one from another vCPU is asked about before this
    // vCPU runs again.
    if (init_pending && *init_pending) [[unlikely]]
        out.yield = true;
    return out;
}

// The extended state every guest is offered, from the host's CPUID.
XsaveOffer host_xsave_offer(ExitEnvironment& env) {
    return xsave_offer(env.host_cpuid(1, 0), env.host_cpuid(7, 0), env.host_cpuid(kCpuidLeafXsave, 0));
}

// What leaves 1, 7 and 0xD report of the guest's own CR4 and XCR0.
[[gnu::noinline]] void follow_guest(u32 leaf, u32 subleaf, CpuidValues& guest, ExitEnvironment& env) {
    XsaveOffer offer = host_xsave_offer(env);
    XsaveLayout layout{};
    if (leaf == kCpuidLeafXsave && offer.xsave)
        for (u32 i = 2; i < kXsaveComponents; ++i)
            if (offer.xcr0 & (u64{1} << i)) record_xsave_component(layout, i, env.host_cpuid(kCpuidLeafXsave, i));
    follow_guest_controls(leaf, subleaf, guest, env.guest_xsave_controls(), offer, layout);
}

// XSETBV: a value the offer allows becomes the vCPU's XCR0; anything else #GPs, as on a CPU that
// supports exactly the offered components. (#UD without CR4.OSXSAVE and #GP outside ring 0 come
// before the intercept, from the CPU.)
ExitOutcome handle_xsetbv(const VmExit& exit, VcpuState& state, ExitEnvironment& env) {
    if (!xsetbv_allowed(exit.xsetbv.index, exit.xsetbv.value, host_xsave_offer(env))) return inject(kVectorGp, true, 0);
    if (!complete(exit, state)) return stop(StopReason::undecodable);
    env.set_guest_xcr0(exit.xsetbv.value);
    return {};
}

// CPUID's answer into RAX, RBX, RCX and RDX, past the instruction.
[[gnu::always_inline]] inline ExitOutcome answer_cpuid(const VmExit& exit, VcpuState& state, const CpuidValues& guest) {
    if (!complete(exit, state)) return stop(StopReason::undecodable);
    state.rax() = guest.eax;
    state.rbx() = guest.ebx;
    state.rcx() = guest.ecx;
    state.rdx() = guest.edx;
    return {};
}

// A CPUID the memo does not hold: through the policy (and the nested component's hook),
// remembered for next time, but for the leaves that follow the guest's own CR4 and XCR0.
[[gnu::noinline]] ExitOutcome cpuid_from_policy(const VmExit& exit, VcpuState& state, ExitEnvironment& env,
                                                const ExitContext& context) {
    u32 leaf = static_cast<u32>(state.rax());
    u32 subleaf = static_cast<u32>(state.rcx());
    CpuidValues host = cpuid_leaf_is_synthetic(leaf) ? CpuidValues{0, 0, 0, 0} : env.host_cpuid(leaf, subleaf);
    CpuidValues guest = guest_cpuid(leaf, subleaf, host, context.nested, context.topology);
    if (cpuid_leaf_follows_guest(leaf))
        follow_guest(leaf, subleaf, guest, env);
    else if (context.cpuid)
        context.cpuid->remember(leaf, subleaf, guest);
    return answer_cpuid(exit, state, guest);
}

// CPUID: from the vCPU's memo when it holds the answer (the short path most CPUIDs take),
// otherwise through the policy.
ExitOutcome handle_cpuid_exit(const VmExit& exit, VcpuState& state, ExitEnvironment& env, const ExitContext& context) {
    const CpuidMemo* memo = context.cpuid;
    const CpuidValues* known =
        memo ? memo->find(static_cast<u32>(state.rax()), static_cast<u32>(state.rcx())) : nullptr;
    if (!known) [[unlikely]]
        return cpuid_from_policy(exit, state, env, context);
    return answer_cpuid(exit, state, *known);
}

}  // namespace

bool is_virtualization_msr(u32 index) {
    return index == kMsrFeatureControl || (index >= kMsrVmxBasic && index <= kMsrVmxVmfunc) || index == kMsrVmCr ||
           index == kMsrVmHsavePa;
}

const char* stop_reason_name(StopReason reason) {
    switch (reason) {
    case StopReason::none: return "running";
    case StopReason::exit_port: return "exit port";
    case StopReason::halted: return "halted";
    case StopReason::triple_fault: return "triple fault";
    case StopReason::bad_memory_access: return "bad memory access";
    case StopReason::invalid_state: return "invalid guest state";
    case StopReason::undecodable: return "undecodable instruction";
    case StopReason::unsupported: return "unsupported operation";
    case StopReason::unknown_exit: return "unknown exit";
    case StopReason::shutdown: return "shutdown";
    case StopReason::watchdog: return "watchdog";
    case StopReason::reset: return "reset";
    case StopReason::waits_forever: return "waits for a signal nothing can send";
    }
    return "?";
}

const char* exit_kind_name(ExitKind kind) {
    switch (kind) {
    case ExitKind::cpuid: return "cpuid";
    case ExitKind::hypercall: return "hypercall";
    case ExitKind::io: return "io";
    case ExitKind::msr_read: return "msr_read";
    case ExitKind::msr_write: return "msr_write";
    case ExitKind::hlt: return "hlt";
    case ExitKind::cache_invalidate: return "cache_invalidate";
    case ExitKind::performance_counter: return "performance_counter";
    case ExitKind::monitor_wait: return "monitor_wait";
    case ExitKind::nested_page_fault: return "nested_page_fault";
    case ExitKind::triple_fault: return "triple_fault";
    case ExitKind::external_interrupt: return "external_interrupt";
    case ExitKind::preemption: return "preemption";
    case ExitKind::exception: return "exception";
    case ExitKind::xsetbv: return "xsetbv";
    case ExitKind::virtualization_instruction: return "virtualization_instruction";
    case ExitKind::invalid_state: return "invalid_state";
    case ExitKind::interrupt_window: return "interrupt_window";
    case ExitKind::nmi_window: return "nmi_window";
    case ExitKind::task_priority: return "task_priority";
    case ExitKind::unknown: return "unknown";
    }
    return "?";
}

ExitOutcome handle_exit(const VmExit& exit, VcpuState& state, DeviceBus& bus, ExitEnvironment& env) {
    return handle_exit(exit, state, bus, env, ExitContext{env.nested_vcpu(), nullptr});
}

namespace exit_detail {

ExitOutcome handle_cpuid(const VmExit& exit, VcpuState& state, ExitEnvironment& env, const ExitContext& context) {
    return handle_cpuid_exit(exit, state, env, context);
}

ExitOutcome handle_io(const VmExit& exit, VcpuState& state, DeviceBus& bus, ExitEnvironment& env) {
    return handle_io_exit(exit, state, bus, env);
}

ExitOutcome handle_other_exit(const VmExit& exit, VcpuState& state, DeviceBus& bus, ExitEnvironment& env,
                              const ExitContext& context) {
    nested::NestedVcpu* nested = context.nested;
    switch (exit.kind) {
    case ExitKind::msr_read:
    case ExitKind::msr_write: return handle_msr(exit, state, bus, env, nested);
    case ExitKind::cache_invalidate:
        // Never drop the host's cache lines for a guest (INVD would lose other domains' writes),
        // nor let it write back and flush the whole cache hierarchy (WBINVD / WBNOINVD: the shared
        // last-level cache too, for milliseconds in which nothing else runs, at the cost of every
        // other domain): guest memory is coherent, so doing nothing is what WBINVD would achieve.
        if (!complete(exit, state)) return stop(StopReason::undecodable);
        return {};
    case ExitKind::performance_counter:
        // No performance counters are offered (CPUID shows none, their MSRs #GP): the physical
        // counters count for every domain and the host, a side channel. RDPMC faults as it does
        // for a counter that does not exist, as KVM answers without a virtual PMU.
        return inject(kVectorGp, true, 0);
    case ExitKind::monitor_wait:
        // MONITOR/MWAIT would let a guest choose the physical CPU's sleep states (power and
        // wake-up latency are the host's) and idle its time slice away unseen by the scheduler.
        // CPUID hides MONITOR, and they #UD as on a CPU without them, as Xen answers.
        return inject(kVectorUd);
    case ExitKind::hlt:
        // With interrupts enabled the guest waits for an event; with them disabled nothing can
        // ever wake it: it is done.
        if (!complete(exit, state)) return stop(StopReason::undecodable);
        if (state.rflags & kRflagsIf) return ExitOutcome{.wait = true};
        bus.flush(env);
        return stop(StopReason::halted, 0);
    case ExitKind::nested_page_fault: return handle_nested_page_fault(exit, state, bus, env, nested);
    case ExitKind::triple_fault: bus.flush(env); return stop(StopReason::triple_fault);
    case ExitKind::external_interrupt:
    case ExitKind::preemption: return {};  // the kernel got the CPU back; the scheduler decides who runs next
    case ExitKind::interrupt_window:
    case ExitKind::nmi_window: return {};     // no instruction ran: the run loop injects what it waited for
    case ExitKind::task_priority: return {};  // the MOV to CR8 is done: the run loop injects what the TPR held back
    case ExitKind::exception:
        // #DB and #AC are intercepted only so that a guest cannot keep the CPU in an endless
        // delivery of them (CVE-2015-8104, CVE-2015-5307: no interrupt, hence no preemption, gets
        // through): each delivery is an exit. The guest gets its exception back as the CPU would
        // have delivered it (the backend has done DR6). #AC is a fault: the CPU pushes RFLAGS with
        // RF set, so that an instruction breakpoint on the faulting instruction does not fire
        // again when the handler returns; an injected exception is pushed as RFLAGS is, so set it.
        if (exit.exception.vector == kVectorAc) state.rflags |= kRflagsRf;
        return inject(exit.exception.vector, exit.exception.has_error_code, exit.exception.error_code);
    case ExitKind::xsetbv: return handle_xsetbv(exit, state, env);
    case ExitKind::virtualization_instruction:
        return handle_virtualization_instruction(exit, state, bus, env, nested, context.init_pending);
    case ExitKind::invalid_state: bus.flush(env); return stop(StopReason::invalid_state);
    case ExitKind::cpuid:
    case ExitKind::hypercall:
    case ExitKind::io:
    case ExitKind::unknown: break;
    }
    bus.flush(env);
    return stop(StopReason::unknown_exit);
}

ExitOutcome handle_hypercall(const VmExit& exit, VcpuState& state, ExitEnvironment& env) {
    if (!complete(exit, state)) return stop(StopReason::undecodable);
    return env.hypercall(state);
}

ExitOutcome handle_guest_mode_exit(nested::Decision decision, const VmExit& exit, VcpuState& state, DeviceBus& bus,
                                   ExitEnvironment& env, const ExitContext& context) {
    if (decision.action != nested::Action::not_nested) return apply(decision, exit, state, bus, env);
    // L0's own exit while L2 runs: the rule for every exit, applied to L2's state - except that an
    // exception it raises is L1's when L1 intercepts it.
    nested::NestedVcpu& nested = *context.nested;
    ExitOutcome outcome = dispatch_exit(exit, state, bus, env, context);
    if (!outcome.inject) return outcome;
    nested::Decision d =
        nested.ops->exception_for_l2(nested, outcome.vector, outcome.has_error_code, outcome.error_code, state);
    return d.action == nested::Action::not_nested ? outcome : apply(d, exit, state, bus, env);
}

}  // namespace exit_detail

}  // namespace nestor::virt
