#include "nestor/virt/devices/exit_port.hpp"

namespace nestor::virt {

DeviceOutcome GuestExitPort::io_write(u16, u8, u32 value, DeviceHost&) {
    return DeviceOutcome::end_guest(StopReason::exit_port, value);
}

}  // namespace nestor::virt
