// The timestamp counter's rate and waiting for a timestamp: what the PC platform's guest timers
// need of the host. The rate is measured once, on first use, against the 8254's channel 2 (the
// one timer every PC and every emulator has at a known rate), so a kernel that runs no PC domain
// spends nothing on it.
#include "nestor/log.hpp"
#include "nestor/platform.hpp"
#include "nestor/x86/cpu.hpp"
#include "nestor/x86/local_apic.hpp"

namespace nestor::platform {
namespace {

constexpr u16 kPitChannel2 = 0x42;
constexpr u16 kPitCommand = 0x43;
constexpr u16 kSystemControlB = 0x61;  // bit 0: channel 2's gate; bit 1: speaker; bit 5: channel 2's OUT
constexpr u8 kGate2 = 0x01;
constexpr u8 kSpeaker = 0x02;
constexpr u8 kOut2 = 0x20;
constexpr u8 kChannel2Mode0LoHi = 0xB0;  // channel 2, lobyte/hibyte, mode 0 (OUT rises at terminal count)
constexpr u64 kPitHz = 1193182;
// 2 ms of the PIT: 0.04% resolution, and few instructions of boot time under QEMU -icount.
constexpr u16 kCalibrationCount = 2386;
// A measurement counts when the TSC reads around the PIT's start and around its end, which bound
// both instants, together span under 1/256 of it (0.4%); a host that deschedules the emulator at
// either instant spreads them. At most this many tries, then the tightest one.
constexpr u64 kSpreadShift = 8;
constexpr int kCalibrationTries = 8;

u64 measured_khz = 0;

struct Measurement {
    u64 elapsed;  // TSC ticks over kCalibrationCount PIT ticks, from midpoint to midpoint
    u64 spread;   // the ticks the two bounded instants could lie anywhere in
};

Measurement measure_once() {
    u8 control = x86::inb(kSystemControlB);
    x86::outb(kSystemControlB, static_cast<u8>((control & ~kSpeaker) | kGate2));
    x86::outb(kPitCommand, kChannel2Mode0LoHi);
    x86::outb(kPitChannel2, kCalibrationCount & 0xFF);
    u64 start_before = x86::rdtsc();
    x86::outb(kPitChannel2, kCalibrationCount >> 8);  // the count starts with its high byte
    u64 start_after = x86::rdtsc();
    // OUT rose after the last read that saw it low began and before the first that saw it high ended.
    u64 low_read = start_after, read_begin = 0, read_end = 0;
    for (;;) {
        read_begin = x86::rdtsc();
        bool out = (x86::inb(kSystemControlB) & kOut2) != 0;
        read_end = x86::rdtsc();
        if (out) break;
        low_read = read_begin;
    }
    x86::outb(kSystemControlB, control);
    return {(low_read + read_end) / 2 - (start_before + start_after) / 2,
            (start_after - start_before) + (read_end - low_read)};
}

u64 measure_khz() {
    Measurement best{0, ~u64{0}};
    for (int i = 0; i < kCalibrationTries; ++i) {
        Measurement m = measure_once();
        if (m.spread < best.spread) best = m;
        if ((best.spread << kSpreadShift) < best.elapsed) break;
    }
    return best.elapsed * kPitHz / (u64{kCalibrationCount} * 1000);
}

}  // namespace

u64 timestamp_khz() {
    if (measured_khz == 0) {
        measured_khz = measure_khz();
        if (measured_khz == 0) measured_khz = 1;
        log::info("platform: timestamp counter at {} kHz", measured_khz);
    }
    return measured_khz;
}

void idle_until(u64 deadline) {
    u64 now = x86::rdtsc();
    if (deadline <= now) return;
    x86::lapic::arm_oneshot(deadline - now);
    // STI's one-instruction shadow covers HLT: an interrupt that is already due wakes it.
    asm volatile("sti; hlt; cli" ::: "memory");
}

}  // namespace nestor::platform
