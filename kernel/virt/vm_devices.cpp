#include "nestor/virt/vm_devices.hpp"

namespace nestor::virt {

Status<BusError> VmDevices::attach(bool with_console) {
    // The console first: its OUTs are the busiest of any port's, and the lookup tries ranges in
    // the order they were registered.
    if (with_console)
        if (auto added = bus.add_ports(kGuestConsolePort, Uart16550::kPorts, console); !added) return added;
    return bus.add_ports(kGuestExitPort, 1, exit_port);
}

Status<BusError> VmDevices::reset(bool with_console) {
    bus.clear();
    console = Uart16550{kGuestConsolePort};
    return attach(with_console);
}

Status<BusError> VmDevices::attach_nested_memory(const u64& held_bytes) {
    nested_memory.watch(held_bytes);
    return bus.add_msrs(kMsrNestedMemory, 1, nested_memory);
}

}  // namespace nestor::virt
