// Round robin over the VMs of this boot (scheduler.hpp).
#include "nestor/virt/scheduler.hpp"

#include "nestor/virt/vm_environment.hpp"

namespace nestor::virt {
namespace {

constexpr u32 kFailureStatus = 1;

// A waiting VM runs again once a signal is pending on its notification, or its PC has an
// interrupt for it. One with neither (a built-in guest) can never be woken: its wait is the end
// of it, a halt.
bool ready(Vm& vm, Vcpu& v) {
    if (!vm.running) return false;
    // A PC's application processor runs once the guest has started it with INIT-SIPI-SIPI, and
    // until an INIT (which its local APIC flags: no call into the PC while none came).
    if ((v.awaiting_startup || (v.init_pending && *v.init_pending)) && !vm.pc_ops->application_processor_runs(vm, v))
        return false;
    if (!v.waiting) return true;
    if (vm.pc && vm.pc_ops->wakes(vm, v)) {
        v.waiting = false;
        return true;
    }
    if (!vm.notification && !vm.pc) {
        stop_vm(vm, ExitOutcome{.stop = true, .reason = StopReason::halted});
        return false;
    }
    if (vm.notification && v.index == 0 && vm.notification->pending()) v.waiting = false;
    return !v.waiting;
}

// The earliest timer of the PCs of the VMs still running (~0: none).
u64 earliest_deadline(Vm* const* vms, u32 count) {
    u64 earliest = ~u64{0};
    for (u32 i = 0; i < count; ++i) {
        Vm& vm = *vms[i];
        if (!vm.running || !vm.pc) continue;
        u64 deadline = vm.pc_ops->next_deadline(vm);
        if (deadline < earliest) earliest = deadline;
    }
    return earliest;
}

// The running VM that takes the host's console input, if any.
Vm* console_taker(Vm* const* vms, u32 count) {
    for (u32 i = 0; i < count; ++i)
        if (vms[i]->running && vms[i]->console_input) return vms[i];
    return nullptr;
}

// How long an idle CPU sleeps at most while a VM takes the console's input: the host's UART is
// polled, and a user sees an echo this late at worst.
constexpr u64 kConsolePollMs = 10;

bool any_running(Vm* const* vms, u32 count) {
    for (u32 i = 0; i < count; ++i)
        if (vms[i]->running) return true;
    return false;
}

// Every running VM waits: no VM can send the signals they wait for, and nothing else (no
// device, no interrupt) exists to wake them. Rather than idle for ever, stop them.
void stop_waiting_vms(Vm* const* vms, u32 count) {
    for (u32 i = 0; i < count; ++i) {
        Vm& vm = *vms[i];
        if (!vm.running) continue;
        VmEnvironment env(vm);
        vm.devices.bus.flush(env);
        stop_vm(vm, ExitOutcome{.stop = true, .reason = StopReason::waits_forever, .status = kFailureStatus});
    }
}

}  // namespace

void run_vms(Vm* const* vms, u32 count, const RunOptions& options) {
    while (any_running(vms, count)) {
        bool ran = false;
        Vm* typing = console_taker(vms, count);
        for (u32 i = 0; i < count; ++i) {
            Vm& vm = *vms[i];
            for (u32 c = 0; c < vm.vcpu_count; ++c) {
                if (&vm == typing && vm.running) vm.pc_ops->serve_console(vm);
                if (!ready(vm, vm.vcpus[c])) continue;
                run_slice(vm, vm.vcpus[c], options);
                ran = true;
            }
        }
        if (typing && typing->running) typing->pc_ops->serve_console(*typing);
        if (ran) continue;
        // Every running VM waits. A PC's timer or what a user types will wake one: sleep until
        // the timer is due or it is time to look at the console (the physical CPU idles; nothing
        // spins). With neither, nothing can ever wake them.
        u64 deadline = earliest_deadline(vms, count);
        if (typing) {
            u64 poll = platform::timestamp() + platform::timestamp_khz() * kConsolePollMs;
            if (poll < deadline) deadline = poll;
        }
        if (deadline != ~u64{0})
            platform::idle_until(deadline);
        else
            stop_waiting_vms(vms, count);
    }
}

}  // namespace nestor::virt
