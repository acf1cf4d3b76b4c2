// 128-bit shifts by a count held in a register, done on 64-bit halves. Built for size (-Oz), the
// compiler does not expand such a shift inline but calls __ashlti3 / __lshrti3 / __ashrti3, which
// the kernel, having no compiler runtime, defines with these (kernel/core/runtime.cpp). A count
// outside 0..127 is undefined, as it is for the shift operators.
#pragma once

#include "nestor/lib/types.hpp"

namespace nestor {

struct WideHalves {
    u64 low;
    u64 high;
};

constexpr WideHalves wide_shift_left(WideHalves v, unsigned count) {
    if (count == 0) return v;
    if (count >= 64) return {0, v.low << (count - 64)};
    return {v.low << count, (v.high << count) | (v.low >> (64 - count))};
}

constexpr WideHalves wide_shift_right(WideHalves v, unsigned count) {
    if (count == 0) return v;
    if (count >= 64) return {v.high >> (count - 64), 0};
    return {(v.low >> count) | (v.high << (64 - count)), v.high >> count};
}

// The high half's sign fills the vacated bits.
constexpr WideHalves wide_shift_right_arithmetic(WideHalves v, unsigned count) {
    const u64 fill = (v.high >> 63) != 0 ? ~u64{0} : 0;
    if (count == 0) return v;
    if (count >= 64) return {count == 64 ? v.high : (v.high >> (count - 64)) | (fill << (128 - count)), fill};
    return {(v.low >> count) | (v.high << (64 - count)), (v.high >> count) | (fill << (64 - count))};
}

}  // namespace nestor
