#include <catch2/catch.hpp>

#include "nestor/virt/unknown_msr_log.hpp"

using namespace nestor;
using namespace nestor::virt;

TEST_CASE("unknown_msr_log.each_index_once") {
    UnknownMsrLog log;
    CHECK(log.first_time(0x33));
    CHECK_FALSE(log.first_time(0x33));
    CHECK(log.first_time(0xC0011030));
    CHECK(log.first_time(0));  // index 0 is an index like any other, not an empty slot
    CHECK_FALSE(log.first_time(0));
    CHECK_FALSE(log.first_time(0x33));
    CHECK_FALSE(log.full());
}

TEST_CASE("unknown_msr_log.full_reports_further_msrs_once") {
    UnknownMsrLog log;
    for (u32 i = 0; i < UnknownMsrLog::kCapacity; ++i) REQUIRE(log.first_time(0x1000 + i));
    CHECK(log.full());
    for (u32 i = 0; i < UnknownMsrLog::kCapacity; ++i) CHECK_FALSE(log.first_time(0x1000 + i));
    CHECK(log.first_time(0x2000));        // the one "further MSRs" line
    CHECK_FALSE(log.first_time(0x2000));  // and nothing after it
    CHECK_FALSE(log.first_time(0x2001));
    CHECK_FALSE(log.first_time(0xFFFFFFFF));
    CHECK_FALSE(log.first_time(0x1000));  // still remembered
}

TEST_CASE("unknown_msr_log.logs_are_independent") {
    UnknownMsrLog a, b;  // one per domain
    CHECK(a.first_time(0x10));
    CHECK(b.first_time(0x10));
    CHECK_FALSE(a.first_time(0x10));
}
