#include <catch2/catch.hpp>
#include <vector>

#include "nestor/pc/cmos_rtc.hpp"
#include "pc_fakes.hpp"

using namespace nestor;
using namespace nestor::pc;
using namespace nestor::pc::testing;

namespace {

class LevelLines final : public IrqLines {
public:
    void set_level(u8 line, bool high) override {
        CHECK(line == CmosRtc::kIrqLine);
        CHECK(high != level);  // only changes are reported
        level = high;
        ++changes;
    }
    bool level = false;
    usize changes = 0;
};

constexpr u64 kHz = 1'000'000'000;
constexpr u64 kNov14_2023_221320 = 1700000000;  // a Tuesday

struct Rig {
    FakeClock clock{5'000'000'000, 1'000'000};  // 5 s at 1 GHz: a 1024 Hz tick and a second boundary
    LevelLines lines;
    CmosRtc rtc{clock, lines};
    NullHost host;

    u8 read(u8 index) {
        CHECK(rtc.io_write(CmosRtc::kIndexPort, 1, index, host).action == virt::DeviceOutcome::Action::complete);
        u32 value = 0xFFFFFFFF;
        CHECK(rtc.io_read(CmosRtc::kDataPort, 1, value, host).action == virt::DeviceOutcome::Action::complete);
        return static_cast<u8>(value);
    }
    void write(u8 index, u8 value) {
        rtc.io_write(CmosRtc::kIndexPort, 1, index, host);
        rtc.io_write(CmosRtc::kDataPort, 1, value, host);
    }
    void at(u64 tsc) { clock.tsc = tsc; }
    void run_to(u64 tsc) {
        clock.tsc = tsc;
        rtc.advance(tsc);
    }
};

// Ticks of a periodic rate on the absolute guest TSC grid: tick k at ceil(k * hz / rate_hz).
u64 tick_tsc(u64 k, u64 rate_hz) { return (k * kHz + rate_hz - 1) / rate_hz; }

}  // namespace

TEST_CASE("pc.rtc.time_from_a_known_epoch_in_bcd_and_binary") {
    Rig rig;
    rig.rtc.set_wall_clock(kNov14_2023_221320, rig.clock.tsc);
    CHECK(rig.read(CmosRtc::kStatusB) == CmosRtc::kPowerOnStatusB);  // BCD, 24-hour
    CHECK(rig.read(CmosRtc::kSeconds) == 0x20);
    CHECK(rig.read(CmosRtc::kMinutes) == 0x13);
    CHECK(rig.read(CmosRtc::kHours) == 0x22);
    CHECK(rig.read(CmosRtc::kDayOfWeek) == 3);  // Sunday is 1
    CHECK(rig.read(CmosRtc::kDayOfMonth) == 0x14);
    CHECK(rig.read(CmosRtc::kMonth) == 0x11);
    CHECK(rig.read(CmosRtc::kYear) == 0x23);
    CHECK(rig.read(CmosRtc::kCentury) == 0x20);

    rig.write(CmosRtc::kStatusB, CmosRtc::k24Hour | CmosRtc::kBinary);
    CHECK(rig.read(CmosRtc::kSeconds) == 20);
    CHECK(rig.read(CmosRtc::kHours) == 22);
    CHECK(rig.read(CmosRtc::kDayOfMonth) == 14);
    CHECK(rig.read(CmosRtc::kMonth) == 11);
    CHECK(rig.read(CmosRtc::kYear) == 23);
    CHECK(rig.read(CmosRtc::kCentury) == 20);
    rig.at(rig.clock.tsc + kHz + kHz / 2);
    CHECK(rig.read(CmosRtc::kSeconds) == 21);

    // Across a leap day and a century, on a TSC that started before the time was given.
    rig.write(CmosRtc::kStatusB, CmosRtc::k24Hour);
    rig.rtc.set_wall_clock(951782400 - 1, rig.clock.tsc + 10 * kHz);  // 2000-02-28 23:59:59, 10 s on
    CHECK(rig.read(CmosRtc::kSeconds) == 0x49);
    rig.at(rig.clock.tsc + 11 * kHz);
    CHECK(rig.read(CmosRtc::kMonth) == 0x02);
    CHECK(rig.read(CmosRtc::kDayOfMonth) == 0x29);
    CHECK(rig.read(CmosRtc::kDayOfWeek) == 3);
    rig.rtc.set_wall_clock(946684799, rig.clock.tsc);  // 1999-12-31 23:59:59, a Friday
    CHECK(rig.read(CmosRtc::kCentury) == 0x19);
    CHECK(rig.read(CmosRtc::kYear) == 0x99);
    CHECK(rig.read(CmosRtc::kDayOfWeek) == 6);
    rig.at(rig.clock.tsc + kHz);
    CHECK(rig.read(CmosRtc::kCentury) == 0x20);
    CHECK(rig.read(CmosRtc::kYear) == 0x00);
    CHECK(rig.read(CmosRtc::kMonth) == 0x01);
    CHECK(rig.read(CmosRtc::kDayOfMonth) == 0x01);
    CHECK(rig.read(CmosRtc::kDayOfWeek) == 7);
}

TEST_CASE("pc.rtc.twelve_hour_mode") {
    Rig rig;
    u64 midnight = kNov14_2023_221320 - (22 * 3600 + 13 * 60 + 20);
    u64 t0 = rig.clock.tsc;
    rig.rtc.set_wall_clock(midnight, t0);
    rig.write(CmosRtc::kStatusB, 0);  // 12-hour, BCD
    struct Case {
        u64 hour;
        u8 bcd;
        u8 binary;
    };
    for (Case c : {Case{0, 0x12, 12}, Case{1, 0x01, 1}, Case{11, 0x11, 11}, Case{12, 0x92, 0x8C}, Case{13, 0x81, 0x81},
                   Case{22, 0x90, 0x8A}, Case{23, 0x91, 0x8B}}) {
        rig.at(t0 + c.hour * 3600 * kHz);
        rig.write(CmosRtc::kStatusB, 0);
        CHECK(rig.read(CmosRtc::kHours) == c.bcd);
        rig.write(CmosRtc::kStatusB, CmosRtc::kBinary);
        CHECK(rig.read(CmosRtc::kHours) == c.binary);
    }
    // Setting the time in 12-hour mode: 7 PM, which 24-hour mode shows as 19.
    rig.write(CmosRtc::kStatusB, CmosRtc::kSet);
    rig.write(CmosRtc::kHours, CmosRtc::kPm | 0x07);
    rig.write(CmosRtc::kStatusB, 0);
    CHECK(rig.read(CmosRtc::kHours) == (CmosRtc::kPm | 0x07));
    rig.write(CmosRtc::kStatusB, CmosRtc::k24Hour);
    CHECK(rig.read(CmosRtc::kHours) == 0x19);
}

TEST_CASE("pc.rtc.update_in_progress_for_244_us_before_each_second") {
    Rig rig;
    u64 t0 = rig.clock.tsc;
    rig.rtc.set_wall_clock(kNov14_2023_221320, t0);
    u64 boundary = t0 + kHz;
    rig.at(boundary - 244'001);
    CHECK((rig.read(CmosRtc::kStatusA) & CmosRtc::kUpdateInProgress) == 0);
    rig.at(boundary - 244'000);
    CHECK((rig.read(CmosRtc::kStatusA) & CmosRtc::kUpdateInProgress) != 0);
    CHECK(rig.read(CmosRtc::kStatusA) == (CmosRtc::kPowerOnStatusA | CmosRtc::kUpdateInProgress));
    CHECK(rig.read(CmosRtc::kSeconds) == 0x20);  // the old second until the update
    rig.at(boundary - 1);
    CHECK((rig.read(CmosRtc::kStatusA) & CmosRtc::kUpdateInProgress) != 0);
    rig.at(boundary);
    CHECK((rig.read(CmosRtc::kStatusA) & CmosRtc::kUpdateInProgress) == 0);
    CHECK(rig.read(CmosRtc::kSeconds) == 0x21);
    // UIP is not writable; the divider and rate bits are.
    rig.write(CmosRtc::kStatusA, 0xA3);
    CHECK(rig.read(CmosRtc::kStatusA) == 0x23);
    // At an odd TSC rate, sampled every microsecond around a second's end: UIP for 244 of them.
    Rig odd;
    odd.clock.khz = 2'893'451;
    u64 start = odd.clock.tsc;
    odd.rtc.set_wall_clock(0, start);
    u64 end_of_second = start + u64{2'893'451'000};
    u64 set = 0, last_set = 0;
    for (u64 us = 0; us < 2000; ++us) {
        u64 tsc = end_of_second - 2'893'451 + us * 2'893'451 / 1000;  // from 1 ms before the second's end
        odd.clock.tsc = tsc;
        u32 value = 0;
        odd.rtc.io_write(CmosRtc::kIndexPort, 1, CmosRtc::kStatusA, odd.host);
        odd.rtc.io_read(CmosRtc::kDataPort, 1, value, odd.host);
        if (value & CmosRtc::kUpdateInProgress) {
            ++set;
            last_set = tsc;
        }
    }
    CHECK((set >= 243 && set <= 245));
    CHECK(last_set < end_of_second);
}

TEST_CASE("pc.rtc.set_freezes_updates_and_the_guest_sets_the_time") {
    Rig rig;
    u64 t0 = rig.clock.tsc;
    rig.rtc.set_wall_clock(kNov14_2023_221320, t0);
    rig.write(CmosRtc::kStatusB, CmosRtc::k24Hour | CmosRtc::kUpdateEnable);
    rig.write(CmosRtc::kStatusB, CmosRtc::k24Hour | CmosRtc::kUpdateEnable | CmosRtc::kSet);
    CHECK(rig.read(CmosRtc::kStatusB) == (CmosRtc::k24Hour | CmosRtc::kSet));  // SET clears UIE
    rig.at(t0 + 5 * kHz + kHz / 2);
    CHECK(rig.read(CmosRtc::kSeconds) == 0x20);  // frozen
    CHECK((rig.read(CmosRtc::kStatusA) & CmosRtc::kUpdateInProgress) == 0);
    CHECK(rig.rtc.deadline() == kNoDeadline);
    // 2030-06-15 08:30:00, as Linux's mc146818_set_time writes it.
    rig.write(CmosRtc::kYear, 0x30);
    rig.write(CmosRtc::kMonth, 0x06);
    rig.write(CmosRtc::kDayOfMonth, 0x15);
    rig.write(CmosRtc::kHours, 0x08);
    rig.write(CmosRtc::kMinutes, 0x30);
    rig.write(CmosRtc::kSeconds, 0x00);
    CHECK(rig.read(CmosRtc::kMinutes) == 0x30);
    rig.write(CmosRtc::kStatusB, CmosRtc::k24Hour);
    CHECK(rig.read(CmosRtc::kSeconds) == 0x00);
    rig.at(t0 + 6 * kHz);  // the host's next second boundary: half a second later
    CHECK(rig.read(CmosRtc::kSeconds) == 0x01);
    rig.at(t0 + 8 * kHz);
    CHECK(rig.read(CmosRtc::kSeconds) == 0x03);
    CHECK(rig.read(CmosRtc::kHours) == 0x08);
    CHECK(rig.read(CmosRtc::kDayOfMonth) == 0x15);
    CHECK(rig.read(CmosRtc::kDayOfWeek) == 7);  // a Saturday
    CHECK(rig.read(CmosRtc::kYear) == 0x30);
    // The guest's offset stays when the host resynchronises.
    rig.rtc.set_wall_clock(kNov14_2023_221320 + 3600, t0);
    CHECK(rig.read(CmosRtc::kHours) == 0x09);
    // A running clock takes a register written while it runs.
    rig.write(CmosRtc::kMinutes, 0x45);
    CHECK(rig.read(CmosRtc::kMinutes) == 0x45);
    rig.at(t0 + 68 * kHz);
    CHECK(rig.read(CmosRtc::kMinutes) == 0x46);
    CHECK(rig.read(CmosRtc::kSeconds) == 0x03);
}

// A machine reset builds the PC again (pc_ops.cpp): the RTC and its RAM are battery-backed, so the
// new RTC takes the old one's RAM, settings and the time the guest set; the RESET pin clears the
// interrupt enables (PIE, AIE, UIE, SQWE) and the flags of status C.
TEST_CASE("pc.rtc.a_reset_keeps_the_battery_backed_state_but_the_interrupt_enables") {
    Rig rig;
    u64 t0 = rig.clock.tsc;
    rig.rtc.set_wall_clock(kNov14_2023_221320, t0);
    rig.write(0x40, 0x5A);  // NVRAM
    rig.write(CmosRtc::kStatusB, CmosRtc::k24Hour | CmosRtc::kBinary | CmosRtc::kPeriodicEnable |
                                     CmosRtc::kUpdateEnable | CmosRtc::kSquareWave);
    rig.write(CmosRtc::kHours, 8);  // the guest's time: 08:13:20
    rig.run_to(t0 + kHz);
    CHECK(rig.lines.level);
    CmosRtc::Battery kept = rig.rtc.battery();

    Rig after;
    after.at(t0 + kHz);
    after.rtc.set_wall_clock(kNov14_2023_221320 + 1, t0 + kHz);
    after.rtc.restore_battery(kept);
    CHECK(after.read(0x40) == 0x5A);
    CHECK(after.read(CmosRtc::kStatusB) == (CmosRtc::k24Hour | CmosRtc::kBinary));
    CHECK(after.read(CmosRtc::kHours) == 8);
    CHECK(after.read(CmosRtc::kSeconds) == 21);
    CHECK(after.read(CmosRtc::kStatusC) == 0);
    CHECK_FALSE(after.lines.level);
    CHECK(after.rtc.deadline() == kNoDeadline);
}

TEST_CASE("pc.rtc.divider_reset_stops_the_clock_and_the_periodic_interrupt") {
    Rig rig;
    u64 t0 = rig.clock.tsc;
    rig.rtc.set_wall_clock(kNov14_2023_221320, t0);
    rig.write(CmosRtc::kStatusB, CmosRtc::k24Hour | CmosRtc::kPeriodicEnable);
    CHECK(rig.rtc.deadline() != kNoDeadline);
    rig.write(CmosRtc::kStatusA, 0x70 | 0x06);
    CHECK(rig.rtc.deadline() == kNoDeadline);
    rig.at(t0 + 3 * kHz);
    CHECK(rig.read(CmosRtc::kSeconds) == 0x20);
    rig.write(CmosRtc::kStatusA, CmosRtc::kPowerOnStatusA);
    rig.at(t0 + 4 * kHz);
    CHECK(rig.read(CmosRtc::kSeconds) == 0x21);
}

TEST_CASE("pc.rtc.status_c_read_clears_and_lowers_irq8") {
    Rig rig;
    u64 t0 = rig.clock.tsc;
    rig.rtc.set_wall_clock(kNov14_2023_221320, t0);
    rig.write(CmosRtc::kStatusA, CmosRtc::kDividerNormal);  // no periodic flag
    rig.write(CmosRtc::kStatusB, CmosRtc::k24Hour | CmosRtc::kUpdateEnable);
    CHECK(rig.rtc.deadline() == t0 + kHz);
    rig.run_to(t0 + kHz - 1);
    CHECK_FALSE(rig.lines.level);
    rig.run_to(t0 + kHz);
    CHECK(rig.lines.level);
    CHECK(rig.rtc.deadline() == kNoDeadline);  // UF is set: nothing more until C is read
    rig.run_to(t0 + 5 * kHz);
    CHECK(rig.lines.changes == 1);
    CHECK(rig.read(CmosRtc::kStatusC) == (CmosRtc::kIrqFlag | CmosRtc::kUpdateFlag));
    CHECK_FALSE(rig.lines.level);
    CHECK(rig.read(CmosRtc::kStatusC) == 0);
    CHECK(rig.rtc.deadline() == t0 + 6 * kHz);
    // Flags are set whether or not their interrupt is enabled; IRQF only for enabled ones.
    rig.write(CmosRtc::kStatusA, CmosRtc::kPowerOnStatusA);
    rig.write(CmosRtc::kStatusB, CmosRtc::k24Hour);
    rig.at(t0 + 7 * kHz);
    CHECK(rig.read(CmosRtc::kStatusC) == (CmosRtc::kPeriodicFlag | CmosRtc::kUpdateFlag));
    CHECK_FALSE(rig.lines.level);
    // Enabling an interrupt whose flag is set raises the line at once; disabling lowers it.
    rig.at(t0 + 8 * kHz);
    rig.write(CmosRtc::kStatusB, CmosRtc::k24Hour | CmosRtc::kUpdateEnable);
    CHECK(rig.lines.level);
    rig.write(CmosRtc::kStatusB, CmosRtc::k24Hour);
    CHECK_FALSE(rig.lines.level);
    // C and D are read-only; D reads "valid RAM".
    rig.write(CmosRtc::kStatusC, 0xFF);
    rig.write(CmosRtc::kStatusD, 0x00);
    CHECK(rig.read(CmosRtc::kStatusD) == CmosRtc::kValidRam);
    CHECK((rig.read(CmosRtc::kStatusC) & CmosRtc::kIrqFlag) == 0);
}

TEST_CASE("pc.rtc.periodic_interrupt_at_the_rate_of_status_a") {
    struct Rate {
        u8 select;
        u64 hz;
    };
    for (Rate rate : {Rate{0x06, 1024}, Rate{0x03, 8192}, Rate{0x0F, 2}, Rate{0x01, 256}, Rate{0x02, 128}}) {
        Rig rig;
        u64 t0 = rig.clock.tsc;
        rig.write(CmosRtc::kStatusA, CmosRtc::kDividerNormal | rate.select);
        rig.write(CmosRtc::kStatusB, CmosRtc::k24Hour | CmosRtc::kPeriodicEnable);
        u64 first = t0 * rate.hz / kHz + 1;  // t0 lies on every rate's grid
        usize interrupts = 0;
        for (u64 k = first; tick_tsc(k, rate.hz) <= t0 + kHz; ++k) {
            u64 due = tick_tsc(k, rate.hz);
            REQUIRE(rig.rtc.deadline() == due);
            rig.run_to(due);
            REQUIRE(rig.lines.level);
            u8 flags = rig.read(CmosRtc::kStatusC) & ~CmosRtc::kUpdateFlag;  // a second ends at the last tick
            REQUIRE(flags == (CmosRtc::kIrqFlag | CmosRtc::kPeriodicFlag));
            REQUIRE_FALSE(rig.lines.level);
            ++interrupts;
        }
        CHECK(interrupts == rate.hz);  // one second's worth
    }
    Rig off;
    off.write(CmosRtc::kStatusA, CmosRtc::kDividerNormal);  // rate 0: no periodic interrupt
    off.write(CmosRtc::kStatusB, CmosRtc::k24Hour | CmosRtc::kPeriodicEnable);
    CHECK(off.rtc.deadline() == kNoDeadline);
}

TEST_CASE("pc.rtc.no_storm_after_a_long_gap") {
    Rig rig;
    rig.write(CmosRtc::kStatusA, CmosRtc::kDividerNormal | 0x03);  // 8192 Hz
    rig.write(CmosRtc::kStatusB, CmosRtc::k24Hour | CmosRtc::kPeriodicEnable | CmosRtc::kUpdateEnable);
    u64 late = rig.clock.tsc + 3600 * kHz + 12345;
    rig.run_to(late);
    CHECK(rig.lines.changes == 1);  // an hour of ticks: one raise
    CHECK(rig.rtc.deadline() == kNoDeadline);
    rig.run_to(late + kHz);
    CHECK(rig.lines.changes == 1);
    CHECK(rig.read(CmosRtc::kStatusC) == (CmosRtc::kIrqFlag | CmosRtc::kPeriodicFlag | CmosRtc::kUpdateFlag));
    u64 due = rig.rtc.deadline();
    CHECK(due > late + kHz);
    CHECK(due == tick_tsc((late + kHz) * 8192 / kHz + 1, 8192));
}

TEST_CASE("pc.rtc.alarm_interrupt") {
    Rig rig;
    u64 t0 = rig.clock.tsc;
    rig.rtc.set_wall_clock(kNov14_2023_221320, t0);
    rig.write(CmosRtc::kStatusA, CmosRtc::kDividerNormal);  // no periodic flag
    rig.write(CmosRtc::kHoursAlarm, 0x22);
    rig.write(CmosRtc::kMinutesAlarm, 0x13);
    rig.write(CmosRtc::kSecondsAlarm, 0x25);
    rig.write(CmosRtc::kStatusB, CmosRtc::k24Hour | CmosRtc::kAlarmEnable);
    CHECK(rig.read(CmosRtc::kSecondsAlarm) == 0x25);
    CHECK(rig.rtc.deadline() == t0 + 5 * kHz);
    rig.run_to(t0 + 5 * kHz - 1);
    CHECK_FALSE(rig.lines.level);
    rig.run_to(t0 + 5 * kHz);
    CHECK(rig.lines.level);
    CHECK(rig.read(CmosRtc::kStatusC) == (CmosRtc::kIrqFlag | CmosRtc::kAlarmFlag | CmosRtc::kUpdateFlag));
    CHECK(rig.rtc.deadline() == t0 + 5 * kHz + 86400 * kHz);  // tomorrow
    // Don't-care hours and minutes: every minute at :30.
    rig.write(CmosRtc::kHoursAlarm, 0xFF);
    rig.write(CmosRtc::kMinutesAlarm, 0xC0);
    rig.write(CmosRtc::kSecondsAlarm, 0x30);
    CHECK(rig.rtc.deadline() == t0 + 10 * kHz);
    rig.run_to(t0 + 70 * kHz + 5);  // two alarms passed: one flag
    CHECK(rig.read(CmosRtc::kStatusC) == (CmosRtc::kIrqFlag | CmosRtc::kAlarmFlag | CmosRtc::kUpdateFlag));
    CHECK(rig.rtc.deadline() == t0 + 130 * kHz);
    // An alarm no time matches (minute 0x61) never fires.
    rig.write(CmosRtc::kMinutesAlarm, 0x61);
    CHECK(rig.rtc.deadline() == kNoDeadline);
    rig.run_to(t0 + 3 * 86400 * kHz);
    CHECK((rig.read(CmosRtc::kStatusC) & CmosRtc::kAlarmFlag) == 0);
    // In 12-hour mode the hours alarm is compared as the hours register shows it: 10 PM.
    rig.rtc.set_wall_clock(kNov14_2023_221320, rig.clock.tsc);
    rig.write(CmosRtc::kStatusB, CmosRtc::kAlarmEnable);
    rig.write(CmosRtc::kHoursAlarm, CmosRtc::kPm | 0x10);
    rig.write(CmosRtc::kMinutesAlarm, 0x14);
    rig.write(CmosRtc::kSecondsAlarm, 0x00);
    CHECK(rig.rtc.deadline() == rig.clock.tsc + 40 * kHz);
}

TEST_CASE("pc.rtc.memory_size_bytes") {
    Rig rig;
    auto pair = [&rig](u8 index) { return rig.read(index) | rig.read(static_cast<u8>(index + 1)) << 8; };
    constexpr u64 kMiB = 1024 * 1024;
    rig.rtc.set_memory_size(512 * kMiB);
    CHECK(pair(CmosRtc::kBaseMemory) == 640);
    CHECK(pair(CmosRtc::kExtendedMemory) == 0xFFFF);  // capped
    CHECK(pair(CmosRtc::kExtendedMemory2) == 0xFFFF);
    CHECK(pair(CmosRtc::kHighMemory) == (512 - 16) * 16);
    rig.rtc.set_memory_size(8 * kMiB);
    CHECK(pair(CmosRtc::kExtendedMemory) == 7 * 1024);
    CHECK(pair(CmosRtc::kExtendedMemory2) == 7 * 1024);
    CHECK(pair(CmosRtc::kHighMemory) == 0);
    rig.rtc.set_memory_size(512 * 1024);
    CHECK(pair(CmosRtc::kBaseMemory) == 512);
    CHECK(pair(CmosRtc::kExtendedMemory) == 0);
    rig.rtc.set_memory_size(3584 * kMiB);
    CHECK(pair(CmosRtc::kHighMemory) == (3584 - 16) * 16);
    rig.rtc.set_memory_size(~u64{0});
    CHECK(pair(CmosRtc::kHighMemory) == 0xFFFF);
    // RAM from 4 GiB (a PC's above its hole): three bytes of 64 KiB units.
    auto triple = [&](u8 index) { return pair(index) | rig.read(static_cast<u8>(index + 2)) << 16; };
    CHECK(triple(CmosRtc::kMemoryAbove4g) == 0);
    rig.rtc.set_memory_size(3072 * kMiB, 1024 * kMiB + 64 * 1024);
    CHECK(pair(CmosRtc::kHighMemory) == (3072 - 16) * 16);
    CHECK(triple(CmosRtc::kMemoryAbove4g) == 1024 * 16 + 1);
    rig.rtc.set_memory_size(3072 * kMiB, ~u64{0});
    CHECK(triple(CmosRtc::kMemoryAbove4g) == 0xFFFFFF);
}

TEST_CASE("pc.rtc.cmos_ram_reads_back_and_the_index_wraps") {
    Rig rig;
    for (u8 index = 0x0E; index < CmosRtc::kRamSize; ++index) {
        if (index == CmosRtc::kCentury) continue;
        rig.write(index, static_cast<u8>(index * 7 + 1));
    }
    for (u8 index = 0x0E; index < CmosRtc::kRamSize; ++index) {
        if (index == CmosRtc::kCentury) continue;
        CHECK(rig.read(index) == static_cast<u8>(index * 7 + 1));
    }
    rig.write(0x40, 0x5A);
    CHECK(rig.read(0xC0) == 0x5A);  // index bit 7 is the NMI mask
    CHECK(rig.rtc.nmi_masked());
    CHECK(rig.read(0x40) == 0x5A);
    CHECK_FALSE(rig.rtc.nmi_masked());
    u32 value = 0;
    rig.rtc.io_read(CmosRtc::kIndexPort, 1, value, rig.host);
    CHECK(value == 0xFF);  // the index port is write-only
    // A word write at 0x70 selects the index, then writes the data.
    rig.rtc.io_write(CmosRtc::kIndexPort, 2, 0xA5 << 8 | 0x41, rig.host);
    CHECK(rig.read(0x41) == 0xA5);
    rig.rtc.io_write(CmosRtc::kIndexPort, 1, 0x41, rig.host);
    rig.rtc.io_read(CmosRtc::kDataPort, 2, value, rig.host);
    CHECK(value == 0xFFA5);  // the byte past 0x71 floats
}

TEST_CASE("pc.rtc.hostile_accesses_never_crash") {
    Rig rig;
    u64 seed = 0xD1B54A32D192ED03ull;
    auto next = [&seed] {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        return seed;
    };
    const u64 rates[] = {0, 1, 1000, 3'579, 1'000'000, 2'893'451, u64{1} << 32, ~u64{0}};
    for (int i = 0; i < 200000; ++i) {
        u64 r = next();
        if (r % 97 == 0) rig.clock.khz = rates[next() % 8];
        if (r % 89 == 0) {
            u64 jump = next() >> (next() % 64);
            if (rig.clock.tsc + jump > rig.clock.tsc) rig.clock.tsc += jump;
        } else {
            rig.clock.tsc += next() % 100000;
        }
        if (r % 1009 == 0) rig.rtc.set_wall_clock(next() >> (next() % 64), next() >> (next() % 64));
        if (r % 1013 == 0) rig.rtc.set_memory_size(next());
        u16 port = static_cast<u16>(0x6E + next() % 6);  // 0x6E-0x73
        u8 size = static_cast<u8>(1u << (next() % 3));
        u32 value = static_cast<u32>(next());
        if (r % 4 == 0) value = (value & 0xFFFFFF00) | (next() % 14);  // mostly the clock's registers
        if (r & 1) {
            rig.rtc.io_write(port, size, value, rig.host);
        } else {
            rig.rtc.io_read(port, size, value, rig.host);
        }
        if (r % 3 == 0) {
            u64 now = rig.clock.tsc;
            rig.rtc.advance(now);
            u64 due = rig.rtc.deadline();
            REQUIRE((due == kNoDeadline || due > now));
        }
    }
    CHECK(rig.lines.changes > 0);
}
