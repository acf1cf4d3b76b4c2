// The few symbols a freestanding C++ program still needs: the compiler may emit calls to the
// mem* functions for copies and fills and, built for size, to the 128-bit shifts; a pure virtual
// call must stop the kernel loudly.
#include "nestor/lib/assert.hpp"
#include "nestor/lib/types.hpp"
#include "nestor/lib/wide_shift.hpp"

using nestor::u64;
using nestor::u8;
using nestor::usize;
using nestor::WideHalves;
using u128 = unsigned __int128;
using i128 = __int128;

namespace {
WideHalves halves_of(u128 value) { return {static_cast<u64>(value), static_cast<u64>(value >> 64)}; }
u128 joined(WideHalves v) { return (u128{v.high} << 64) | v.low; }
}  // namespace

extern "C" {

// String instructions, 8 bytes at a time: a byte loop took almost 3 instructions per byte (the
// nested VMRUN's copies made up most of a reflected exit). DF is clear in the kernel (ABI).
void* memcpy(void* dst, const void* src, usize n) {
    void* d = dst;
    usize words = n / 8, bytes = n % 8;
    asm volatile("rep movsq" : "+D"(d), "+S"(src), "+c"(words) : : "memory");
    asm volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(bytes) : : "memory");
    return dst;
}

void* memmove(void* dst, const void* src, usize n) {
    auto* d = static_cast<u8*>(dst);
    auto* s = static_cast<const u8*>(src);
    if (d < s) {
        for (usize i = 0; i < n; ++i) d[i] = s[i];
    } else {
        for (usize i = n; i > 0; --i) d[i - 1] = s[i - 1];
    }
    return dst;
}

void* memset(void* dst, int value, usize n) {
    void* d = dst;
    usize words = n / 8, bytes = n % 8;
    u64 pattern = u64{static_cast<u8>(value)} * 0x0101010101010101;
    asm volatile("rep stosq" : "+D"(d), "+c"(words) : "a"(pattern) : "memory");
    asm volatile("rep stosb" : "+D"(d), "+c"(bytes) : "a"(pattern) : "memory");
    return dst;
}

int memcmp(const void* a, const void* b, usize n) {
    auto* x = static_cast<const u8*>(a);
    auto* y = static_cast<const u8*>(b);
    for (usize i = 0; i < n; ++i) {
        if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
    }
    return 0;
}

usize strlen(const char* s) {
    usize n = 0;
    while (s[n]) ++n;
    return n;
}

int strcmp(const char* a, const char* b) {
    while (*a && *a == *b) {
        ++a;
        ++b;
    }
    return static_cast<u8>(*a) - static_cast<u8>(*b);
}

i128 __ashlti3(i128 value, int count) {
    return static_cast<i128>(joined(nestor::wide_shift_left(halves_of(static_cast<u128>(value)), count)));
}

u128 __lshrti3(u128 value, int count) { return joined(nestor::wide_shift_right(halves_of(value), count)); }

i128 __ashrti3(i128 value, int count) {
    return static_cast<i128>(joined(nestor::wide_shift_right_arithmetic(halves_of(static_cast<u128>(value)), count)));
}

void __cxa_pure_virtual() { PANIC("pure virtual function called"); }

}  // extern "C"
