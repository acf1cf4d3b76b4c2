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

u64 measured_khz = 0;

u64 measure_khz() {
    u8 control = x86::inb(kSystemControlB);
    x86::outb(kSystemControlB, static_cast<u8>((control & ~kSpeaker) | kGate2));
    x86::outb(kPitCommand, kChannel2Mode0LoHi);
    x86::outb(kPitChannel2, kCalibrationCount & 0xFF);
    x86::outb(kPitChannel2, kCalibrationCount >> 8);
    u64 start = x86::rdtsc();
    while ((x86::inb(kSystemControlB) & kOut2) == 0) {
    }
    u64 elapsed = x86::rdtsc() - start;
    x86::outb(kSystemControlB, control);
    return elapsed * kPitHz / (u64{kCalibrationCount} * 1000);
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
