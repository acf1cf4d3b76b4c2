// What the PC's byte-wide ISA devices share: a port access wider than a byte reaches the bytes at
// port, port + 1, ... in that order, as the bus splits it (at most four; an access of no bytes
// reaches none), and the TSC rate their timers compute with.
#pragma once

#include "nestor/pc/links.hpp"

namespace nestor::pc {

inline constexpr u8 kMaxPortBytes = 4;

// `read_byte(port)` of each byte of the access, little-endian.
template <typename ReadByte> u32 read_bytes(u16 port, u8 size, ReadByte&& read_byte) {
    u32 value = 0;
    for (u8 i = 0; i < size && i < kMaxPortBytes; ++i) value |= u32{read_byte(static_cast<u16>(port + i))} << (8 * i);
    return value;
}

// `write_byte(port, byte)` of each byte of the access, lowest port first.
template <typename WriteByte> void write_bytes(u16 port, u8 size, u32 value, WriteByte&& write_byte) {
    for (u8 i = 0; i < size && i < kMaxPortBytes; ++i)
        write_byte(static_cast<u16>(port + i), static_cast<u8>(value >> (8 * i)));
}

// The guest clock's rate in Hz for a timer's arithmetic: its kHz held within 1..2^32, so that a
// clock reporting 0 never divides by zero and TSC ticks per second stay below 2^42.
inline u64 timer_tsc_hz(const GuestClock& clock) {
    constexpr u64 kMaxTscKhz = u64{1} << 32;
    const u64 khz = clock.tsc_khz();
    return (khz == 0 ? 1 : khz > kMaxTscKhz ? kMaxTscKhz : khz) * 1000;
}

}  // namespace nestor::pc
