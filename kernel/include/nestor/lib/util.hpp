// The few <utility>/<algorithm> pieces the kernel needs; the freestanding build has no C++ library.
#pragma once

#include "nestor/lib/types.hpp"

namespace nestor {

template <typename T> struct remove_reference {
    using type = T;
};
template <typename T> struct remove_reference<T&> {
    using type = T;
};
template <typename T> struct remove_reference<T&&> {
    using type = T;
};
template <typename T> using remove_reference_t = typename remove_reference<T>::type;

template <typename T> constexpr remove_reference_t<T>&& move(T&& value) noexcept {
    return static_cast<remove_reference_t<T>&&>(value);
}

template <typename T> constexpr T&& forward(remove_reference_t<T>& value) noexcept { return static_cast<T&&>(value); }

template <typename T> constexpr const T& min(const T& a, const T& b) { return b < a ? b : a; }
template <typename T> constexpr const T& max(const T& a, const T& b) { return a < b ? b : a; }

template <typename T, usize N> constexpr usize array_size(const T (&)[N]) { return N; }

// Overflow-checked addition: false if a + b wraps.
constexpr bool checked_add(u64 a, u64 b, u64& out) { return !__builtin_add_overflow(a, b, &out); }

inline void copy_bytes(void* dst, const void* src, usize n) { __builtin_memcpy(dst, src, n); }
inline void fill_bytes(void* dst, u8 value, usize n) { __builtin_memset(dst, value, n); }

}  // namespace nestor
