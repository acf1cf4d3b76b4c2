// The kernel's running guest: a Vm (one per domain, or one for a built-in guest) and its Vcpu.
// They own what a running guest has beyond its capabilities: the backend's handles, the
// vCPU's architectural state (the cap::VCpu's registers, for a domain), its nested state, its
// CPUID memo, its console, its exit counts and how it stopped; and the VM's one checked
// accessor of its guest-physical memory. Every part of the kernel that runs guests (the run
// loop, the scheduler, the toolstack, the platform hypercalls) works on these objects.
#pragma once

#include "nestor/cap/domain.hpp"
#include "nestor/cap/notification.hpp"
#include "nestor/cap/vcpu.hpp"
#include "nestor/nested/nested_ops.hpp"
#include "nestor/virt/exit_handler.hpp"
#include "nestor/virt/guest_memory.hpp"
#include "nestor/virt/nested_host.hpp"
#include "nestor/virt/pc_ops.hpp"
#include "nestor/virt/unknown_msr_log.hpp"
#include "nestor/virt/vm_devices.hpp"
#include "nestor/virt/virt_ops.hpp"

namespace nestor::virt {

class Vm;

// The vCPUs a VM has room for. A domain with more is refused by name.
inline constexpr u32 kMaxVcpusPerVm = 8;

// A vCPU's exits, by ExitKind: counted where a total would be (one increment per exit); the
// total is their sum.
struct ExitCounts {
    u64 by_kind[kExitKinds] = {};
    u64 preemptions = 0;
    u64 slices_without_exit = 0;  // preemptions in a row, for the watchdog

    u64 total() const {
        u64 sum = 0;
        for (u64 n : by_kind) sum += n;
        return sum;
    }
};

class Vcpu {
public:
    Vm* vm = nullptr;
    u32 index = 0;                                  // its place in the VM: vCPU 0 starts at the entry point
    VcpuHandle handle = nullptr;                    // the backend's vCPU; nullptr before creation and once released
    cap::VCpu* capability = nullptr;                // nullptr for a built-in guest
    nested::NestedVcpu nested{};                    // ops == nullptr: the domain may not nest
    CpuidMemo cpuid_memo{};                         // its CPUID answers (starts empty: fills as the guest asks)
    const CpuidTopology* cpuid_topology = nullptr;  // a PC's vCPU: its topology and timing leaf
    // A PC's application processor: its local APIC's INIT-pending flag (an INIT sends it back to
    // waiting for INIT-SIPI-SIPI: PcOps::application_processor_runs). nullptr for vCPU 0.
    const bool* init_pending = nullptr;
    ExitCounts exits{};
    bool waiting = false;        // halted: runs again once an event arrives for it
    bool interrupt_due = false;  // its signal interrupt waits for the vCPU to take it
    // A PC's application processor: created, but waiting for INIT-SIPI-SIPI from the guest.
    bool awaiting_startup = false;
    VmExit last_exit{};     // its latest exit
    VcpuState own_state{};  // a built-in guest's registers

    // The registers it runs with: its cap::VCpu's for a domain (so VCPU_READ / VCPU_WRITE reach
    // them while it is stopped), its own for a built-in guest.
    VcpuState& state() { return capability ? capability->state() : own_state; }
    // Its nested state if its domain was accepted with nested virtualization, nullptr otherwise.
    nested::NestedVcpu* nested_state() { return nested.ops ? &nested : nullptr; }
};

class Vm {
public:
    const char* name = nullptr;
    // How the log names it: "appliance: domain" or "virt: guest".
    const char* label = nullptr;
    const VirtOps* ops = nullptr;
    VmHandle handle = nullptr;
    cap::Domain* domain = nullptr;              // nullptr for a built-in guest
    cap::Notification* notification = nullptr;  // where signals for it arrive; nullptr: none can
    u64 physcaps = 0;                           // its PHYSCAPS answer (cap::physcaps_answer(), fixed at boot)
    u32 index = 0;                              // its place in the manifest: the badge of its signals
    GuestMemory memory{};
    nested::NestedDomain nested{};
    VmNestedHost nested_host{};
    VmDevices devices{};  // its console, exit port and the bus that routes exits to them
    // Its PC (`platform = "pc"`): the component's state and table; nullptr for the bare platform.
    PcState* pc = nullptr;
    const PcOps* pc_ops = nullptr;
    bool console_input = false;  // what is typed on the host's console goes to its PC's serial port
    // A domain whose manifest says on_reset = "restart": boots it again after a reset of its
    // machine (vm_restart.hpp); false when that failed (reported). nullptr: a reset stops it.
    bool (*boot_again)(Vm& vm) = nullptr;
    u32 restarts = 0;  // how often it booted again
    // Its vCPUs: vcpus[0] starts at the guest's entry point; on a PC the others wait for the
    // guest's INIT-SIPI-SIPI. Only the first vcpu_count are used.
    Vcpu vcpus[kMaxVcpusPerVm]{};
    u32 vcpu_count = 1;
    bool running = false;
    ExitOutcome outcome{};         // how it stopped
    VmExit last_exit{};            // the exit that stopped it (of the vCPU that stopped it)
    UnknownMsrLog unknown_msrs{};  // the MSRs nothing emulates that it touched (each logged once)

    // Names it and attaches its devices to its bus: once, first. A VM that will have a PC leaves
    // the console port to the PC's 16550A.
    void set_up(const char* vm_name, const char* vm_label, const VirtOps& backend, bool pc_console = false);
    // Binds the VM to its domain and its first `count` vCPUs to the domain's.
    void bind(cap::Domain& bound, u32 count = 1);
    // Creates the backend's vCPU `index` in `initial` mode (the architectural values go to its state).
    Status<VirtError> create_vcpu(const InitialMode& initial, u32 index = 0);
    // The same for a PC's application processor at its start: with the domain's nested
    // virtualization, if it has it (its state set up for vCPU 0 when the domain was built).
    Status<VirtError> create_application_processor(const InitialMode& initial, u32 index);
    // Marks it running (its vCPU's registers are then out of VCPU_READ / VCPU_WRITE's reach).
    void start();
    // It stopped for good with `outcome` (from `last`'s exit): records it and frees its vCPUs on
    // the backend.
    void stop(const ExitOutcome& how, const VmExit& last = VmExit{});
    // Frees one vCPU's nested state and backend vCPU (its registers stay, for VCPU_READ).
    void release_vcpu(Vcpu& v);
    // Puts a released vCPU's registers and bookkeeping back as they were before its first entry.
    void reset_vcpu(Vcpu& v);
    // Frees the nested state, the backend's vCPUs and its PC. The backend's VM stays: the
    // domain's mappings follow it until the domain goes (its frames stay the toolstack's).
    void release();
    // A machine reset, before the VM boots again: frees the nested state and the backend's vCPUs
    // (its PC stays, to be reset), and puts every vCPU's registers and bookkeeping back as they
    // were before its first entry.
    void power_off();
    // Its vCPUs' exit counts, summed.
    ExitCounts exits() const {
        ExitCounts sum{};
        for (u32 i = 0; i < vcpu_count; ++i) {
            for (usize k = 0; k < kExitKinds; ++k) sum.by_kind[k] += vcpus[i].exits.by_kind[k];
            sum.preemptions += vcpus[i].exits.preemptions;
        }
        return sum;
    }

private:
    // The nested state and the backend's vCPUs freed (release, power_off).
    void release_vcpus();
};

}  // namespace nestor::virt
