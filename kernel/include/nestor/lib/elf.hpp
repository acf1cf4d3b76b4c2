// ELF identification and program-header constants (System V gABI), shared by the kernel's two ELF
// readers: the guest loader (kernel/virt/guest_loader.cpp) and the component loader
// (kernel/lib/module_image.cpp).
#pragma once

#include "nestor/lib/types.hpp"

namespace nestor::elf {

inline constexpr u32 kMagic = 0x464C457F;  // "\x7fELF", read little-endian
inline constexpr u8 kClass32 = 1;          // EI_CLASS
inline constexpr u8 kClass64 = 2;
inline constexpr u8 kDataLittleEndian = 1;  // EI_DATA
inline constexpr u16 kTypeExecutable = 2;   // ET_EXEC
inline constexpr u16 kTypeShared = 3;       // ET_DYN
inline constexpr u16 kMachine386 = 3;       // EM_386
inline constexpr u16 kMachineX86_64 = 62;   // EM_X86_64
inline constexpr u32 kSegmentLoad = 1;      // PT_LOAD

}  // namespace nestor::elf
