#include "nestor/virt/devices/console_line.hpp"

namespace nestor::virt {

void ConsoleLine::put(u8 byte, DeviceHost& host) {
    if (byte == '\n') {
        flush(host);
        return;
    }
    if (byte == '\r') return;
    line_[length_++] = (byte >= 0x20 && byte < 0x7F) ? static_cast<char>(byte) : '.';
    if (length_ == kCapacity) flush(host);
}

void ConsoleLine::flush(DeviceHost& host) {
    if (length_ == 0 && !part_shown_) return;
    line_[length_] = '\0';
    host.console_line(line_, length_);
    length_ = 0;
    part_shown_ = false;
}

void ConsoleLine::flush_part(DeviceHost& host) {
    if (length_ == 0) return;
    line_[length_] = '\0';
    host.console_part(line_, length_);
    length_ = 0;
    part_shown_ = true;
}

}  // namespace nestor::virt
