// The PC platform (components/pc, docs/platform.md) as the kernel sees it: one constant table,
// like the nested component's, that a build with PC_PLATFORM on links in and one with it off
// does not (pc_platform() is then nullptr and a domain asking for `platform = "pc"` is refused).
// The kernel calls it only for a VM that has a PC (Vm::pc), at three points: when it builds the
// VM, before each entry (timers that are due, interrupts to inject) and while the VM waits (has an
// event arrived, when is its next timer due).
#pragma once

#include "nestor/lib/result.hpp"
#include "nestor/virt/vcpu_state.hpp"

namespace nestor::virt {

class Vm;
class Vcpu;
struct PcState;  // the component's; opaque to the kernel

enum class PcError : u8 {
    no_room,                  // every PC of this boot is in use
    too_many_vcpus,           // more vCPUs than a PC here has local APICs
    bus_full,                 // the VM's device bus has no room for the PC's devices
    tables_dont_fit,          // the ACPI tables do not fit their place in guest memory
    memory_overlaps_devices,  // the domain's memory reaches the I/O APIC and local APIC pages (0xFEC00000)
};

const char* pc_error_name(PcError error);

struct PcOps {
    // Gives `vm` a PC with `vcpus` local APICs: its devices on the VM's bus, its ACPI tables in
    // the VM's memory (mapped already), its wall clock from the host. Sets vm.pc.
    Status<PcError> (*attach)(Vm& vm, u32 vcpus, u64 memory_bytes);
    // Before `vcpu` enters: raises what the platform's timers have due, and injects the interrupt
    // the vCPU should take next (or asks for an interrupt window when it cannot yet). Its exits
    // then reach its own local APIC and MSRs.
    void (*prepare_entry)(Vm& vm, Vcpu& vcpu, VcpuState& state);
    // For a halted vCPU: has something arrived that wakes it (timers that are due are raised first)?
    bool (*wakes)(Vm& vm, Vcpu& vcpu);
    // For an application processor that waits for its start: did the guest's INIT and SIPI reach
    // its local APIC? If so the backend's vCPU is created in real mode at the SIPI's vector and
    // the vCPU runs from now on (true).
    bool (*start_processor)(Vm& vm, Vcpu& vcpu);
    // The host timestamp (platform::timestamp) at which the PC's next timer is due (~0: none
    // armed). The PC's models count in the guest's TSC, which has an offset of its own.
    u64 (*next_deadline)(const Vm& vm);
    // After an exit: should the slice end now? It should when the exit sent an interrupt to
    // another vCPU of the VM (an IPI: the receiver should run soon). A timer the exit armed ends
    // the slice only when it comes due (next_deadline: the run loop shortens the slice to it).
    bool (*end_slice)(Vm& vm);
    // For the VM that takes the host's console input: hands its serial port what has been typed
    // (as much as the port has room for; the rest waits in the host's UART) and prints what the
    // guest has sent since, even before its line ends (a prompt, an echo).
    void (*serve_console)(Vm& vm);
    // The VM stopped: its PC goes back to the pool.
    void (*detach)(Vm& vm);
};

// The PC platform of this build, or nullptr when it was built without one.
const PcOps* pc_platform();

}  // namespace nestor::virt
