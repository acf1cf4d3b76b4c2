// Runs the appliance the boot modules describe: a packed manifest (the module named "manifest")
// and the guest images it names. The kernel acts as the appliance's toolstack: it builds every
// domain through the capability runtime, exactly as a toolstack domain would with hypercalls,
// then schedules the domains' vCPUs until every domain has stopped.
#pragma once

#include "nestor/boot_info.hpp"

namespace nestor::virt {

// True if the boot modules carry a manifest.
bool has_appliance(const BootInfo& boot);

struct ApplianceOptions {
    u64 time_slice;  // timestamp ticks a vCPU runs before the next domain's turn
    u64 watchdog;    // a domain running this many slices in a row without an exit is stopped; 0 = never
};

// Builds and runs the domains; returns 0 if every domain was built and exited with status 0.
u32 run_appliance(const BootInfo& boot, const ApplianceOptions& options);

}  // namespace nestor::virt
