// Round robin over the VMs of this boot: each ready VM runs a slice in turn until every one has
// stopped. A VM waiting for a signal runs again once one is pending; when every running VM waits,
// nothing can ever wake them, and they are stopped.
#pragma once

#include "nestor/virt/run_loop.hpp"

namespace nestor::virt {

void run_vms(Vm* const* vms, u32 count, const RunOptions& options);

}  // namespace nestor::virt
