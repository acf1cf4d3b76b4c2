// The guest's exit port, like QEMU's isa-debug-exit: an OUT ends the guest with the value written
// as its exit status. Reads float high, as from a port with nothing behind it.
#pragma once

#include "nestor/virt/device_bus.hpp"

namespace nestor::virt {

class GuestExitPort final : public Device {
public:
    DeviceOutcome io_write(u16 port, u8 size, u32 value, DeviceHost& host) override;
};

}  // namespace nestor::virt
