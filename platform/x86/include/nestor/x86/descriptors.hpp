// The kernel's own GDT, TSS and IDT, replacing the boot stub's minimal GDT.
#pragma once

#include "nestor/lib/types.hpp"

namespace nestor::x86 {

inline constexpr u16 kKernelCode = 0x08;
inline constexpr u16 kKernelData = 0x10;
inline constexpr u16 kTss = 0x18;

// Interrupt stack table slot used for double faults and NMIs, so a kernel stack overflow
// still produces a report instead of a triple fault.
inline constexpr u8 kEmergencyStackIst = 1;

void load_descriptors();

}  // namespace nestor::x86
