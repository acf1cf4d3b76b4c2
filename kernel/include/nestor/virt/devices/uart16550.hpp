// A 16550 UART as a guest's console: what the guest writes to its transmit register is printed
// through the host (DeviceHost::console_line) a line at a time. Only what a console driver needs
// is modelled: LCR is kept (so the divisor latch bit is honoured: bytes written with it open set
// the baud rate and are not text), LSR always reads "transmitter empty and idle", the other
// registers read 0 and the receive buffer reads all-ones (nothing is ever received).
#pragma once

#include "nestor/virt/device_bus.hpp"
#include "nestor/virt/devices/console_line.hpp"

namespace nestor::virt {

class Uart16550 final : public Device {
public:
    static constexpr u16 kPorts = 8;
    // Register offsets from the base port.
    static constexpr u16 kData = 0;               // THR (write) / RBR (read); the divisor's low byte with DLAB set
    static constexpr u16 kLineControl = 3;        // LCR
    static constexpr u16 kLineStatus = 5;         // LSR
    static constexpr u8 kLcrDivisorLatch = 0x80;  // DLAB
    static constexpr u8 kLsrIdle = 0x60;          // THR empty and transmitter idle
    // Longer lines are printed in pieces of this length.
    static constexpr usize kLineCapacity = ConsoleLine::kCapacity;

    constexpr explicit Uart16550(u16 base) : base_(base) {}

    u16 base() const { return base_; }
    u8 line_control() const { return line_control_; }

    DeviceOutcome io_read(u16 port, u8 size, u32& value, DeviceHost& host) override;
    DeviceOutcome io_write(u16 port, u8 size, u32 value, DeviceHost& host) override;
    // Prints the partial line.
    void flush(DeviceHost& host) override;

    // One byte of console text (from THR, or the console hypercall): '\n' ends the line, '\r' is
    // dropped, other non-printable bytes show as '.', so that a guest cannot send escape
    // sequences to the host's console.
    void put(u8 byte, DeviceHost& host) { line_.put(byte, host); }

private:
    u16 base_;
    u8 line_control_ = 0;
    ConsoleLine line_;
};

}  // namespace nestor::virt
