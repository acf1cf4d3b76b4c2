#include <catch2/catch.hpp>

#include "nestor/pc/acpi_pm.hpp"
#include "pc_fakes.hpp"

using namespace nestor;
using namespace nestor::pc;
using namespace nestor::pc::testing;

namespace {

class RecordingLines final : public IrqLines {
public:
    void set_level(u8, bool high) override { raised += high ? 1 : 0; }
    int raised = 0;
};

constexpr u16 kBase = kDefaultPmBase;
constexpr u16 kStatus = kBase + kPm1EventOffset;
constexpr u16 kEnable = kBase + kPm1EventOffset + 2;
constexpr u16 kControl = kBase + kPm1ControlOffset;
constexpr u16 kTimer = kBase + kPmTimerOffset;

// A TSC of exactly 3.579545 GHz: one PM timer tick per 1000 TSC ticks.
constexpr u64 kTickKhz = kPmTimerHz;
constexpr u64 kTscPerTick = 1000;

struct Rig {
    FakeClock clock;
    RecordingLines lines;
    NullHost host;
    AcpiPm pm{clock, lines, kBase};

    u32 read(u16 port, u8 size) {
        u32 value = ~u32{0};
        auto outcome = pm.io_read(port, size, value, host);
        CHECK(outcome.action == virt::DeviceOutcome::Action::complete);
        return value;
    }
    virt::DeviceOutcome write(u16 port, u8 size, u32 value) { return pm.io_write(port, size, value, host); }
};

bool completes(const virt::DeviceOutcome& outcome) { return outcome.action == virt::DeviceOutcome::Action::complete; }

// The PM timer by the definition: TSC ticks * 3579545 / TSC Hz, all in 128 bits, modulo 2^32.
u32 reference_timer(u64 tsc, u64 khz) {
    using u128 = unsigned __int128;
    return static_cast<u32>(u128{tsc} * kPmTimerHz / (u128{khz} * 1000));
}

u16 sleep_command(u16 type) { return static_cast<u16>((type << kPm1SleepTypeShift) | kPm1SleepEnable); }

}  // namespace

TEST_CASE("pc.acpi_pm.s5_shuts_down") {
    Rig rig;
    auto word = rig.write(kControl, 2, sleep_command(kSleepTypeS5));
    CHECK(word.action == virt::DeviceOutcome::Action::stop);
    CHECK(word.reason == virt::StopReason::shutdown);
    CHECK(word.code == 0);

    // The high byte alone holds SLP_TYP and SLP_EN; a dword write at the block also reaches it.
    Rig byte_rig;
    auto byte = byte_rig.write(kControl + 1, 1, sleep_command(kSleepTypeS5) >> 8);
    CHECK(byte.action == virt::DeviceOutcome::Action::stop);
    CHECK(byte.reason == virt::StopReason::shutdown);
    Rig dword_rig;
    auto dword = dword_rig.write(kControl, 4, sleep_command(kSleepTypeS5));
    CHECK(dword.reason == virt::StopReason::shutdown);
}

TEST_CASE("pc.acpi_pm.other_sleep_types_are_ignored") {
    Rig rig;
    for (u16 type = 0; type < 8; ++type) {
        if (type == kSleepTypeS5) continue;
        CHECK(completes(rig.write(kControl, 2, sleep_command(type))));
        u32 control = rig.read(kControl, 2);
        CHECK((control & kPm1SleepTypeMask) >> kPm1SleepTypeShift == type);
        CHECK((control & kPm1SleepEnable) == 0);  // write-only
    }
    // ACPICA's first write: S5's type without SLP_EN, which only sets the type.
    CHECK(completes(rig.write(kControl, 2, u32{kSleepTypeS5} << kPm1SleepTypeShift)));
    CHECK((rig.read(kControl, 2) & kPm1SleepTypeMask) == u32{kSleepTypeS5} << kPm1SleepTypeShift);
}

TEST_CASE("pc.acpi_pm.sci_en_always_reads_one") {
    Rig rig;
    CHECK(rig.read(kControl, 2) == kPm1SciEnable);
    CHECK(completes(rig.write(kControl, 2, 0)));
    CHECK((rig.read(kControl, 2) & kPm1SciEnable) != 0);
    CHECK(completes(rig.write(kControl, 2, kPm1BusMasterReload | 0x0004)));  // GBL_RLS reads 0
    CHECK(rig.read(kControl, 2) == (kPm1SciEnable | kPm1BusMasterReload));
    CHECK(rig.lines.raised == 0);
}

TEST_CASE("pc.acpi_pm.timer_runs_at_3579545_hz") {
    Rig rig;
    rig.clock.khz = 2'500'000;
    rig.clock.tsc = 2'500'000'000;  // one second
    CHECK(rig.read(kTimer, 4) == kPmTimerHz);
    rig.clock.tsc = 1'250'000'000;
    CHECK(rig.read(kTimer, 4) == kPmTimerHz / 2);

    // Against the 128-bit formula, far into the guest's life and at an odd frequency.
    rig.clock.khz = 2'893'417;
    for (u64 tsc : {u64{1}, u64{123'456'789'012}, u64{1} << 50, ~u64{0} / 3, ~u64{0}}) {
        rig.clock.tsc = tsc;
        u32 expected = reference_timer(tsc, rig.clock.khz);
        CHECK(rig.read(kTimer, 4) == expected);
        CHECK(rig.pm.timer() == expected);
    }
    // The same at a frequency whose product no longer fits 64 bits.
    rig.clock.khz = u64{1} << 40;
    rig.clock.tsc = ~u64{0} - 12345;
    CHECK(rig.read(kTimer, 4) == reference_timer(rig.clock.tsc, rig.clock.khz));
}

TEST_CASE("pc.acpi_pm.timer_wraps_at_32_bits") {
    Rig rig;
    rig.clock.khz = kTickKhz;
    rig.clock.tsc = u64{0xFFFFFFFF} * kTscPerTick;
    CHECK(rig.read(kTimer, 4) == 0xFFFFFFFF);
    rig.clock.tsc += kTscPerTick;
    CHECK(rig.read(kTimer, 4) == 0);
    rig.clock.tsc += 5 * kTscPerTick;
    CHECK(rig.read(kTimer, 4) == 5);
    CHECK(rig.read(kTimer, 1) == 5);
    CHECK(rig.read(kTimer + 1, 1) == 0);
}

TEST_CASE("pc.acpi_pm.timer_is_read_only") {
    Rig rig;
    rig.clock.khz = kTickKhz;
    rig.clock.tsc = 77 * kTscPerTick;
    CHECK(completes(rig.write(kTimer, 4, 0)));
    CHECK(completes(rig.write(kTimer + 2, 2, 0xFFFF)));
    CHECK(rig.read(kTimer, 4) == 77);
}

TEST_CASE("pc.acpi_pm.tmr_sts_write_one_clears") {
    Rig rig;
    rig.clock.khz = kTickKhz;
    CHECK(rig.read(kStatus, 2) == 0);
    rig.clock.tsc = (u64{1} << 31) * kTscPerTick;  // bit 31 goes 0 -> 1
    CHECK(rig.read(kStatus, 2) == kPm1TimerStatus);
    CHECK(completes(rig.write(kStatus, 2, 0)));
    CHECK(completes(rig.write(kStatus, 2, static_cast<u16>(~kPm1TimerStatus))));
    CHECK(rig.read(kStatus, 2) == kPm1TimerStatus);
    CHECK(completes(rig.write(kStatus, 2, kPm1TimerStatus)));
    CHECK(rig.read(kStatus, 2) == 0);

    rig.clock.tsc = (u64{1} << 32) * kTscPerTick;  // bit 31 goes 1 -> 0: set again
    CHECK(rig.read(kStatus, 1) == kPm1TimerStatus);
    CHECK(completes(rig.write(kStatus, 1, 0xFF)));  // a byte write clears too
    CHECK(rig.read(kStatus, 2) == 0);
    CHECK(completes(rig.write(kStatus, 2, kPm1WakeStatus)));  // nothing ever sets WAK_STS
    CHECK(rig.read(kStatus, 2) == 0);
    CHECK(rig.lines.raised == 0);  // no SCI, even with TMR_EN
}

TEST_CASE("pc.acpi_pm.enable_keeps_its_defined_bits") {
    Rig rig;
    CHECK(rig.read(kEnable, 2) == 0);
    CHECK(completes(rig.write(kEnable, 2, 0xFFFF)));
    CHECK(rig.read(kEnable, 2) == kPm1EnableMask);
    CHECK(completes(rig.write(kEnable + 1, 1, 0)));
    CHECK(rig.read(kEnable, 2) == (kPm1EnableMask & 0xFF));
    // A dword at the block: status in the low half, enable in the high half.
    CHECK(rig.read(kStatus, 4) == u32{kPm1EnableMask & 0xFF} << 16);
    CHECK(rig.lines.raised == 0);
}

TEST_CASE("pc.acpi_pm.holes_and_wide_reads") {
    Rig rig;
    CHECK(rig.read(kBase + 6, 2) == 0xFFFF);  // between PM1a_CNT and PM_TMR
    CHECK(rig.read(kControl, 4) == (0xFFFF0000u | kPm1SciEnable));
    CHECK(rig.read(kBase + kPmPortCount, 1) == 0xFF);
    CHECK(rig.read(kBase + 10, 4) >> 16 == 0xFFFF);  // runs past the block
}

TEST_CASE("pc.acpi_pm.hostile_accesses_never_crash") {
    for (u16 base : {u16{0}, kBase, u16{0xFFF8}}) {
        FakeClock clock;
        RecordingLines lines;
        NullHost host;
        AcpiPm pm(clock, lines, base);
        for (u64 khz : {u64{0}, u64{1}, u64{3'000'000}, ~u64{0}}) {
            clock.khz = khz;
            clock.tsc = ~u64{0} - khz;
            for (int delta = -8; delta < 24; ++delta) {
                u16 port = static_cast<u16>(base + delta);
                for (u8 size = 0; size <= 8; ++size) {
                    for (u32 pattern : {0u, 0xFFFFFFFFu, 0xA5A55A5Au, 0x00002000u}) {
                        u32 value = ~u32{0};
                        auto read = pm.io_read(port, size, value, host);
                        CHECK(read.action == virt::DeviceOutcome::Action::complete);
                        if (size != 1 && size != 2 && size != 4) CHECK(value == ~u32{0});
                        auto write = pm.io_write(port, size, pattern, host);
                        CHECK(write.action != virt::DeviceOutcome::Action::fault);
                    }
                }
            }
        }
        CHECK(lines.raised == 0);
    }
}
