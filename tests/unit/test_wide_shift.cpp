#include <catch2/catch.hpp>

#include "nestor/lib/wide_shift.hpp"

using nestor::u64;
using nestor::WideHalves;
using u128 = unsigned __int128;
using i128 = __int128;

static WideHalves halves(u128 value) { return {static_cast<u64>(value), static_cast<u64>(value >> 64)}; }

static bool same(WideHalves a, u128 b) { return a.low == static_cast<u64>(b) && a.high == static_cast<u64>(b >> 64); }

// Every count, against the compiler's own 128-bit shifts on the host, for values whose halves
// differ, whose top bit is set or clear, and that are all ones.
static const u128 kValues[] = {
    (u128{0x0123456789abcdef} << 64) | 0xfedcba9876543210,
    (u128{0x8000000000000001} << 64) | 0x8000000000000001,
    ~u128{0},
    1,
};

TEST_CASE("wide_shift.left_matches_every_count") {
    for (u128 value : kValues)
        for (unsigned count = 0; count < 128; ++count)
            CHECK(same(nestor::wide_shift_left(halves(value), count), value << count));
}

TEST_CASE("wide_shift.right_matches_every_count") {
    for (u128 value : kValues)
        for (unsigned count = 0; count < 128; ++count)
            CHECK(same(nestor::wide_shift_right(halves(value), count), value >> count));
}

TEST_CASE("wide_shift.right_arithmetic_keeps_the_sign_for_every_count") {
    for (u128 value : kValues)
        for (unsigned count = 0; count < 128; ++count)
            CHECK(same(nestor::wide_shift_right_arithmetic(halves(value), count),
                       static_cast<u128>(static_cast<i128>(value) >> count)));
}
