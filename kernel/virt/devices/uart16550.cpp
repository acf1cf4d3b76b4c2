#include "nestor/virt/devices/uart16550.hpp"

namespace nestor::virt {

DeviceOutcome Uart16550::io_read(u16 port, u8, u32& value, DeviceHost&) {
    u16 offset = static_cast<u16>(port - base_);
    if (offset == kLineStatus)
        value = kLsrIdle;
    else if (offset == kLineControl)
        value = line_control_;
    else if (offset != kData)
        value = 0;
    return {};
}

DeviceOutcome Uart16550::io_write(u16 port, u8, u32 value, DeviceHost& host) {
    u16 offset = static_cast<u16>(port - base_);
    // With the divisor latch open the data port sets the baud rate: not text.
    if (offset == kData) {
        if (!(line_control_ & kLcrDivisorLatch)) put(static_cast<u8>(value), host);
    } else if (offset == kLineControl) {
        line_control_ = static_cast<u8>(value);
    }
    return {};
}

void Uart16550::flush(DeviceHost& host) { line_.flush(host); }

}  // namespace nestor::virt
