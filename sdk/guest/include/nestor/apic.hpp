// The local APIC as a guest programs it (Intel SDM vol. 3 chapter 11): the xAPIC page's default
// address and register offsets, and the x2APIC MSRs, each an xAPIC register at 0x800 + offset /
// 16. IA32_APIC_BASE, its bits and IA32_TSC_DEADLINE are nestor/arch/x86_regs.hpp's.
#pragma once

#include "nestor/guest.hpp"

namespace nestor::guest::apic {

// The xAPIC page at its address after reset, and its registers' offsets.
inline constexpr u64 kXapicBase = 0xFEE00000;
inline constexpr u32 kXapicId = 0x20;
inline constexpr u32 kXapicVersion = 0x30;
inline constexpr u32 kXapicTpr = 0x80;
inline constexpr u32 kXapicPpr = 0xA0;
inline constexpr u32 kXapicEoi = 0xB0;
inline constexpr u32 kXapicSvr = 0xF0;
inline constexpr u32 kXapicIsr = 0x100;  // ISR and IRR: eight registers each, 16 bytes apart
inline constexpr u32 kXapicIrr = 0x200;
inline constexpr u32 kXapicIcrLow = 0x300;
inline constexpr u32 kXapicIcrHigh = 0x310;
inline constexpr u32 kXapicLvtTimer = 0x320;
inline constexpr u32 kXapicLvtLint1 = 0x360;
inline constexpr u32 kXapicInitialCount = 0x380;
inline constexpr u32 kXapicDivide = 0x3E0;

// The x2APIC MSRs: kMsrX2apicFirst to kMsrX2apicLast (nestor/arch/x86_regs.hpp), one for each
// 16-byte register of the xAPIC page.
inline constexpr u32 kMsrX2apicCount = kMsrX2apicLast - kMsrX2apicFirst + 1;
constexpr u32 x2apic_msr(u32 xapic_offset) { return kMsrX2apicFirst + xapic_offset / 16; }

inline constexpr u32 kMsrX2apicId = x2apic_msr(kXapicId);
inline constexpr u32 kMsrX2apicTpr = x2apic_msr(kXapicTpr);
inline constexpr u32 kMsrX2apicPpr = x2apic_msr(kXapicPpr);
inline constexpr u32 kMsrX2apicEoi = x2apic_msr(kXapicEoi);
inline constexpr u32 kMsrX2apicSvr = x2apic_msr(kXapicSvr);
inline constexpr u32 kMsrX2apicIcr = x2apic_msr(kXapicIcrLow);  // the whole ICR, destination in bits 63:32
inline constexpr u32 kMsrX2apicLvtTimer = x2apic_msr(kXapicLvtTimer);
inline constexpr u32 kMsrX2apicSelfIpi = x2apic_msr(0x3F0);  // x2APIC only: the xAPIC page has none
static_assert(kMsrX2apicEoi == 0x80B && kMsrX2apicIcr == 0x830 && kMsrX2apicSelfIpi == 0x83F);

// SVR: software-enabled (bit 8), spurious vector 0xFF; and its value after reset, disabled.
inline constexpr u32 kSvrEnabled = 0x1FF;
inline constexpr u32 kSvrReset = 0xFF;

// Switches the hardware-enabled APIC to x2APIC mode and software-enables it.
inline void enter_x2apic() {
    wrmsr(kMsrApicBase, rdmsr(kMsrApicBase) | kApicBaseX2apic);
    wrmsr(kMsrX2apicSvr, kSvrEnabled);
}

}  // namespace nestor::guest::apic
