// The PC platform (components/pc, docs/platform.md) as the kernel sees it: one constant table,
// like the nested component's, that a build with PC_PLATFORM on links in and one with it off
// does not (pc_platform() is then nullptr and a domain asking for `platform = "pc"` is refused).
// The kernel calls it only for a VM that has a PC (Vm::pc), at three points: when it builds the
// VM, before each entry (timers that are due, interrupts to inject) and while the VM waits (has an
// event arrived, when is its next timer due).
#pragma once

#include "nestor/lib/result.hpp"
#include "nestor/virt/exit.hpp"
#include "nestor/virt/vcpu_state.hpp"

namespace nestor::virt {

class Vm;
class Vcpu;
struct PcState;  // the component's; opaque to the kernel

enum class PcError : u8 {
    no_room,          // every PC of this boot is in use
    too_many_vcpus,   // more vCPUs than a PC here has local APICs
    bus_full,         // the VM's device bus has no room for the PC's devices
    tables_dont_fit,  // the ACPI or SMBIOS tables do not fit their place in guest memory
};

const char* pc_error_name(PcError error);

// What the run loop learns from prepare_entry.
struct PcEntry {
    // The host timestamp at which the PC's next timer is due (next_deadline): a timer armed by the
    // exit before comes due before the slice ends, and the run loop shortens the slice to it.
    u64 deadline;
    // The slice should end now: an interrupt reached another vCPU of the VM (an IPI: the
    // receiver should run soon).
    bool end_slice;
};

// What the PC made of an exit before the kernel handled it: two bits of one byte, which the
// short paths return and the run loop tests as they are (two bools would be packed and unpacked).
struct PcExit {
    static constexpr u8 kServed = 1;     // done (the instruction completed): the kernel has nothing more to do with it
    static constexpr u8 kEntryWork = 2;  // it may have changed what prepare_entry finds: call it before the next entry
    u8 bits;

    constexpr PcExit(bool served, bool entry_work)
        : bits(static_cast<u8>((served ? kServed : 0) | (entry_work ? kEntryWork : 0))) {}
    constexpr bool served() const { return (bits & kServed) != 0; }
    constexpr bool entry_work() const { return (bits & kEntryWork) != 0; }
};

struct PcOps {
    // Gives `vm` a PC with `vcpus` local APICs: its devices on the VM's bus, its ACPI tables in
    // the VM's memory (mapped already), its wall clock from the host. Sets vm.pc.
    Status<PcError> (*attach)(Vm& vm, u32 vcpus, u64 memory_bytes);
    // A machine reset of the VM, which boots again (vm_restart.hpp): every device as at power-on
    // and attached again to the VM's bus (emptied first), its ACPI tables written again (its
    // memory was cleared), each application processor waiting for INIT-SIPI-SIPI again. What a
    // reset leaves alone stays: the RTC's time and CMOS RAM (battery-backed) and the TSC, which
    // runs on.
    Status<PcError> (*reset)(Vm& vm);
    // Before `vcpu` enters: raises what the platform's timers have due, and injects the interrupt
    // the vCPU should take next (or asks for an interrupt window when it cannot yet). Its exits
    // then reach its own local APIC and MSRs. The run loop calls it at the start of a slice and
    // after each exit that may have changed what it finds (exit_served says which).
    PcEntry (*prepare_entry)(Vm& vm, Vcpu& vcpu, VcpuState& state);
    // Before the kernel handles an exit of a vCPU of the VM (without nested virtualization): the
    // PC serves the exits it has a short path for itself (an x2APIC register write), and says
    // whether the exit may have changed what prepare_entry finds.
    PcExit (*exit_served)(Vm& vm, Vcpu& vcpu, const VmExit& exit, VcpuState& state);
    // For a halted vCPU: has something arrived that wakes it (timers that are due are raised first)?
    bool (*wakes)(Vm& vm, Vcpu& vcpu);
    // For an application processor, before it runs: may it? One that waits for its start runs
    // once the guest's INIT and SIPI reached its local APIC (the backend's vCPU is created in
    // real mode at the SIPI's vector); an INIT sends one that runs back to waiting (its backend
    // vCPU released, its registers reset), as an operating system restarts a CPU it took offline,
    // unless its guest hypervisor's state holds the INIT back or turns it into a VM exit into it
    // (nested_ops.hpp init_signal).
    bool (*application_processor_runs)(Vm& vm, Vcpu& vcpu);
    // The host timestamp (platform::timestamp) at which the PC's next timer is due (~0: none
    // armed). The PC's models count in the guest's TSC, which has an offset of its own.
    u64 (*next_deadline)(const Vm& vm);
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
