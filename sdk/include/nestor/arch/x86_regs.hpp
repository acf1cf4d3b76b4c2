// Bits of the x86-64 control registers, EFER, RFLAGS and XCR0 (Intel SDM vol. 3A chapter 2, AMD64
// APM vol. 2 chapter 3): one definition for the kernel, both backends, the nested component and
// guests. It depends on nothing but the compiler.
#pragma once

namespace nestor::x86_regs {

using u32 = __UINT32_TYPE__;
using u64 = __UINT64_TYPE__;

inline constexpr u64 kCr0Pe = u64{1} << 0;   // protection
inline constexpr u64 kCr0Mp = u64{1} << 1;   // monitor coprocessor
inline constexpr u64 kCr0Em = u64{1} << 2;   // x87 emulation
inline constexpr u64 kCr0Ts = u64{1} << 3;   // task switched
inline constexpr u64 kCr0Et = u64{1} << 4;   // extension type: fixed to 1
inline constexpr u64 kCr0Ne = u64{1} << 5;   // native x87 errors
inline constexpr u64 kCr0Wp = u64{1} << 16;  // supervisor write protection
inline constexpr u64 kCr0Am = u64{1} << 18;  // alignment mask
inline constexpr u64 kCr0Nw = u64{1} << 29;  // not write-through
inline constexpr u64 kCr0Cd = u64{1} << 30;  // cache disable
inline constexpr u64 kCr0Pg = u64{1} << 31;  // paging

inline constexpr u64 kCr4Pse = u64{1} << 4;
inline constexpr u64 kCr4Pae = u64{1} << 5;
inline constexpr u64 kCr4Osfxsr = u64{1} << 9;
inline constexpr u64 kCr4Osxmmexcpt = u64{1} << 10;
inline constexpr u64 kCr4Umip = u64{1} << 11;
inline constexpr u64 kCr4La57 = u64{1} << 12;
inline constexpr u64 kCr4Vmxe = u64{1} << 13;
inline constexpr u64 kCr4Smxe = u64{1} << 14;
inline constexpr u64 kCr4Fsgsbase = u64{1} << 16;
inline constexpr u64 kCr4Pcide = u64{1} << 17;
inline constexpr u64 kCr4Osxsave = u64{1} << 18;
inline constexpr u64 kCr4Smep = u64{1} << 20;
inline constexpr u64 kCr4Smap = u64{1} << 21;
inline constexpr u64 kCr4Pke = u64{1} << 22;
inline constexpr u64 kCr4Cet = u64{1} << 23;
inline constexpr u64 kCr4Pks = u64{1} << 24;
// VME, PVI, TSD, DE, PSE, PAE, MCE, PGE, PCE, OSFXSR and OSXMMEXCPT: every x86-64 CPU has them.
inline constexpr u64 kCr4Baseline = 0x7FF;

inline constexpr u32 kMsrEfer = 0xC0000080;
inline constexpr u64 kEferSce = u64{1} << 0;   // SYSCALL
inline constexpr u64 kEferLme = u64{1} << 8;   // long mode enable
inline constexpr u64 kEferLma = u64{1} << 10;  // long mode active
inline constexpr u64 kEferNxe = u64{1} << 11;  // no-execute
inline constexpr u64 kEferSvme = u64{1} << 12;

// The MSRs a vCPU owns (switched with it by the backends): the segment bases, the SYSCALL and
// SYSENTER targets, TSC_AUX (what RDTSCP and RDPID read) and the page attribute table.
inline constexpr u32 kMsrSysenterCs = 0x174;
inline constexpr u32 kMsrSysenterEsp = 0x175;
inline constexpr u32 kMsrSysenterEip = 0x176;
inline constexpr u32 kMsrPat = 0x277;
inline constexpr u32 kMsrStar = 0xC0000081;
inline constexpr u32 kMsrLstar = 0xC0000082;
inline constexpr u32 kMsrCstar = 0xC0000083;
inline constexpr u32 kMsrSfmask = 0xC0000084;
inline constexpr u32 kMsrFsBase = 0xC0000100;
inline constexpr u32 kMsrGsBase = 0xC0000101;
inline constexpr u32 kMsrKernelGsBase = 0xC0000102;
inline constexpr u32 kMsrTscAux = 0xC0000103;

// MSRs only system-management mode writes (SMM_MONITOR_CTL) or reads (SMBASE), and the x2APIC's
// registers: what VMX's MSR lists may not name (SDM 26.4, 27.4, 27.6).
inline constexpr u32 kMsrSmmMonitorCtl = 0x9B;
inline constexpr u32 kMsrSmbase = 0x9E;
inline constexpr u32 kMsrX2apicFirst = 0x800;
inline constexpr u32 kMsrX2apicLast = 0x8FF;

// IA32_PAT: eight one-byte entries, each a memory type. The value after reset is WB, WT, UC-, UC
// twice; a write with any other type (2, 3, 8..255) #GPs.
inline constexpr u64 kPatReset = 0x0007040600070406;
constexpr bool pat_is_valid(u64 pat) {
    for (unsigned i = 0; i < 8; ++i) {
        u64 type = (pat >> (8 * i)) & 0xFF;
        if (type == 2 || type == 3 || type > 7) return false;
    }
    return true;
}

// CPUID: the instructions that read TSC_AUX.
inline constexpr u32 kCpuidExt1EdxRdtscp = 1u << 27;  // leaf 0x80000001
inline constexpr u32 kCpuid7EcxRdpid = 1u << 22;      // leaf 7, subleaf 0

// Platform MSRs (SDM vol. 4 table 2-2, APM vol. 2 appendix A) the PC platform emulates
// (components/pc/msr_file.cpp); which vendor has which is the model's business.
inline constexpr u32 kMsrTsc = 0x10;                // IA32_TIME_STAMP_COUNTER
inline constexpr u32 kMsrApicBase = 0x1B;           // IA32_APIC_BASE (bits below)
inline constexpr u32 kMsrPlatformId = 0x17;         // IA32_PLATFORM_ID
inline constexpr u32 kMsrTscAdjust = 0x3B;          // IA32_TSC_ADJUST
inline constexpr u32 kMsrSpecCtrl = 0x48;           // IA32_SPEC_CTRL
inline constexpr u32 kMsrPredCmd = 0x49;            // IA32_PRED_CMD
inline constexpr u32 kMsrCoreCapabilities = 0xCF;   // IA32_CORE_CAPABILITIES
inline constexpr u32 kMsrMtrrCap = 0xFE;            // IA32_MTRRCAP
inline constexpr u32 kMsrArchCapabilities = 0x10A;  // IA32_ARCH_CAPABILITIES
inline constexpr u32 kMsrMcgCap = 0x179;            // IA32_MCG_CAP
inline constexpr u32 kMsrMcgStatus = 0x17A;         // IA32_MCG_STATUS
inline constexpr u32 kMsrMcgCtl = 0x17B;            // IA32_MCG_CTL
inline constexpr u32 kMsrMiscEnable = 0x1A0;        // IA32_MISC_ENABLE
inline constexpr u32 kMsrDebugCtl = 0x1D9;          // IA32_DEBUGCTL
inline constexpr u32 kMsrMtrrPhysBase0 = 0x200;     // IA32_MTRR_PHYSBASEn = 0x200 + 2n, PHYSMASKn = 0x201 + 2n
inline constexpr u32 kMsrMtrrFix64k00000 = 0x250;   // IA32_MTRR_FIX64K_00000
inline constexpr u32 kMsrMtrrFix16k80000 = 0x258;   // IA32_MTRR_FIX16K_80000, then _A0000 at 0x259
inline constexpr u32 kMsrMtrrFix4kC0000 = 0x268;    // IA32_MTRR_FIX4K_C0000 .. _F8000 at 0x268-0x26F
inline constexpr u32 kMsrMtrrDefType = 0x2FF;       // IA32_MTRR_DEF_TYPE
inline constexpr u32 kMsrMc0Ctl = 0x400;            // IA32_MCi_CTL/STATUS/ADDR/MISC = 0x400 + 4i + 0..3
inline constexpr u32 kMsrTscDeadline = 0x6E0;       // IA32_TSC_DEADLINE

inline constexpr u64 kApicBaseBsp = u64{1} << 8;
inline constexpr u64 kApicBaseX2apic = u64{1} << 10;  // EXTD: x2APIC mode (with kApicBaseEnable)
inline constexpr u64 kApicBaseEnable = u64{1} << 11;  // EN: the APIC is hardware-enabled

inline constexpr u64 kSpecCtrlIbrs = u64{1} << 0;
inline constexpr u64 kSpecCtrlStibp = u64{1} << 1;
inline constexpr u64 kSpecCtrlSsbd = u64{1} << 2;
inline constexpr u64 kPredCmdIbpb = u64{1} << 0;

inline constexpr u64 kRflagsFixed1 = u64{1} << 1;  // reserved, always 1
inline constexpr u64 kRflagsTf = u64{1} << 8;
inline constexpr u64 kRflagsIf = u64{1} << 9;
inline constexpr u64 kRflagsDf = u64{1} << 10;
inline constexpr u64 kRflagsRf = u64{1} << 16;
inline constexpr u64 kRflagsVm = u64{1} << 17;
inline constexpr u64 kRflagsAc = u64{1} << 18;

inline constexpr u64 kDr6Bs = u64{1} << 14;  // the #DB was a single step (RFLAGS.TF)

// XCR0: XSAVE state components.
inline constexpr u64 kXcr0X87 = u64{1} << 0;
inline constexpr u64 kXcr0Sse = u64{1} << 1;
inline constexpr u64 kXcr0Avx = u64{1} << 2;
inline constexpr u64 kXcr0Opmask = u64{1} << 5;
inline constexpr u64 kXcr0ZmmHi256 = u64{1} << 6;
inline constexpr u64 kXcr0Hi16Zmm = u64{1} << 7;
inline constexpr u64 kXcr0Pkru = u64{1} << 9;
inline constexpr u64 kXcr0Avx512 = kXcr0Opmask | kXcr0ZmmHi256 | kXcr0Hi16Zmm;

}  // namespace nestor::x86_regs
