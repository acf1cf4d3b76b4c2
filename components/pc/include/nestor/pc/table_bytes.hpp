// Byte-level helpers of the firmware tables the platform writes (ACPI, SMBIOS): little-endian
// stores at any alignment, and the 8-bit checksum both specifications use (the bytes covered sum
// to zero).
#pragma once

#include "nestor/lib/types.hpp"

namespace nestor::pc::table_bytes {

inline void put8(u8* at, u8 value) { at[0] = value; }
inline void put16(u8* at, u16 value) {
    for (usize i = 0; i < 2; ++i) at[i] = static_cast<u8>(value >> (8 * i));
}
inline void put32(u8* at, u32 value) {
    for (usize i = 0; i < 4; ++i) at[i] = static_cast<u8>(value >> (8 * i));
}
inline void put64(u8* at, u64 value) {
    for (usize i = 0; i < 8; ++i) at[i] = static_cast<u8>(value >> (8 * i));
}

// The byte that makes `bytes` sum to zero with it.
inline u8 checksum(const u8* bytes, usize length) {
    u8 sum = 0;
    for (usize i = 0; i < length; ++i) sum = static_cast<u8>(sum + bytes[i]);
    return static_cast<u8>(-sum);
}

}  // namespace nestor::pc::table_bytes
