// The one run loop: a VM's vCPU runs on the backend, each exit goes through the neutral exit
// handler, and the outcome decides whether it runs on. The scheduler (scheduler.hpp) calls it
// for each VM in turn; built-in guests and manifest domains run through the same loop.
#pragma once

#include "nestor/virt/vm.hpp"

namespace nestor::virt {

struct RunOptions {
    u64 time_slice;    // timestamp ticks a vCPU runs before the next VM's turn (0: no limit)
    u64 watchdog;      // a VM preempted this many slices in a row without an exit is stopped; 0 = never
    bool trace_exits;  // log every exit (debug level): built-in guests' length checks use it
};

// Runs `vcpu` of the VM until its slice ends, it yields, it waits for an event or it stops.
void run_slice(Vm& vm, Vcpu& vcpu, const RunOptions& options);

// Stops the VM for good with `outcome`, which vCPU `by` met (its last exit and RIP are reported),
// reports why and frees its backend vCPUs.
void stop_vm(Vm& vm, Vcpu& by, const ExitOutcome& outcome);
// The same, met by no vCPU in particular (reported as vCPU 0's).
void stop_vm(Vm& vm, const ExitOutcome& outcome);

}  // namespace nestor::virt
