#include "nestor/x86/local_apic.hpp"

#include "nestor/arch/apic_regs.hpp"
#include "nestor/arch/x86_regs.hpp"
#include "nestor/log.hpp"
#include "nestor/x86/cpu.hpp"

namespace nestor::x86::lapic {
namespace {

using namespace apic_regs;

constexpr u64 kCalibrationTsc = 100000;

// Timer ticks per TSC tick, 32.32 fixed point; 0 until calibrated (or if the timer is dead).
u64 ticks_per_tsc = 0;
bool armed = false;

volatile u32* reg(u32 r) { return reinterpret_cast<volatile u32*>(kMmioWindow + mmio_physical() + r); }
u32 read(u32 r) { return *reg(r); }
void write(u32 r, u32 value) { *reg(r) = value; }

void mask_legacy_pic() {
    outb(0x21, 0xFF);
    outb(0xA1, 0xFF);
}

void calibrate() {
    write(kXapicDivide, kDivideBy1);
    write(kXapicLvtTimer, kLvtMasked | kTimerVector);
    write(kXapicInitialCount, 0xFFFFFFFF);
    u64 start = rdtsc();
    while (rdtsc() - start < kCalibrationTsc) {
    }
    u32 elapsed = 0xFFFFFFFF - read(kXapicCurrentCount);
    write(kXapicInitialCount, 0);
    ticks_per_tsc = (static_cast<u64>(elapsed) << 32) / kCalibrationTsc;
}

}  // namespace

paddr mmio_physical() { return rdmsr(x86_regs::kMsrApicBase) & kApicBaseAddress; }

bool init() {
    mask_legacy_pic();
    wrmsr(x86_regs::kMsrApicBase, rdmsr(x86_regs::kMsrApicBase) | x86_regs::kApicBaseEnable);
    write(kXapicSvr, kSvrEnable | kSpuriousVector);
    calibrate();
    log::debug("apic: {:#x} timer ticks per 2^32 TSC ticks", ticks_per_tsc);
    return ticks_per_tsc != 0;
}

void arm_oneshot(u64 tsc_ticks) {
    if (ticks_per_tsc == 0) return;
    u64 count = (static_cast<unsigned __int128>(tsc_ticks) * ticks_per_tsc) >> 32;
    count = count == 0 ? 1 : count > 0xFFFFFFFF ? 0xFFFFFFFF : count;
    write(kXapicLvtTimer, kTimerVector);  // one-shot, unmasked
    write(kXapicInitialCount, static_cast<u32>(count));
    armed = true;
}

void disarm() {
    write(kXapicInitialCount, 0);
    armed = false;
}

bool timer_expired() { return armed && read(kXapicCurrentCount) == 0; }

void end_of_interrupt() { write(kXapicEoi, 0); }

}  // namespace nestor::x86::lapic

// Called from the timer's interrupt stub: the interrupt's only job was to end a guest's slice.
extern "C" void x86_timer_interrupt() { nestor::x86::lapic::end_of_interrupt(); }
