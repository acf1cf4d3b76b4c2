// A guest console's text, collected into lines for the host's console (DeviceHost::console_line):
// what the console UARTs transmit and the console hypercall writes. '\n' ends a line, '\r' is
// dropped and other non-printable bytes show as '.', so that a guest cannot send escape sequences
// to the host's console; a line longer than kCapacity is printed in pieces of that length.
#pragma once

#include "nestor/virt/device_bus.hpp"

namespace nestor::virt {

class ConsoleLine {
public:
    static constexpr usize kCapacity = 120;

    constexpr ConsoleLine() = default;

    // One byte of console text.
    void put(u8 byte, DeviceHost& host);
    // Prints the partial line, if there is one.
    void flush(DeviceHost& host);
    // Prints the partial line, if there is one, as the start of a line the next text continues.
    void flush_part(DeviceHost& host);

private:
    usize length_ = 0;
    bool part_shown_ = false;        // the line's start went out with flush_part: its end must follow
    char line_[kCapacity + 1] = {};  // with room for a terminating NUL
};

}  // namespace nestor::virt
