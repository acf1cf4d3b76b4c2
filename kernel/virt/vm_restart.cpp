// A domain that restarts on reset (vm_restart.hpp).
#include "nestor/virt/vm_restart.hpp"

#include "nestor/log.hpp"
#include "nestor/virt/run_loop.hpp"

namespace nestor::virt {
namespace {

constexpr u32 kFailureStatus = 1;

// What a PC's reset line does: a triple fault (the CPU's shutdown cycle, which a PC's chipset
// turns into a reset) and the guest's own reset (StopReason::reset, through the PC's devices).
bool is_reset(StopReason reason) { return reason == StopReason::reset || reason == StopReason::triple_fault; }

}  // namespace

bool restart_on_reset(Vm& vm, Vcpu& by, const ExitOutcome& outcome) {
    if (!vm.boot_again || !outcome.stop || !is_reset(outcome.reason)) return false;
    if (vm.restarts == kMaxRestarts) {
        log::error("{} {} {} again after {} restarts, the most a domain gets: it stops", vm.label, vm.name,
                   stop_reason_name(outcome.reason), kMaxRestarts);
        return false;
    }
    ++vm.restarts;
    log::info("{} {} {}: restarting ({})", vm.label, vm.name, stop_reason_name(outcome.reason), vm.restarts);
    vm.power_off();
    if (vm.boot_again(vm)) return true;
    stop_vm(vm, by,
            ExitOutcome{.stop = true,
                        .reason = outcome.reason,
                        .status = kFailureStatus,
                        .detail = "booting it again after its reset failed"});
    return true;
}

}  // namespace nestor::virt
