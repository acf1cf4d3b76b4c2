#include <catch2/catch.hpp>

#include "nestor/pc/guest_tsc.hpp"
#include "pc_fakes.hpp"

using namespace nestor;
using namespace nestor::pc;
using namespace nestor::pc::testing;

TEST_CASE("pc.guest_tsc.starts_at_zero_and_follows_the_host") {
    FakeClock host(123'456'789);
    GuestTsc tsc(host);
    CHECK(tsc.now() == 0);
    CHECK(tsc.adjust() == 0);
    CHECK(tsc.tsc_khz() == host.khz);
    CHECK(host.tsc + tsc.offset() == 0);  // what the backends add to the host's TSC
    host.tsc += 1000;
    CHECK(tsc.now() == 1000);
}

// SDM vol. 3B 18.17.3: a write to IA32_TSC moves IA32_TSC_ADJUST by as much, and a write to
// IA32_TSC_ADJUST moves the TSC by the difference; RDTSC (host + offset) agrees with both.
TEST_CASE("pc.guest_tsc.writes_move_the_tsc_and_its_adjustment_together") {
    FakeClock host(5000);
    GuestTsc tsc(host);
    host.tsc = 6000;
    tsc.write_tsc(10'000);
    CHECK(tsc.now() == 10'000);
    CHECK(tsc.adjust() == 9000);
    CHECK(host.tsc + tsc.offset() == 10'000);
    host.tsc = 7000;
    CHECK(tsc.now() == 11'000);
    tsc.write_adjust(100);
    CHECK(tsc.now() == 2100);
    CHECK(tsc.adjust() == 100);
    tsc.write_tsc(0);  // backwards: TSC_ADJUST goes negative, in two's complement
    CHECK(tsc.adjust() == static_cast<u64>(100 - 2100));
    CHECK(tsc.now() == 0);
    CHECK(host.tsc + tsc.offset() == 0);
}

TEST_CASE("pc.guest_tsc.host_time_of_a_guest_deadline") {
    FakeClock host(1'000'000);
    GuestTsc tsc(host);
    host.tsc = 1'000'500;  // the guest's TSC is 500
    CHECK(tsc.host_time(kNoDeadline) == kNoDeadline);
    CHECK(tsc.host_time(2000) == 1'002'000);
    CHECK(tsc.host_time(500) == host.tsc);                 // due now
    CHECK(tsc.host_time(0) == host.tsc);                   // passed: due now, never in the host's past
    CHECK(tsc.host_time(kNoDeadline - 1) == kNoDeadline);  // beyond the host's range
    tsc.write_tsc(kNoDeadline - 10);                       // a guest near the end of its TSC's range
    CHECK(tsc.host_time(kNoDeadline - 4) == host.tsc + 6);
    CHECK(tsc.host_time(5) == host.tsc);  // "after the wrap" is behind it: due now, no hang
}

// A machine reset builds the PC again (pc_ops.cpp): its TSC starts where the one before was, so it
// never goes backwards, with TSC_ADJUST back at 0.
TEST_CASE("pc.guest_tsc.a_reset_starts_it_where_the_tsc_before_was") {
    FakeClock host(5000);
    GuestTsc before(host);
    host.tsc = 9000;
    before.write_adjust(1'000'000);
    u64 at_reset = before.now();
    CHECK(at_reset == 1'004'000);
    GuestTsc after(host, at_reset);
    CHECK(after.now() == at_reset);
    CHECK(after.adjust() == 0);
    host.tsc += 10;
    CHECK(after.now() == at_reset + 10);
    CHECK(host.tsc + after.offset() == after.now());
}
