// a * b / divisor without overflow in the product: the 128-bit product is divided by one DIV
// (the kernel has no compiler runtime for a 128-bit division). Guest timers convert between clock
// rates with it. A quotient that does not fit 64 bits saturates to all-ones; a divisor of 0 too.
#pragma once

#include "nestor/lib/types.hpp"

namespace nestor {

inline u64 mul_div(u64 a, u64 b, u64 divisor) {
    unsigned __int128 product = static_cast<unsigned __int128>(a) * b;
    u64 high = static_cast<u64>(product >> 64);
    u64 low = static_cast<u64>(product);
    if (divisor == 0 || high >= divisor) return ~u64{0};
    u64 quotient, remainder;
    asm("divq %4" : "=a"(quotient), "=d"(remainder) : "a"(low), "d"(high), "rm"(divisor));
    return quotient;
}

// The same, rounded up.
inline u64 mul_div_up(u64 a, u64 b, u64 divisor) {
    unsigned __int128 product = static_cast<unsigned __int128>(a) * b;
    u64 high = static_cast<u64>(product >> 64);
    u64 low = static_cast<u64>(product);
    if (divisor == 0 || high >= divisor) return ~u64{0};
    u64 quotient, remainder;
    asm("divq %4" : "=a"(quotient), "=d"(remainder) : "a"(low), "d"(high), "rm"(divisor));
    return remainder != 0 && quotient != ~u64{0} ? quotient + 1 : quotient;
}

}  // namespace nestor
