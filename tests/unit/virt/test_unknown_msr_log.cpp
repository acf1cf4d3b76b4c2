#include <catch2/catch.hpp>

#include "nestor/virt/unknown_msr_log.hpp"

using namespace nestor;
using namespace nestor::virt;

using Report = UnknownMsrLog::Report;

TEST_CASE("unknown_msr_log.each_index_once") {
    UnknownMsrLog log;
    CHECK(log.note(0x33) == Report::this_msr);
    CHECK(log.note(0x33) == Report::none);
    CHECK(log.note(0xC0011030) == Report::this_msr);
    CHECK(log.note(0) == Report::this_msr);  // index 0 is an index like any other, not an empty slot
    CHECK(log.note(0) == Report::none);
    CHECK(log.note(0x33) == Report::none);
}

TEST_CASE("unknown_msr_log.full_reports_further_msrs_once") {
    UnknownMsrLog log;
    // Every one of the first kCapacity is reported as itself, the last included.
    for (u32 i = 0; i < UnknownMsrLog::kCapacity; ++i) REQUIRE(log.note(0x1000 + i) == Report::this_msr);
    for (u32 i = 0; i < UnknownMsrLog::kCapacity; ++i) CHECK(log.note(0x1000 + i) == Report::none);
    CHECK(log.note(0x2000) == Report::further_msrs);  // the one "further MSRs" line
    CHECK(log.note(0x2000) == Report::none);          // and nothing after it
    CHECK(log.note(0x2001) == Report::none);
    CHECK(log.note(0xFFFFFFFF) == Report::none);
    CHECK(log.note(0x1000) == Report::none);  // still remembered
}

TEST_CASE("unknown_msr_log.logs_are_independent") {
    UnknownMsrLog a, b;  // one per domain
    CHECK(a.note(0x10) == Report::this_msr);
    CHECK(b.note(0x10) == Report::this_msr);
    CHECK(a.note(0x10) == Report::none);
}
