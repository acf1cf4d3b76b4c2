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

inline constexpr u64 kRflagsFixed1 = u64{1} << 1;  // reserved, always 1
inline constexpr u64 kRflagsTf = u64{1} << 8;
inline constexpr u64 kRflagsIf = u64{1} << 9;
inline constexpr u64 kRflagsDf = u64{1} << 10;
inline constexpr u64 kRflagsRf = u64{1} << 16;
inline constexpr u64 kRflagsVm = u64{1} << 17;
inline constexpr u64 kRflagsAc = u64{1} << 18;

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
