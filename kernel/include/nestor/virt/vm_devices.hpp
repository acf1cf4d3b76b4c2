// The devices every VM has, each VM its own, and the bus that routes its exits to them: the
// console, a 16550 at COM1, and the exit port; a VM with nested virtualization also the
// nested-memory MSR. The owner of a VM keeps one of these beside it (it must not move once
// attached) and passes `bus` to the exit handler.
#pragma once

#include "nestor/virt/device_bus.hpp"
#include "nestor/virt/devices/exit_port.hpp"
#include "nestor/virt/devices/nested_memory_msr.hpp"
#include "nestor/virt/devices/uart16550.hpp"

namespace nestor::virt {

inline constexpr u16 kGuestConsolePort = 0x3F8;  // COM1: the console's 16550
inline constexpr u16 kGuestExitPort = 0xF4;      // where QEMU's isa-debug-exit sits

// Nestor's own read-only MSR ("NSM"): devices/nested_memory_msr.hpp.
inline constexpr u32 kMsrNestedMemory = 0x4E534D00;

class VmDevices {
public:
    // Registers the devices on the bus: once, before the VM's first exit. Without `console`
    // the console's port is left free (for a PC's 16550A); the console still prints the
    // console hypercall's text.
    Status<BusError> attach(bool console = true);
    // A machine reset (the VM boots again): the bus emptied, the console as new, and attach()
    // again; a PC's devices and the nested-memory MSR are registered again after it.
    Status<BusError> reset(bool console = true);
    // Registers the nested-memory MSR, reporting `held_bytes` (the VM's VmNestedHost count, which
    // must outlive the bus): for a VM with nested virtualization, once, after attach().
    Status<BusError> attach_nested_memory(const u64& held_bytes);

    DeviceBus bus;
    Uart16550 console{kGuestConsolePort};
    GuestExitPort exit_port;
    NestedMemoryMsr nested_memory;
};

}  // namespace nestor::virt
