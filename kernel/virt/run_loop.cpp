// The one run loop (run_loop.hpp): a VM's vCPU on the backend, its exits through the neutral
// exit handler, until its slice ends, it yields, waits or stops.
#include "nestor/virt/run_loop.hpp"

#include "nestor/log.hpp"
#include "nestor/virt/vm_environment.hpp"

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

void report_stop(Vm& vm) {
    Vcpu& v = vm.vcpu;
    const ExitOutcome& o = v.outcome;
    if (o.reason == StopReason::exit_port || o.reason == StopReason::halted || o.reason == StopReason::shutdown) {
        log::info("{} {} exited with status {} ({}) after {} exits", vm.label, vm.name, o.status,
                  stop_reason_name(o.reason), v.exits.total());
        return;
    }
    log::error("{} {} stopped: {} after {} exits (last exit {} code {:#x} at rip {:#x})", vm.label, vm.name,
               stop_reason_name(o.reason), v.exits.total(), exit_kind_name(v.last_exit.kind), v.last_exit.vendor_code,
               v.state().rip);
    if (o.detail) log::error("{} {}: {}", vm.label, vm.name, o.detail);
    if (v.last_exit.kind == ExitKind::nested_page_fault)
        log::error("{} {}: {} of guest-physical {:#x}, {}", vm.label, vm.name, access_name(v.last_exit.npf.access),
                   v.last_exit.npf.guest_physical, v.last_exit.npf.present ? "not permitted" : "outside its memory");
}

// A signal raised the virtual interrupt the domain asked for (NOTIFICATION_SET_VECTOR): inject it
// when the vCPU can take it, else it stays due and is tried again after the next exit. A guest
// hypervisor's state has its say first (GIF, or its guest running: nested_ops.hpp). False if
// the VM was stopped.
[[gnu::noinline]] bool raise_interrupt(Vm& vm, VcpuState& state) {
    ASSERT(vm.notification);  // an interrupt is only ever due from the domain's notification
    Vcpu& v = vm.vcpu;
    u8 vector = vm.notification->interrupt_due();
    v.interrupt_due = vector != 0;
    if (!vector) return true;
    if (nested::NestedVcpu* nested = v.nested_state()) {
        nested::Decision decision = nested->ops->route_interrupt(*nested, state);
        if (decision.action == nested::Action::stop) {
            stop_vm(vm, ExitOutcome{.stop = true,
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

// What the run loop does with the outcome of an exit it handled: false when the slice is over.
[[gnu::always_inline]] inline bool carry_on(Vm& vm, const VmExit& exit, const ExitOutcome& outcome) {
    Vcpu& v = vm.vcpu;
    if (outcome.stop || !vm.running) [[unlikely]] {
        v.last_exit = exit;
        stop_vm(vm, outcome.stop ? outcome
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
[[gnu::noinline]] void preempted(Vm& vm, const VmExit& exit, VmEnvironment& env, const RunOptions& options) {
    Vcpu& v = vm.vcpu;
    ++v.exits.preemptions;
    if (!options.watchdog || ++v.exits.slices_without_exit < options.watchdog) return;
    vm.devices.bus.flush(env);
    log::error("{} {} ran {} time slices without an exit (watchdog)", vm.label, vm.name, v.exits.slices_without_exit);
    v.last_exit = exit;
    stop_vm(vm, ExitOutcome{.stop = true, .reason = StopReason::watchdog, .status = kFailureStatus});
}

[[gnu::noinline]] void trace(const VmExit& exit, const VcpuState& state) {
    log::debug("virt: exit {} (code {:#x}) at rip {:#x}, length {}", exit_kind_name(exit.kind), exit.vendor_code,
               state.rip, exit.instruction_length);
}

// One loop for VMs with nested virtualization (`kNested`: the component's handler for L2's exits
// is called from the loop) and one for the others, whose exits then pay no test for it; the
// trace is a third, so that no exit pays for a log level test either.
template <bool kNested, bool kTrace> void run_vcpu(Vm& vm, const RunOptions& options) {
    Vcpu& v = vm.vcpu;
    VcpuState& state = v.state();
    VmEnvironment env(vm);
    const ExitContext context{kNested ? v.nested_state() : nullptr, &v.cpuid_memo};
    // Signals come from other domains, which ran in other slices: a due interrupt is noticed here
    // and, until the vCPU takes it, retried after every exit (a signal a domain sends itself
    // waits for its next slice).
    if (vm.notification && vm.notification->interrupt_due()) v.interrupt_due = true;
    for (;;) {
        if (v.interrupt_due) [[unlikely]]
            if (!raise_interrupt(vm, state)) return;
        VmExit exit = vm.ops->run(v.handle, state, options.time_slice);
        ++v.exits.by_kind[static_cast<usize>(exit.kind)];
        if constexpr (kTrace) trace(exit, state);
        if (exit.kind == ExitKind::preemption) [[unlikely]] {
            preempted(vm, exit, env, options);
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
                if (!carry_on(vm, exit,
                              exit_detail::handle_guest_mode_exit(decision, exit, state, vm.devices.bus, env, context)))
                    return;
                continue;
            }
        }
        if (!carry_on(vm, exit, exit_detail::dispatch_exit(exit, state, vm.devices.bus, env, context))) return;
    }
}

}  // namespace

void run_slice(Vm& vm, const RunOptions& options) {
    bool nested = vm.vcpu.nested_state() != nullptr;
    if (options.trace_exits && log::threshold() >= log::Level::debug)
        nested ? run_vcpu<true, true>(vm, options) : run_vcpu<false, true>(vm, options);
    else
        nested ? run_vcpu<true, false>(vm, options) : run_vcpu<false, false>(vm, options);
}

void stop_vm(Vm& vm, const ExitOutcome& outcome) {
    vm.stop(outcome);
    report_stop(vm);
}

}  // namespace nestor::virt
