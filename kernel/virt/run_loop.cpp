// The one run loop (run_loop.hpp): a VM's vCPU on the backend, its exits through the neutral
// exit handler, until its slice ends, it yields, waits or stops.
#include "nestor/virt/run_loop.hpp"

#include "nestor/log.hpp"
#include "nestor/virt/vm_environment.hpp"
#include "nestor/virt/vm_restart.hpp"

namespace nestor::virt {
namespace {

constexpr u32 kFailureStatus = 1;

const char* access_name(MemoryAccess access) {
    switch (access) {
    case MemoryAccess::read: return "read";
    case MemoryAccess::write: return "write";
    case MemoryAccess::execute: return "execute";
    }
    return "?";
}

void report_stop(Vm& vm, u64 rip) {
    const ExitOutcome& o = vm.outcome;
    const VmExit& last = vm.last_exit;
    u64 exits = vm.exits().total();
    if (o.reason == StopReason::exit_port || o.reason == StopReason::halted || o.reason == StopReason::shutdown) {
        log::info("{} {} exited with status {} ({}) after {} exits", vm.label, vm.name, o.status,
                  stop_reason_name(o.reason), exits);
        return;
    }
    log::error("{} {} stopped: {} after {} exits (last exit {} code {:#x} at rip {:#x})", vm.label, vm.name,
               stop_reason_name(o.reason), exits, exit_kind_name(last.kind), last.vendor_code, rip);
    if (o.detail) log::error("{} {}: {}", vm.label, vm.name, o.detail);
    if (last.kind == ExitKind::nested_page_fault)
        log::error("{} {}: {} of guest-physical {:#x}, {}", vm.label, vm.name, access_name(last.npf.access),
                   last.npf.guest_physical, last.npf.present ? "not permitted" : "outside its memory");
}

// A signal raised the virtual interrupt the domain asked for (NOTIFICATION_SET_VECTOR): inject it
// when the vCPU can take it, else it stays due and is tried again after the next exit. A guest
// hypervisor's state has its say first (GIF, or its guest running: nested_ops.hpp). False if
// the VM was stopped.
[[gnu::noinline]] bool raise_interrupt(Vm& vm, Vcpu& v, VcpuState& state) {
    ASSERT(vm.notification);  // an interrupt is only ever due from the domain's notification
    u8 vector = vm.notification->interrupt_due();
    v.interrupt_due = vector != 0;
    if (!vector) return true;
    if (nested::NestedVcpu* nested = v.nested_state()) {
        nested::Decision decision = nested->ops->route_interrupt(*nested, state, vector);
        if (decision.action == nested::Action::complete) {  // acknowledged by a VM exit into L1
            vm.notification->interrupt_raised();
            v.interrupt_due = false;
            return true;
        }
        if (decision.action == nested::Action::stop) {
            stop_vm(vm, v,
                    ExitOutcome{.stop = true,
                                .reason = StopReason::unsupported,
                                .status = kFailureStatus,
                                .detail = decision.report});
            return false;
        }
        if (decision.action != nested::Action::not_nested) return true;
    }
    if (vm.ops->inject_interrupt(v.handle, state, vector)) {
        vm.notification->interrupt_raised();
        v.interrupt_due = false;
    }
    return true;
}

// A slice of a VM with a PC ends at the PC's next timer, if that comes first (at least one tick:
// 0 would mean no limit at all).
u64 pc_time_slice(u64 deadline, u64 time_slice) {
    u64 now = platform::timestamp();
    u64 until = deadline > now ? deadline - now : 1;
    return time_slice == 0 || until < time_slice ? until : time_slice;
}

// The exit armed a PC timer due before the slice ends: the slice ends at that timer instead, or
// it would fire late. Not at once: that would hand the rest of the slice to another vCPU at every
// timer the guest arms, and with a tick shorter than a slice (a slow TSC) a vCPU whose sibling
// spins would run little but its timer interrupts.
[[gnu::noinline]] void end_slice_at(Vm& vm, Vcpu& v, u64 deadline, u64& time_slice, u64& slice_end) {
    u64 now = platform::timestamp();
    time_slice = deadline > now ? deadline - now : 1;
    slice_end = deadline;
    vm.ops->new_slice(v.handle);
}

// What the run loop does with the outcome of an exit it handled: false when the slice is over.
[[gnu::always_inline]] inline bool carry_on(Vm& vm, Vcpu& v, const VmExit& exit, const ExitOutcome& outcome) {
    if (outcome.stop || !vm.running) [[unlikely]] {
        // A PC's vCPU halted with interrupts off waits for what still reaches it (an NMI, INIT):
        // an operating system parks its other CPUs so before it powers off.
        if (vm.pc && outcome.reason == StopReason::halted && vm.running) {
            v.waiting = true;
            return false;
        }
        v.last_exit = exit;
        // A reset boots a domain again when its manifest says so (vm_restart.hpp).
        if (restart_on_reset(vm, v, outcome)) return false;
        stop_vm(vm, v,
                outcome.stop ? outcome
                             : ExitOutcome{.stop = true, .reason = StopReason::shutdown, .status = kFailureStatus});
        return false;
    }
    if (outcome.inject) vm.ops->inject_exception(v.handle, outcome.vector, outcome.has_error_code, outcome.error_code);
    if (outcome.wait) {
        v.waiting = true;
        return false;
    }
    return !outcome.yield && exit.kind != ExitKind::external_interrupt;
}

// The slice ended by preemption; the watchdog stops a VM preempted too often in a row.
[[gnu::noinline]] void preempted(Vm& vm, Vcpu& v, const VmExit& exit, VmEnvironment& env, const RunOptions& options) {
    ++v.exits.preemptions;
    if (!options.watchdog || ++v.exits.slices_without_exit < options.watchdog) return;
    vm.devices.bus.flush(env);
    log::error("{} {} ran {} time slices without an exit (watchdog)", vm.label, vm.name, v.exits.slices_without_exit);
    v.last_exit = exit;
    stop_vm(vm, v, ExitOutcome{.stop = true, .reason = StopReason::watchdog, .status = kFailureStatus});
}

[[gnu::noinline]] void trace(const VmExit& exit, const VcpuState& state) {
    log::debug("virt: exit {} (code {:#x}) at rip {:#x}, length {}", exit_kind_name(exit.kind), exit.vendor_code,
               state.rip, exit.instruction_length);
}

// One loop for VMs with nested virtualization (`kNested`: the component's handler for L2's exits
// is called from the loop) and one for the others, whose exits then pay no test for it; the
// trace is a third, so that no exit pays for a log level test either.
template <bool kNested, bool kTrace> void run_vcpu(Vm& vm, Vcpu& v, const RunOptions& options) {
    VcpuState& state = v.state();
    VmEnvironment env(vm, v);
    const ExitContext context{kNested ? v.nested_state() : nullptr, &v.cpuid_memo, v.cpuid_topology, v.init_pending};
    // Signals come from other domains, which ran in other slices: a due interrupt is noticed here
    // and, until the vCPU takes it, retried after every exit (a signal a domain sends itself
    // waits for its next slice).
    if (vm.notification && v.index == 0 && vm.notification->interrupt_due()) v.interrupt_due = true;
    u64 time_slice = options.time_slice;
    u64 slice_end = 0;
    // Whether the PC's entry work is due before the next entry (PcOps::exit_served): always for a
    // nested vCPU, whose L1 has its say on every interrupt.
    bool pc_work = kNested && vm.pc;
    if (vm.pc) [[unlikely]] {
        time_slice = pc_time_slice(vm.pc_ops->prepare_entry(vm, v, state).deadline, time_slice);
        // This slice ends at the PC's next timer: the backend must not go on with a longer one.
        vm.ops->new_slice(v.handle);
        slice_end = platform::timestamp() + time_slice;
    }
    for (bool entered = false;; entered = true) {
        if (v.interrupt_due) [[unlikely]]
            if (!raise_interrupt(vm, v, state)) return;
        if (pc_work && entered) [[unlikely]] {
            PcEntry entry = vm.pc_ops->prepare_entry(vm, v, state);
            // An IPI's receiver would wait for this slice to end: end it here.
            if (entry.end_slice) return;
            if (entry.deadline < slice_end) end_slice_at(vm, v, entry.deadline, time_slice, slice_end);
        }
        VmExit exit = vm.ops->run(v.handle, state, time_slice);
        ++v.exits.by_kind[static_cast<usize>(exit.kind)];
        if constexpr (kTrace) trace(exit, state);
        if (exit.kind == ExitKind::preemption) [[unlikely]] {
            // A slice a PC's timer ended is not one the guest kept the CPU through.
            if (!vm.pc || platform::timestamp() < vm.pc_ops->next_deadline(vm)) preempted(vm, v, exit, env, options);
            return;
        }
        v.exits.slices_without_exit = 0;
        if constexpr (kNested) {
            nested::NestedVcpu& nested = *context.nested;
            if (auto guest_exit = nested.guest_exit) {
                nested::Decision decision = guest_exit(nested, exit, state);
                // L1 runs next (a #VMEXIT into it, a shadow page installed): nothing more to do,
                // not even to look at an outcome.
                if (decision.action == nested::Action::resume) [[likely]] {
                    if (exit.kind == ExitKind::external_interrupt) return;
                    continue;
                }
                if (!carry_on(vm, v, exit,
                              exit_detail::handle_guest_mode_exit(decision, exit, state, vm.devices.bus, env, context)))
                    return;
                continue;
            }
        }
        if (vm.pc && !kNested) [[unlikely]] {
            PcExit pc_exit = vm.pc_ops->exit_served(vm, v, exit, state);
            pc_work = pc_exit.entry_work();
            if (pc_exit.served()) continue;
        }
        if (!carry_on(vm, v, exit, exit_detail::dispatch_exit(exit, state, vm.devices.bus, env, context))) return;
    }
}

}  // namespace

// An image built with NESTED_VIRT=OFF runs no nested vCPU (the null component refuses them): it
// carries only the loops without the nested component's calls.
constexpr bool kNestedVirtBuilt = NESTOR_OPT_NESTED_VIRT != 0;

void run_slice(Vm& vm, Vcpu& vcpu, const RunOptions& options) {
    bool trace = options.trace_exits && log::threshold() >= log::Level::debug;
    if constexpr (kNestedVirtBuilt) {
        if (vcpu.nested_state() != nullptr) {
            trace ? run_vcpu<true, true>(vm, vcpu, options) : run_vcpu<true, false>(vm, vcpu, options);
            return;
        }
    }
    trace ? run_vcpu<false, true>(vm, vcpu, options) : run_vcpu<false, false>(vm, vcpu, options);
}

void stop_vm(Vm& vm, Vcpu& by, const ExitOutcome& outcome) {
    u64 rip = by.state().rip;
    vm.stop(outcome, by.last_exit);
    report_stop(vm, rip);
}

void stop_vm(Vm& vm, const ExitOutcome& outcome) { stop_vm(vm, vm.vcpus[0], outcome); }

}  // namespace nestor::virt
