// The 16550 UART on COM1: the kernel's console.
#pragma once

#include "nestor/lib/types.hpp"

namespace nestor::x86::uart {

inline constexpr u16 kCom1 = 0x3F8;

void init(u16 base);
void write(u16 base, const char* text, usize length);
// Waits until everything written has left the UART (bounded), e.g. before powering off.
void flush(u16 base);
// One received byte, if the UART holds one (never waits).
bool read(u16 base, u8& byte);

}  // namespace nestor::x86::uart
