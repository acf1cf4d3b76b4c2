// The devices every VM has, each VM its own, and the bus that routes its exits to them: the
// console, a 16550 at COM1, and the exit port. The owner of a VM keeps one of these beside it
// (it must not move once attached) and passes `bus` to the exit handler.
#pragma once

#include "nestor/virt/device_bus.hpp"
#include "nestor/virt/devices/exit_port.hpp"
#include "nestor/virt/devices/uart16550.hpp"

namespace nestor::virt {

inline constexpr u16 kGuestConsolePort = 0x3F8;  // COM1: the console's 16550
inline constexpr u16 kGuestExitPort = 0xF4;      // where QEMU's isa-debug-exit sits

class VmDevices {
public:
    // Registers the devices on the bus: once, before the VM's first exit. Without `console`
    // the console's port is left free (for a PC's 16550A); the console still prints the
    // console hypercall's text.
    Status<BusError> attach(bool console = true);

    DeviceBus bus;
    Uart16550 console{kGuestConsolePort};
    GuestExitPort exit_port;
};

}  // namespace nestor::virt
