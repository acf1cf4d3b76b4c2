// The APICs' registers: the local APIC's (Intel SDM vol. 3A chapter 11: the xAPIC page's address
// and register offsets, the x2APIC MSR of each register, the fields of SVR, the LVT entries and
// ICR) and the I/O APIC's (the 82093AA datasheet: its page, indirect registers and redirection
// entries). One definition for the host's driver, the PC platform's models and guests.
// IA32_APIC_BASE, its bits and the x2APIC MSR range are nestor/arch/x86_regs.hpp's. It depends on
// nothing but the compiler.
#pragma once

#include "nestor/arch/x86_regs.hpp"

namespace nestor::apic_regs {

using u32 = __UINT32_TYPE__;
using u64 = __UINT64_TYPE__;

// The xAPIC page: at kXapicBase after reset, wherever IA32_APIC_BASE bits 51:12 put it.
inline constexpr u64 kXapicBase = 0xFEE00000;
inline constexpr u64 kXapicPageSize = 0x1000;
inline constexpr u64 kApicBaseAddress = 0x000FFFFFFFFFF000;

// Register offsets in the xAPIC page, 16 bytes apart.
inline constexpr u32 kRegisterStride = 0x10;
inline constexpr u32 kXapicIdShift = 24;
inline constexpr u32 kXapicId = 0x20;  // the APIC ID in bits 31:24 (xAPIC mode)
inline constexpr u32 kXapicVersion = 0x30;
inline constexpr u32 kXapicTpr = 0x80;
inline constexpr u32 kXapicApr = 0x90;
inline constexpr u32 kXapicPpr = 0xA0;
inline constexpr u32 kXapicEoi = 0xB0;
inline constexpr u32 kXapicRrd = 0xC0;
inline constexpr u32 kXapicLdr = 0xD0;
inline constexpr u32 kXapicDfr = 0xE0;
inline constexpr u32 kXapicSvr = 0xF0;
inline constexpr u32 kXapicIsr = 0x100;  // ISR, TMR and IRR: eight registers each
inline constexpr u32 kXapicTmr = 0x180;
inline constexpr u32 kXapicIrr = 0x200;
inline constexpr u32 kXapicEsr = 0x280;
inline constexpr u32 kXapicLvtCmci = 0x2F0;
inline constexpr u32 kXapicIcrLow = 0x300;
inline constexpr u32 kXapicIcrHigh = 0x310;
inline constexpr u32 kXapicLvtTimer = 0x320;
inline constexpr u32 kXapicLvtThermal = 0x330;
inline constexpr u32 kXapicLvtPerformance = 0x340;
inline constexpr u32 kXapicLvtLint0 = 0x350;
inline constexpr u32 kXapicLvtLint1 = 0x360;
inline constexpr u32 kXapicLvtError = 0x370;
inline constexpr u32 kXapicInitialCount = 0x380;
inline constexpr u32 kXapicCurrentCount = 0x390;
inline constexpr u32 kXapicDivide = 0x3E0;
inline constexpr u32 kXapicSelfIpi = 0x3F0;  // x2APIC only: the xAPIC page has none

// The x2APIC MSRs: one for each register of the xAPIC page, at 0x800 + offset / 16.
inline constexpr u32 kMsrX2apicCount = x86_regs::kMsrX2apicLast - x86_regs::kMsrX2apicFirst + 1;
constexpr u32 x2apic_msr(u32 xapic_offset) { return x86_regs::kMsrX2apicFirst + xapic_offset / kRegisterStride; }

inline constexpr u32 kMsrX2apicId = x2apic_msr(kXapicId);
inline constexpr u32 kMsrX2apicTpr = x2apic_msr(kXapicTpr);
inline constexpr u32 kMsrX2apicPpr = x2apic_msr(kXapicPpr);
inline constexpr u32 kMsrX2apicEoi = x2apic_msr(kXapicEoi);
inline constexpr u32 kMsrX2apicSvr = x2apic_msr(kXapicSvr);
inline constexpr u32 kMsrX2apicIcr = x2apic_msr(kXapicIcrLow);  // the whole ICR, destination in bits 63:32
inline constexpr u32 kMsrX2apicLvtTimer = x2apic_msr(kXapicLvtTimer);
inline constexpr u32 kMsrX2apicSelfIpi = x2apic_msr(kXapicSelfIpi);
static_assert(kMsrX2apicEoi == 0x80B && kMsrX2apicIcr == 0x830 && kMsrX2apicSelfIpi == 0x83F);

// SVR: the spurious vector (bits 7:0), software enable, focus processor checking disabled. After
// reset: vector 0xFF, disabled.
inline constexpr u32 kSvrEnable = 1u << 8;
inline constexpr u32 kSvrFocusDisabled = 1u << 9;
inline constexpr u32 kSvrReset = 0xFF;

// The delivery modes of LVT entries, ICR and I/O APIC redirection entries (bits 10:8).
inline constexpr u32 kModeFixed = 0;
inline constexpr u32 kModeLowestPriority = 1;
inline constexpr u32 kModeSmi = 2;
inline constexpr u32 kModeNmi = 4;
inline constexpr u32 kModeInit = 5;
inline constexpr u32 kModeStartup = 6;
inline constexpr u32 kModeExtint = 7;

// LVT entries.
inline constexpr u32 kLvtVector = 0xFF;
inline constexpr u32 kLvtModeShift = 8;
inline constexpr u32 kLvtMode = 7u << kLvtModeShift;
inline constexpr u32 kLvtActiveLow = 1u << 13;
inline constexpr u32 kLvtLevel = 1u << 15;
inline constexpr u32 kLvtMasked = 1u << 16;
inline constexpr u32 kLvtTimerModeShift = 17;  // the timer's: one-shot 0, periodic 1, TSC deadline 2
inline constexpr u32 kLvtTimerMode = 3u << kLvtTimerModeShift;
inline constexpr u32 kLvtTimerPeriodic = 1u << kLvtTimerModeShift;
inline constexpr u32 kLvtTimerTscDeadline = 2u << kLvtTimerModeShift;

// The timer's divide configuration: bits 0, 1 and 3; 0xB divides by 1.
inline constexpr u32 kDivideBits = 0xB;
inline constexpr u32 kDivideBy1 = 0xB;

// ESR's receive and send errors for an illegal vector (0-15).
inline constexpr u32 kEsrSendIllegalVector = 1u << 5;
inline constexpr u32 kEsrReceiveIllegalVector = 1u << 6;

// ICR (low half); the destination is bits 63:56 in xAPIC mode (ICR high, bits 31:24), 63:32 in
// x2APIC mode.
inline constexpr u32 kIcrVector = 0xFF;
inline constexpr u32 kIcrModeShift = 8;
inline constexpr u32 kIcrMode = 7u << kIcrModeShift;
inline constexpr u32 kIcrLogical = 1u << 11;
inline constexpr u32 kIcrAssert = 1u << 14;
inline constexpr u32 kIcrLevel = 1u << 15;
inline constexpr u32 kIcrShorthandShift = 18;
inline constexpr u32 kIcrSelf = 1u << kIcrShorthandShift;
inline constexpr u32 kIcrAllIncludingSelf = 2u << kIcrShorthandShift;
inline constexpr u32 kIcrAllExcludingSelf = 3u << kIcrShorthandShift;
inline constexpr u32 kIcrNmi = kModeNmi << kIcrModeShift;
inline constexpr u32 kIcrInit = kModeInit << kIcrModeShift;
inline constexpr u32 kIcrStartup = kModeStartup << kIcrModeShift;
inline constexpr u32 kXapicDestinationShift = 24;

// The I/O APIC: a page at kIoApicBase with two 32-bit registers, IOREGSEL selecting the indirect
// register that IOWIN reads and writes.
inline constexpr u64 kIoApicBase = 0xFEC00000;
inline constexpr u64 kIoApicPageSize = 0x1000;
inline constexpr u64 kIoApicRegisterSelect = 0x00;
inline constexpr u64 kIoApicWindow = 0x10;
inline constexpr u32 kIoApicId = 0x00;
inline constexpr u32 kIoApicVersion = 0x01;
inline constexpr u32 kIoApicArbitration = 0x02;
inline constexpr u32 kIoApicRedirectionTable = 0x10;  // two per pin: low dword, then high dword
inline constexpr u32 kIoApicIdShift = 24;

// Redirection entries (64 bits: the low dword at kIoApicRedirectionTable + 2 * pin).
inline constexpr u64 kEntryVector = 0xFF;
inline constexpr u32 kEntryModeShift = 8;
inline constexpr u64 kEntryMode = 7u << kEntryModeShift;
inline constexpr u64 kEntryLogical = 1u << 11;
inline constexpr u64 kEntryDeliveryStatus = 1u << 12;
inline constexpr u64 kEntryActiveLow = 1u << 13;
inline constexpr u64 kEntryRemoteIrr = 1u << 14;
inline constexpr u64 kEntryLevel = 1u << 15;
inline constexpr u64 kEntryMasked = 1u << 16;
inline constexpr u32 kEntryDestinationShift = 56;
inline constexpr u64 kEntryDestination = u64{0xFF} << kEntryDestinationShift;

}  // namespace nestor::apic_regs
