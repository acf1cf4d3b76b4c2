// Round robin over the VMs of this boot (scheduler.hpp).
#include "nestor/virt/scheduler.hpp"

#include "nestor/virt/vm_environment.hpp"

namespace nestor::virt {
namespace {

constexpr u32 kFailureStatus = 1;

// A waiting VM runs again once a signal is pending on its notification. One with no
// notification (a built-in guest) can never be woken: its wait is the end of it, a halt.
bool ready(Vm& vm) {
    if (!vm.running) return false;
    Vcpu& v = vm.vcpu;
    if (!v.waiting) return true;
    if (!vm.notification) {
        stop_vm(vm, ExitOutcome{.stop = true, .reason = StopReason::halted});
        return false;
    }
    if (vm.notification->pending()) v.waiting = false;
    return !v.waiting;
}

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
        for (u32 i = 0; i < count; ++i) {
            Vm& vm = *vms[i];
            if (!ready(vm)) continue;
            run_slice(vm, options);
            ran = true;
        }
        if (!ran) stop_waiting_vms(vms, count);
    }
}

}  // namespace nestor::virt
