#include "nestor/x86/uart16550.hpp"

#include "nestor/x86/cpu.hpp"

namespace nestor::x86::uart {
namespace {

enum Register : u16 {
    data = 0,
    interrupt_enable = 1,
    fifo_control = 2,
    line_control = 3,
    modem_control = 4,
    line_status = 5
};
constexpr u8 kDataReady = 1 << 0;
constexpr u8 kTransmitterEmpty = 1 << 5;
constexpr u8 kTransmitterIdle = 1 << 6;  // holding register and shift register both empty

void put(u16 base, char c) {
    // Bounded wait: a missing UART must not hang the kernel.
    for (u32 spins = 0; spins < 100000 && !(inb(base + line_status) & kTransmitterEmpty); ++spins) {
    }
    outb(base + data, static_cast<u8>(c));
}

}  // namespace

void init(u16 base) {
    outb(base + interrupt_enable, 0x00);
    outb(base + line_control, 0x80);  // divisor latch on
    outb(base + data, 0x01);          // 115200 baud
    outb(base + interrupt_enable, 0x00);
    outb(base + line_control, 0x03);  // 8 data bits, no parity, 1 stop bit
    outb(base + fifo_control, 0xC7);  // FIFO on, cleared, 14-byte threshold
    outb(base + modem_control, 0x03);
}

void write(u16 base, const char* text, usize length) {
    for (usize i = 0; i < length; ++i) {
        if (text[i] == '\n') put(base, '\r');
        put(base, text[i]);
    }
}

void flush(u16 base) {
    for (u32 spins = 0; spins < 100000 && !(inb(base + line_status) & kTransmitterIdle); ++spins) {
    }
}

bool read(u16 base, u8& byte) {
    if (!(inb(base + line_status) & kDataReady)) return false;
    byte = inb(base + data);
    return true;
}

}  // namespace nestor::x86::uart
