// The local APIC: the one-shot timer that takes the CPU back from a guest that never exits.
// The legacy PIC is masked, so the timer is the only interrupt source the kernel enables.
#pragma once

#include "nestor/lib/types.hpp"

namespace nestor::x86::lapic {

inline constexpr u8 kTimerVector = 0xEF;
inline constexpr u8 kSpuriousVector = 0xFF;
// Device memory is mapped here, uncached: virtual = kMmioWindow + physical.
inline constexpr u64 kMmioWindow = 0xFFFFC00000000000;

// The physical address of this CPU's APIC registers (IA32_APIC_BASE).
paddr mmio_physical();
// Enables the APIC (its page must be mapped at kMmioWindow), masks the legacy PIC and measures
// timer ticks against the TSC. False if the timer does not count (then nothing is preempted).
bool init();
// One interrupt after `tsc_ticks` timestamp ticks (at least one timer tick).
void arm_oneshot(u64 tsc_ticks);
void disarm();
// Whether the last armed one-shot has run out.
bool timer_expired();
void end_of_interrupt();

}  // namespace nestor::x86::lapic
