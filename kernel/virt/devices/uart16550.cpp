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

void Uart16550::flush(DeviceHost& host) {
    if (length_ == 0) return;
    line_[length_] = '\0';
    host.console_line(line_, length_);
    length_ = 0;
}

void Uart16550::put(u8 byte, DeviceHost& host) {
    if (byte == '\n') {
        flush(host);
        return;
    }
    if (byte == '\r') return;
    line_[length_++] = (byte >= 0x20 && byte < 0x7F) ? static_cast<char>(byte) : '.';
    if (length_ == kLineCapacity) flush(host);
}

}  // namespace nestor::virt
