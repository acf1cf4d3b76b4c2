// Fixed-width integer names used across the kernel. The freestanding build has no C++ library,
// so these come straight from the compiler's predefined macros.
#pragma once

namespace nestor {

using u8 = __UINT8_TYPE__;
using u16 = __UINT16_TYPE__;
using u32 = __UINT32_TYPE__;
using u64 = __UINT64_TYPE__;
using i8 = __INT8_TYPE__;
using i16 = __INT16_TYPE__;
using i32 = __INT32_TYPE__;
using i64 = __INT64_TYPE__;
using usize = __SIZE_TYPE__;
using uptr = __UINTPTR_TYPE__;
using paddr = u64;  // a physical address
using vaddr = u64;  // a kernel virtual address

inline constexpr usize kPageSize = 4096;
inline constexpr usize kLargePageSize = 2 * 1024 * 1024;

constexpr u64 align_down(u64 value, u64 align) { return value & ~(align - 1); }
constexpr u64 align_up(u64 value, u64 align) { return (value + align - 1) & ~(align - 1); }
constexpr bool is_aligned(u64 value, u64 align) { return (value & (align - 1)) == 0; }

}  // namespace nestor
