#include "nestor/x86/local_apic.hpp"

#include "nestor/arch/x86_regs.hpp"
#include "nestor/log.hpp"
#include "nestor/x86/cpu.hpp"

namespace nestor::x86::lapic {
namespace {

constexpr u64 kApicBaseAddress = 0x000FFFFFFFFFF000;

enum Register : u32 {
    eoi = 0xB0,
    spurious = 0xF0,
    lvt_timer = 0x320,
    timer_initial = 0x380,
    timer_current = 0x390,
    timer_divide = 0x3E0,
};
constexpr u32 kSpuriousEnable = 1u << 8;
constexpr u32 kLvtMasked = 1u << 16;
constexpr u32 kDivideBy1 = 0xB;
constexpr u64 kCalibrationTsc = 100000;

// Timer ticks per TSC tick, 32.32 fixed point; 0 until calibrated (or if the timer is dead).
u64 ticks_per_tsc = 0;
bool armed = false;

volatile u32* reg(Register r) { return reinterpret_cast<volatile u32*>(kMmioWindow + mmio_physical() + r); }
u32 read(Register r) { return *reg(r); }
void write(Register r, u32 value) { *reg(r) = value; }

void mask_legacy_pic() {
    outb(0x21, 0xFF);
    outb(0xA1, 0xFF);
}

void calibrate() {
    write(timer_divide, kDivideBy1);
    write(lvt_timer, kLvtMasked | kTimerVector);
    write(timer_initial, 0xFFFFFFFF);
    u64 start = rdtsc();
    while (rdtsc() - start < kCalibrationTsc) {
    }
    u32 elapsed = 0xFFFFFFFF - read(timer_current);
    write(timer_initial, 0);
    ticks_per_tsc = (static_cast<u64>(elapsed) << 32) / kCalibrationTsc;
}

}  // namespace

paddr mmio_physical() { return rdmsr(x86_regs::kMsrApicBase) & kApicBaseAddress; }

bool init() {
    mask_legacy_pic();
    wrmsr(x86_regs::kMsrApicBase, rdmsr(x86_regs::kMsrApicBase) | x86_regs::kApicBaseEnable);
    write(spurious, kSpuriousEnable | kSpuriousVector);
    calibrate();
    log::debug("apic: {:#x} timer ticks per 2^32 TSC ticks", ticks_per_tsc);
    return ticks_per_tsc != 0;
}

void arm_oneshot(u64 tsc_ticks) {
    if (ticks_per_tsc == 0) return;
    u64 count = (static_cast<unsigned __int128>(tsc_ticks) * ticks_per_tsc) >> 32;
    count = count == 0 ? 1 : count > 0xFFFFFFFF ? 0xFFFFFFFF : count;
    write(lvt_timer, kTimerVector);  // one-shot, unmasked
    write(timer_initial, static_cast<u32>(count));
    armed = true;
}

void disarm() {
    write(timer_initial, 0);
    armed = false;
}

bool timer_expired() { return armed && read(timer_current) == 0; }

void end_of_interrupt() { write(eoi, 0); }

}  // namespace nestor::x86::lapic

// Called from the timer's interrupt stub: the interrupt's only job was to end a guest's slice.
extern "C" void x86_timer_interrupt() { nestor::x86::lapic::end_of_interrupt(); }
