// A domain whose manifest says on_reset = "restart" boots again when its machine resets, as a PC
// does: a triple fault, and on the PC platform the keyboard controller's reset, port 0xCF9 and the
// ACPI reset register (docs/platform.md). Its vCPUs are released and its VM booted again by the
// appliance (Vm::boot_again: its memory cleared and loaded from its images as at boot, vCPU 0 at
// the entry, its devices as at power-on); the capabilities it holds stay. A guest that keeps
// resetting is not restarted for ever: after kMaxRestarts restarts the next reset stops it, as if
// its manifest said "stop".
#pragma once

#include "nestor/manifest.h"
#include "nestor/virt/vm.hpp"

namespace nestor::virt {

inline constexpr u32 kMaxRestarts = NESTOR_MANIFEST_MAX_RESTARTS;

// `outcome` stops the VM, met by vCPU `by`. If it is a reset of a VM that restarts and has
// restarts left, boots the VM again and returns true (when booting it again fails, the VM is
// stopped with the failure status, and true too: the caller has nothing left to do). False: the
// caller stops the VM with `outcome` as ever.
bool restart_on_reset(Vm& vm, Vcpu& by, const ExitOutcome& outcome);

}  // namespace nestor::virt
