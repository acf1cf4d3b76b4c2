#include <catch2/catch.hpp>
#include <vector>

#include "nestor/pc/pit8254.hpp"
#include "pc_fakes.hpp"

using namespace nestor;
using namespace nestor::pc;
using namespace nestor::pc::testing;

namespace {

using u128 = unsigned __int128;

struct Edge {
    u8 line;
    bool high;
    u64 tsc;
};

class RecordingLines final : public IrqLines {
public:
    explicit RecordingLines(const FakeClock& clock) : clock_(clock) {}
    void set_level(u8 line, bool high) override { edges.push_back({line, high, clock_.tsc}); }
    // Pulses (high, then low) on `line`.
    usize pulses(u8 line) const {
        usize count = 0;
        for (usize i = 0; i + 1 < edges.size(); ++i)
            if (edges[i].line == line && edges[i].high && edges[i + 1].line == line && !edges[i + 1].high) ++count;
        return count;
    }
    std::vector<Edge> edges;

private:
    const FakeClock& clock_;
};

// The guest TSC delta by which `ticks` PIT input ticks have passed, and the ticks passed in a
// delta: computed here independently with 128-bit division.
u64 tsc_of(u64 ticks, u64 khz) {
    u128 hz = u128{khz} * 1000;
    return static_cast<u64>((u128{ticks} * hz + Pit8254::kInputHz - 1) / Pit8254::kInputHz);
}
u64 ticks_of(u64 tsc, u64 khz) { return static_cast<u64>(u128{tsc} * Pit8254::kInputHz / (u128{khz} * 1000)); }

struct Rig {
    FakeClock clock{1'000'000, 1'000'000};  // 1 GHz
    RecordingLines lines{clock};
    Pit8254 pit{clock, lines};
    NullHost host;

    u8 in(u16 port) {
        u32 value = 0xFFFFFFFF;
        CHECK(pit.io_read(port, 1, value, host).action == virt::DeviceOutcome::Action::complete);
        return static_cast<u8>(value);
    }
    void out(u16 port, u8 value) {
        CHECK(pit.io_write(port, 1, value, host).action == virt::DeviceOutcome::Action::complete);
    }
    void at(u64 tsc) { clock.tsc = tsc; }
    // Latches channel `channel` (word access) and reads the latched count.
    u16 latched(u8 channel) {
        out(Pit8254::kControlPort, static_cast<u8>(channel << 6));
        u8 low = in(static_cast<u16>(Pit8254::kFirstPort + channel));
        return static_cast<u16>(low | in(static_cast<u16>(Pit8254::kFirstPort + channel)) << 8);
    }
    void load(u8 channel, u16 count) {
        out(static_cast<u16>(Pit8254::kFirstPort + channel), static_cast<u8>(count));
        out(static_cast<u16>(Pit8254::kFirstPort + channel), static_cast<u8>(count >> 8));
    }
    bool out2() { return (in(Pit8254::kSystemControlPort)&Pit8254::kOut2) != 0; }
    void gate2(bool high) { out(Pit8254::kSystemControlPort, high ? Pit8254::kGate2 : 0); }
};

// Control words: channel << 6 | access | mode << 1.
constexpr u8 control(u8 channel, u8 mode, u8 access = Pit8254::kAccessWord) {
    return static_cast<u8>(channel << 6 | access | mode << 1);
}

}  // namespace

TEST_CASE("pc.pit.mode0_counts_down_and_out_rises_at_terminal_count") {
    Rig rig;
    u64 t0 = rig.clock.tsc;
    u64 khz = rig.clock.khz;
    rig.gate2(true);
    rig.out(Pit8254::kControlPort, control(2, 0));
    CHECK_FALSE(rig.out2());  // a mode 0 control word sets OUT low
    rig.load(2, 1000);
    CHECK(rig.latched(2) == 1000);
    rig.at(t0 + tsc_of(100, khz) - 1);
    CHECK(rig.latched(2) == 901);
    rig.at(t0 + tsc_of(100, khz));
    CHECK(rig.latched(2) == 900);
    rig.at(t0 + tsc_of(1000, khz) - 1);
    CHECK_FALSE(rig.out2());
    CHECK(rig.latched(2) == 1);
    rig.at(t0 + tsc_of(1000, khz));
    CHECK(rig.out2());
    CHECK(rig.latched(2) == 0);
    rig.at(t0 + tsc_of(1001, khz));
    CHECK(rig.out2());  // stays high, while the count wraps on
    CHECK(rig.latched(2) == 0xFFFF);
    rig.load(2, 10);  // a new count sets OUT low again
    CHECK_FALSE(rig.out2());
}

TEST_CASE("pc.pit.mode0_gate_low_pauses_the_count") {
    Rig rig;
    u64 khz = rig.clock.khz;
    rig.gate2(true);
    rig.out(Pit8254::kControlPort, control(2, 0));
    u64 t0 = rig.clock.tsc;
    rig.load(2, 1000);
    rig.at(t0 + tsc_of(300, khz));
    rig.gate2(false);
    CHECK(rig.latched(2) == 700);
    u64 resume = t0 + tsc_of(5000, khz);
    rig.at(resume);
    CHECK(rig.latched(2) == 700);  // nothing counted while the gate was low
    CHECK_FALSE(rig.out2());
    rig.gate2(true);
    rig.at(resume + tsc_of(200, khz));
    CHECK(rig.latched(2) == 500);
    rig.at(resume + tsc_of(700, khz) - 1);
    CHECK_FALSE(rig.out2());
    rig.at(resume + tsc_of(700, khz));
    CHECK(rig.out2());
}

TEST_CASE("pc.pit.mode1_one_shot_starts_at_each_gate_edge") {
    Rig rig;
    u64 khz = rig.clock.khz;
    rig.out(Pit8254::kControlPort, control(2, 1));
    rig.load(2, 500);
    CHECK(rig.out2());  // waits for a trigger with OUT high
    rig.at(rig.clock.tsc + tsc_of(1000, khz));
    CHECK(rig.out2());
    CHECK(rig.latched(2) == 500);
    u64 trigger = rig.clock.tsc;
    rig.gate2(true);
    CHECK_FALSE(rig.out2());
    rig.at(trigger + tsc_of(100, khz));
    CHECK(rig.latched(2) == 400);
    rig.at(trigger + tsc_of(500, khz) - 1);
    CHECK_FALSE(rig.out2());
    rig.at(trigger + tsc_of(500, khz));
    CHECK(rig.out2());
    // Retriggered: low for another full count.
    rig.gate2(false);
    u64 again = trigger + tsc_of(700, khz);
    rig.at(again);
    rig.gate2(true);
    CHECK_FALSE(rig.out2());
    rig.at(again + tsc_of(499, khz));
    CHECK_FALSE(rig.out2());
    rig.at(again + tsc_of(500, khz));
    CHECK(rig.out2());
}

TEST_CASE("pc.pit.mode2_rate_generator") {
    Rig rig;
    u64 khz = rig.clock.khz;
    rig.gate2(true);
    rig.out(Pit8254::kControlPort, control(2, 2));
    u64 t0 = rig.clock.tsc;
    rig.load(2, 100);
    CHECK(rig.out2());
    rig.at(t0 + tsc_of(98, khz));
    CHECK(rig.latched(2) == 2);
    CHECK(rig.out2());
    rig.at(t0 + tsc_of(99, khz));
    CHECK(rig.latched(2) == 1);
    CHECK_FALSE(rig.out2());  // low for the one tick before the reload
    rig.at(t0 + tsc_of(100, khz));
    CHECK(rig.latched(2) == 100);
    CHECK(rig.out2());
    rig.at(t0 + tsc_of(250, khz));
    CHECK(rig.latched(2) == 50);
    rig.at(t0 + tsc_of(299, khz));
    CHECK_FALSE(rig.out2());
    rig.gate2(false);  // forces OUT high and stops the count
    CHECK(rig.out2());
    CHECK(rig.latched(2) == 1);
    u64 restart = t0 + tsc_of(1000, khz);
    rig.at(restart);
    CHECK(rig.latched(2) == 1);
    rig.gate2(true);  // a rising edge reloads
    CHECK(rig.latched(2) == 100);
    rig.at(restart + tsc_of(30, khz));
    CHECK(rig.latched(2) == 70);
}

TEST_CASE("pc.pit.mode3_square_wave") {
    Rig rig;
    u64 khz = rig.clock.khz;
    rig.gate2(true);
    rig.out(Pit8254::kControlPort, control(2, 3));
    u64 t0 = rig.clock.tsc;
    rig.load(2, 100);
    rig.at(t0 + tsc_of(10, khz));
    CHECK(rig.out2());
    CHECK(rig.latched(2) == 80);  // counts down by two
    rig.at(t0 + tsc_of(49, khz));
    CHECK(rig.out2());
    CHECK(rig.latched(2) == 2);
    rig.at(t0 + tsc_of(50, khz));
    CHECK_FALSE(rig.out2());
    CHECK(rig.latched(2) == 100);
    rig.at(t0 + tsc_of(99, khz));
    CHECK_FALSE(rig.out2());
    rig.at(t0 + tsc_of(100, khz));
    CHECK(rig.out2());

    // An odd count: high one tick longer than low.
    rig.out(Pit8254::kControlPort, control(2, 3));
    u64 t1 = rig.clock.tsc;
    rig.load(2, 101);
    usize high = 0;
    for (u64 tick = 0; tick < 101; ++tick) {
        rig.at(t1 + tsc_of(tick, khz));
        if (rig.out2()) ++high;
    }
    CHECK(high == 51);
    rig.at(t1 + tsc_of(51, khz));
    CHECK_FALSE(rig.out2());
    CHECK(rig.latched(2) == 100);
}

TEST_CASE("pc.pit.mode4_and_mode5_strobe_for_one_tick") {
    Rig rig;
    u64 khz = rig.clock.khz;
    rig.gate2(true);
    rig.out(Pit8254::kControlPort, control(2, 4));
    u64 t0 = rig.clock.tsc;
    rig.load(2, 100);
    rig.at(t0 + tsc_of(99, khz));
    CHECK(rig.out2());
    rig.at(t0 + tsc_of(100, khz));
    CHECK_FALSE(rig.out2());
    CHECK(rig.latched(2) == 0);
    rig.at(t0 + tsc_of(101, khz));
    CHECK(rig.out2());
    CHECK(rig.latched(2) == 0xFFFF);

    // Mode 5 waits for the gate's rising edge.
    rig.gate2(false);
    rig.out(Pit8254::kControlPort, control(2, 5));
    rig.load(2, 100);
    rig.at(rig.clock.tsc + tsc_of(500, khz));
    CHECK(rig.out2());
    u64 trigger = rig.clock.tsc;
    rig.gate2(true);
    rig.at(trigger + tsc_of(100, khz));
    CHECK_FALSE(rig.out2());
    rig.at(trigger + tsc_of(101, khz));
    CHECK(rig.out2());
}

TEST_CASE("pc.pit.count_zero_is_65536") {
    Rig rig;
    rig.out(Pit8254::kControlPort, control(0, 2));
    u64 t0 = rig.clock.tsc;
    rig.load(0, 0);
    CHECK(rig.pit.deadline() == t0 + tsc_of(65536, rig.clock.khz));
    rig.at(t0 + tsc_of(1, rig.clock.khz));
    CHECK(rig.latched(0) == 0xFFFF);
}

TEST_CASE("pc.pit.lobyte_hibyte_flip_flop") {
    Rig rig;
    u64 khz = rig.clock.khz;
    rig.gate2(true);
    rig.out(Pit8254::kControlPort, control(2, 0));
    rig.out(0x42, 0x34);
    rig.out(0x42, 0x12);
    u64 t0 = rig.clock.tsc;
    // Live reads alternate low and high, each byte from the count as it is then.
    CHECK(rig.in(0x42) == 0x34);
    rig.at(t0 + tsc_of(0x35, khz));  // 0x1234 - 0x35 = 0x11FF
    CHECK(rig.in(0x42) == 0x11);
    CHECK(rig.in(0x42) == 0xFF);
    CHECK(rig.in(0x42) == 0x11);

    // Low byte only: writes set the low byte (high 0), reads give the low byte each time.
    rig.out(Pit8254::kControlPort, control(2, 0, Pit8254::kAccessLow));
    rig.out(0x42, 0x50);
    CHECK(rig.in(0x42) == 0x50);
    CHECK(rig.in(0x42) == 0x50);
    // High byte only.
    rig.out(Pit8254::kControlPort, control(2, 2, Pit8254::kAccessHigh));
    u64 t1 = rig.clock.tsc;
    rig.out(0x42, 0x02);  // 0x0200
    rig.at(t1 + tsc_of(0x100, khz));
    CHECK(rig.in(0x42) == 0x01);
    CHECK(rig.in(0x42) == 0x01);
    // A control word resets the flip-flops mid-word.
    rig.out(Pit8254::kControlPort, control(2, 0));
    rig.out(0x42, 0xAA);
    rig.out(Pit8254::kControlPort, control(2, 0));
    rig.out(0x42, 0x10);
    rig.out(0x42, 0x00);
    CHECK(rig.latched(2) == 0x0010);
}

TEST_CASE("pc.pit.counter_latch_holds_until_read") {
    Rig rig;
    u64 khz = rig.clock.khz;
    rig.out(Pit8254::kControlPort, control(0, 2));
    u64 t0 = rig.clock.tsc;
    rig.load(0, 0x1000);
    rig.at(t0 + tsc_of(100, khz));
    rig.out(Pit8254::kControlPort, 0x00);  // latch channel 0
    rig.at(t0 + tsc_of(200, khz));
    rig.out(Pit8254::kControlPort, 0x00);  // ignored: the first latch is unread
    CHECK(rig.in(0x40) == 0x9C);           // 0x1000 - 100 = 0x0F9C
    rig.at(t0 + tsc_of(300, khz));
    CHECK(rig.in(0x40) == 0x0F);
    // Released: live reads again.
    CHECK(rig.latched(0) == 0x1000 - 300);
}

TEST_CASE("pc.pit.read_back_latches_status_then_count") {
    Rig rig;
    u64 khz = rig.clock.khz;
    rig.out(Pit8254::kControlPort, control(0, 2));
    rig.gate2(true);
    rig.out(Pit8254::kControlPort, control(2, 0));
    u64 t0 = rig.clock.tsc;
    rig.load(0, 1000);
    rig.load(2, 50);
    // Right after the write: null count set until the count reaches the counting element.
    rig.out(Pit8254::kControlPort, 0xC0 | Pit8254::kReadBackNoCount | 0x02);  // status of channel 0
    CHECK(rig.in(0x40) == (Pit8254::kStatusOut | Pit8254::kStatusNullCount | Pit8254::kAccessWord | 2 << 1));
    rig.at(t0 + tsc_of(10, khz));
    // Count and status of channels 0 and 2 at once: each reads its status first.
    rig.out(Pit8254::kControlPort, 0xC0 | 0x02 | 0x08);
    rig.at(t0 + tsc_of(60, khz));
    CHECK(rig.in(0x40) == (Pit8254::kStatusOut | Pit8254::kAccessWord | 2 << 1));
    CHECK(rig.in(0x40) == (1000 - 10) % 256);
    CHECK(rig.in(0x40) == (1000 - 10) / 256);
    CHECK(rig.in(0x42) == (Pit8254::kAccessWord | 0 << 1));  // mode 0, OUT still low
    CHECK(rig.in(0x42) == 40);
    CHECK(rig.in(0x42) == 0);
    // Channel 2 has reached terminal count since: a new status shows OUT high.
    rig.out(Pit8254::kControlPort, 0xC0 | Pit8254::kReadBackNoCount | 0x08);
    CHECK(rig.in(0x42) == (Pit8254::kStatusOut | Pit8254::kAccessWord));
    CHECK(rig.in(0x42) == static_cast<u8>(50 - 60));  // then live
    // Mode 1 before its trigger: null count (the count waits for the gate).
    rig.out(Pit8254::kControlPort, control(1, 1, Pit8254::kAccessLow));
    rig.out(0x41, 7);
    rig.at(t0 + tsc_of(100, khz));
    rig.out(Pit8254::kControlPort, 0xC0 | Pit8254::kReadBackNoCount | 0x04);
    CHECK(rig.in(0x41) == (Pit8254::kStatusOut | Pit8254::kStatusNullCount | Pit8254::kAccessLow | 1 << 1));
}

TEST_CASE("pc.pit.bcd_is_refused") {
    Rig rig;
    rig.out(Pit8254::kControlPort, control(0, 2) | 1);
    u64 t0 = rig.clock.tsc;
    rig.load(0, 0x1000);
    rig.at(t0 + tsc_of(1, rig.clock.khz));
    rig.out(Pit8254::kControlPort, 0xC0 | Pit8254::kReadBackNoCount | 0x02);
    CHECK((rig.in(0x40) & 1) == 0);   // the status shows binary counting
    CHECK(rig.latched(0) == 0x0FFF);  // binary, not BCD 0999
}

TEST_CASE("pc.pit.channel0_irq_edges_at_deadlines") {
    for (u64 khz : {u64{1'000'000}, u64{2'893'451}, u64{3'579}}) {
        for (u8 mode : {2, 3}) {
            Rig rig;
            rig.clock.khz = khz;
            rig.out(Pit8254::kControlPort, control(0, mode));
            u64 t0 = rig.clock.tsc;
            CHECK(rig.pit.deadline() == kNoDeadline);  // nothing until the count
            rig.load(0, 1193);
            for (u64 period = 1; period <= 5; ++period) {
                u64 due = t0 + tsc_of(1193 * period, khz);
                REQUIRE(rig.pit.deadline() == due);
                rig.at(due - 1);
                rig.pit.advance(due - 1);
                CHECK(rig.lines.pulses(0) == period - 1);
                rig.at(due);
                rig.pit.advance(due);
                CHECK(rig.lines.pulses(0) == period);
                CHECK(rig.lines.edges.back().tsc == due);
            }
            CHECK(rig.lines.edges.size() == 10);  // pulses only: high, then low
            rig.out(Pit8254::kControlPort, control(0, mode));
            CHECK(rig.pit.deadline() == kNoDeadline);
        }
    }
}

TEST_CASE("pc.pit.one_shot_modes_raise_irq0_once") {
    Rig rig;
    u64 khz = rig.clock.khz;
    rig.out(Pit8254::kControlPort, control(0, 0));
    u64 t0 = rig.clock.tsc;
    rig.load(0, 500);
    CHECK(rig.pit.deadline() == t0 + tsc_of(500, khz));
    rig.at(t0 + tsc_of(100000, khz));
    rig.pit.advance(rig.clock.tsc);
    CHECK(rig.lines.pulses(0) == 1);
    CHECK(rig.pit.deadline() == kNoDeadline);
    rig.pit.advance(rig.clock.tsc + 1'000'000'000);
    CHECK(rig.lines.pulses(0) == 1);

    // Mode 4 (Linux's one-shot clockevent): OUT rises again one tick after terminal count.
    rig.out(Pit8254::kControlPort, control(0, 4));
    u64 t1 = rig.clock.tsc;
    rig.load(0, 500);
    CHECK(rig.pit.deadline() == t1 + tsc_of(501, khz));
    // A channel 0 in modes 1 and 5 never starts: its gate is tied high.
    rig.out(Pit8254::kControlPort, control(0, 1));
    rig.load(0, 500);
    CHECK(rig.pit.deadline() == kNoDeadline);
}

TEST_CASE("pc.pit.no_storm_after_a_long_gap") {
    Rig rig;
    u64 khz = rig.clock.khz;
    rig.out(Pit8254::kControlPort, control(0, 2));
    u64 t0 = rig.clock.tsc;
    rig.load(0, 1000);
    u64 late = t0 + tsc_of(1000ull * 1'000'000, khz) + 123'456;
    rig.at(late);
    rig.pit.advance(late);
    CHECK(rig.lines.pulses(0) == 1);  // a million missed ticks coalesce into one
    u64 ticks = ticks_of(late - t0, khz);
    u64 next = t0 + tsc_of((ticks / 1000 + 1) * 1000, khz);
    CHECK(rig.pit.deadline() == next);  // the next boundary of the same grid
    CHECK(rig.pit.deadline() > late);
    rig.pit.advance(late);
    CHECK(rig.lines.pulses(0) == 1);
}

TEST_CASE("pc.pit.deadline_moves_forward_even_when_a_period_is_under_a_tsc_tick") {
    for (u16 count : {1, 2, 3}) {
        Rig rig;
        rig.clock.khz = 1000;  // a 1 MHz TSC: slower than the PIT's input
        rig.out(Pit8254::kControlPort, control(0, 2));
        rig.load(0, count);
        for (int i = 0; i < 1000; ++i) {
            u64 due = rig.pit.deadline();
            REQUIRE(due != kNoDeadline);
            REQUIRE(due > rig.clock.tsc);
            rig.at(due);
            rig.pit.advance(due);
            REQUIRE(rig.pit.deadline() > due);
        }
        CHECK(rig.lines.pulses(0) == 1000);
    }
}

TEST_CASE("pc.pit.extreme_clocks_neither_overflow_nor_stop") {
    // Near the top of the TSC at the highest rate: the conversions stay exact.
    Rig rig;
    rig.clock.khz = u64{1} << 32;
    rig.clock.tsc = ~u64{0} - (u64{1} << 40);
    rig.out(Pit8254::kControlPort, control(0, 2));
    u64 t0 = rig.clock.tsc;
    rig.load(0, 50000);
    CHECK(rig.pit.deadline() == t0 + tsc_of(50000, rig.clock.khz));
    rig.at(t0 + tsc_of(12345, rig.clock.khz));
    CHECK(rig.latched(0) == 50000 - 12345);
    // A deadline beyond the TSC's range is none at all.
    rig.clock.tsc = ~u64{0} - 10;
    rig.out(Pit8254::kControlPort, control(0, 0));
    rig.load(0, 0);
    CHECK(rig.pit.deadline() == kNoDeadline);
    // The slowest clock, with a TSC that has run for ages.
    Rig slow;
    slow.clock.khz = 0;  // taken as 1 kHz
    slow.clock.tsc = 1000;
    slow.out(Pit8254::kControlPort, control(0, 3));
    slow.load(0, 2);
    slow.clock.tsc = ~u64{0} - 1;
    slow.pit.advance(slow.clock.tsc);
    CHECK(slow.lines.pulses(0) == 1);
    CHECK(slow.pit.deadline() > slow.clock.tsc);
    (void)slow.latched(0);
    (void)slow.in(Pit8254::kSystemControlPort);
}

TEST_CASE("pc.pit.port61_gate_speaker_refresh_and_out2") {
    Rig rig;
    CHECK((rig.in(0x61) & (Pit8254::kGate2 | Pit8254::kSpeakerData)) == 0);
    rig.out(0x61, Pit8254::kGate2 | Pit8254::kSpeakerData | 0xCC);
    // The NMI enables are kept; the status bits (SERR# 7, IOCHK# 6) are read-only.
    CHECK((rig.in(0x61) & 0xCF) ==
          (Pit8254::kGate2 | Pit8254::kSpeakerData | Pit8254::kSerrDisable | Pit8254::kIochkDisable));
    rig.out(0x61, Pit8254::kOut2 | Pit8254::kRefresh);  // read-only bits: nothing changes
    CHECK((rig.in(0x61) & (Pit8254::kGate2 | Pit8254::kSpeakerData)) == 0);

    // The refresh bit toggles every 18 input ticks (15.085 us) of guest time.
    u64 start = rig.clock.tsc;
    bool last = (rig.in(0x61) & Pit8254::kRefresh) != 0;
    u64 toggles = 0, last_toggle = 0;
    std::vector<u64> intervals;
    for (u64 tsc = start; tsc < start + 1'000'000; tsc += 100) {  // 1 ms at 1 GHz, every 100 ns
        rig.at(tsc);
        bool bit = (rig.in(0x61) & Pit8254::kRefresh) != 0;
        if (bit == last) continue;
        if (toggles++ > 0) intervals.push_back(tsc - last_toggle);
        last_toggle = tsc;
        last = bit;
    }
    CHECK((toggles == 66 || toggles == 67));
    for (u64 interval : intervals) CHECK((interval >= 15'000 && interval <= 15'200));

    // OUT2 reaches bit 5; a wide read covers the next port too, which floats.
    rig.out(0x61, Pit8254::kGate2);
    rig.out(Pit8254::kControlPort, control(2, 0));
    rig.load(2, 10);
    CHECK((rig.in(0x61) & Pit8254::kOut2) == 0);
    rig.at(rig.clock.tsc + tsc_of(10, rig.clock.khz));
    CHECK((rig.in(0x61) & Pit8254::kOut2) != 0);
    u32 wide = 0;
    rig.pit.io_read(0x61, 2, wide, rig.host);
    CHECK((wide >> 8) == 0xFF);
    CHECK(rig.in(Pit8254::kControlPort) == 0xFF);  // write-only
}

namespace {

// A guest running a calibration loop: each port access is an exit that costs about a
// microsecond of guest time, with jitter; reading the TSC costs a few cycles.
struct CalibratingGuest {
    Rig& rig;
    u64 seed = 12345;
    u64 inb_count = 0;

    u64 jitter() {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        return (seed >> 33) % 400;
    }
    void exit_cost() { rig.clock.tsc += rig.clock.khz * (800 + jitter()) / 1'000'000; }
    u8 inb(u16 port) {
        exit_cost();
        u8 value = rig.in(port);
        ++inb_count;
        return value;
    }
    void outb(u8 value, u16 port) {
        exit_cost();
        rig.out(port, value);
    }
    u64 get_cycles() { return rig.clock.tsc += 20; }
};

constexpr u64 kPitTickRate = 1193182;

// Linux's arch/x86/kernel/tsc.c quick_pit_calibrate(), as it polls the PIT.
bool pit_verify_msb(CalibratingGuest& g, u8 value) {
    g.inb(0x42);  // ignore the LSB
    return g.inb(0x42) == value;
}

bool pit_expect_msb(CalibratingGuest& g, u8 value, u64* tscp, u64* deltap) {
    int count;
    u64 tsc = 0, prev_tsc = 0;
    for (count = 0; count < 50000; count++) {
        if (!pit_verify_msb(g, value)) break;
        prev_tsc = tsc;
        tsc = g.get_cycles();
    }
    *deltap = g.get_cycles() - prev_tsc;
    *tscp = tsc;
    return count > 5;
}

u64 quick_pit_calibrate(CalibratingGuest& g) {
    constexpr u64 kMaxIterations = 50 * kPitTickRate / 1000 / 256;
    u64 tsc, delta, d1, d2;
    g.outb((g.inb(0x61) & ~0x02) | 0x01, 0x61);
    g.outb(0xb0, 0x43);
    g.outb(0xff, 0x42);
    g.outb(0xff, 0x42);
    pit_verify_msb(g, 0);
    if (pit_expect_msb(g, 0xff, &tsc, &d1)) {
        for (u64 i = 1; i <= kMaxIterations; i++) {
            if (!pit_expect_msb(g, static_cast<u8>(0xff - i), &delta, &d2)) break;
            delta -= tsc;
            if (i == 1 && d1 + d2 >= (delta * kMaxIterations) >> 11) return 0;
            if (d1 + d2 >= delta >> 11) continue;
            if (!pit_verify_msb(g, static_cast<u8>(0xfe - i))) break;
            return delta * kPitTickRate / (i * 256 * 1000);
        }
    }
    return 0;
}

// Linux's pit_calibrate_tsc(): polls OUT2 (port 0x61 bit 5) until a mode 0 count ends.
u64 pit_calibrate_tsc(CalibratingGuest& g, u32 latch, u64 ms, u64 loopmin) {
    g.outb((g.inb(0x61) & ~0x02) | 0x01, 0x61);
    g.outb(0xb0, 0x43);
    g.outb(latch & 0xff, 0x42);
    g.outb(static_cast<u8>(latch >> 8), 0x42);
    u64 tsc, t1, t2;
    tsc = t1 = t2 = g.get_cycles();
    u64 pitcnt = 0, tscmax = 0, tscmin = ~u64{0};
    while ((g.inb(0x61) & 0x20) == 0) {
        t2 = g.get_cycles();
        u64 delta = t2 - tsc;
        tsc = t2;
        tscmin = delta < tscmin ? delta : tscmin;
        tscmax = delta > tscmax ? delta : tscmax;
        pitcnt++;
    }
    if (pitcnt < loopmin || tscmax > 10 * tscmin) return ~u64{0};
    return (t2 - t1) / ms;
}

// SeaBIOS's calibrate_tsc() (src/hw/timer.c).
u64 seabios_calibrate_tsc(CalibratingGuest& g) {
    constexpr u64 kCalibrateCount = 0x800;
    u8 orig = g.inb(0x61);
    g.outb((orig & ~0x02) | 0x01, 0x61);
    g.outb(0xb0, 0x43);
    g.outb(kCalibrateCount & 0xff, 0x42);
    g.outb(kCalibrateCount >> 8, 0x42);
    u64 start = g.get_cycles();
    while ((g.inb(0x61) & 0x20) == 0) {
    }
    u64 end = g.get_cycles();
    g.outb(orig, 0x61);
    return ((end - start) * kPitTickRate + kCalibrateCount * 1000 - 1) / (kCalibrateCount * 1000);
}

bool within(u64 measured, u64 khz, double fraction) {
    double error = (static_cast<double>(measured) - static_cast<double>(khz)) / static_cast<double>(khz);
    return error < fraction && error > -fraction;
}

}  // namespace

TEST_CASE("pc.pit.linux_quick_pit_calibrate_ends_and_measures_the_tsc") {
    for (u64 khz : {u64{1'000'000}, u64{2'893'451}, u64{3'700'001}}) {
        Rig rig;
        rig.clock.khz = khz;
        CalibratingGuest guest{rig};
        u64 measured = quick_pit_calibrate(guest);
        INFO("khz " << khz << " measured " << measured << " after " << guest.inb_count << " reads");
        CHECK(measured != 0);
        CHECK(within(measured, khz, 0.001));
    }
}

TEST_CASE("pc.pit.linux_pit_calibrate_tsc_ends_and_measures_the_tsc") {
    for (u64 khz : {u64{1'000'000}, u64{2'893'451}}) {
        Rig rig;
        rig.clock.khz = khz;
        CalibratingGuest guest{rig};
        // CAL_LATCH, CAL_MS and CAL_PIT_LOOPS, as pit_hpet_ptimer_calibrate_cpu() passes them.
        u64 measured = pit_calibrate_tsc(guest, kPitTickRate / 100, 10, 1000);
        INFO("khz " << khz << " measured " << measured);
        CHECK(measured != ~u64{0});
        CHECK(within(measured, khz, 0.001));
    }
}

TEST_CASE("pc.pit.seabios_calibrate_tsc_ends_and_measures_the_tsc") {
    Rig rig;
    rig.clock.khz = 2'893'451;
    CalibratingGuest guest{rig};
    u64 measured = seabios_calibrate_tsc(guest);
    INFO("measured " << measured);
    CHECK(within(measured, rig.clock.khz, 0.005));  // 1.7 ms against about a microsecond per poll
    CHECK((rig.in(0x61) & Pit8254::kGate2) == 0);   // SeaBIOS put its gate back
}

TEST_CASE("pc.pit.hostile_accesses_never_crash") {
    Rig rig;
    u64 seed = 0x9E3779B97F4A7C15ull;
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
        if (r % 89 == 0)
            rig.clock.tsc += next() >> (next() % 64);
        else
            rig.clock.tsc += next() % 5000;
        u16 port = static_cast<u16>(0x3E + next() % 8);  // 0x3E-0x45
        if (r % 5 == 0) port = static_cast<u16>(0x60 + next() % 3);
        u8 size = static_cast<u8>(1u << (next() % 3));
        u32 value = static_cast<u32>(next());
        if (r & 1) {
            rig.pit.io_write(port, size, value, rig.host);
        } else {
            rig.pit.io_read(port, size, value, rig.host);
        }
        if (r % 3 == 0) {
            u64 now = rig.clock.tsc;
            rig.pit.advance(now);
            u64 due = rig.pit.deadline();
            REQUIRE((due == kNoDeadline || due > now));
        }
    }
    CHECK(rig.lines.edges.size() % 2 == 0);  // every edge a whole pulse
}

// IOCHK# (the NMI button): port 0x61 bit 6 shows it until the guest sets bit 3, as Linux's
// io_check_error() does; with bit 3 set it raises no NMI and shows nothing.
TEST_CASE("pc.pit.port61_io_channel_check") {
    Rig rig;
    CHECK((rig.in(0x61) & Pit8254::kIochk) == 0);
    CHECK(rig.pit.io_channel_check());
    CHECK((rig.in(0x61) & Pit8254::kIochk) != 0);
    rig.out(0x61, Pit8254::kGate2);  // other bits: the status stays
    CHECK((rig.in(0x61) & Pit8254::kIochk) != 0);
    rig.out(0x61, Pit8254::kIochkDisable);  // clears and disables
    CHECK((rig.in(0x61) & Pit8254::kIochk) == 0);
    CHECK_FALSE(rig.pit.io_channel_check());
    CHECK((rig.in(0x61) & Pit8254::kIochk) == 0);
    rig.out(0x61, 0);  // enabled again
    CHECK(rig.pit.io_channel_check());
    CHECK((rig.in(0x61) & (Pit8254::kIochk | Pit8254::kIochkDisable)) == Pit8254::kIochk);
}
