// The extended state (x87, SSE, AVX, AVX-512, PKRU) a guest is offered, and the rules that follow
// from the offer: which XCR0 values XSETBV accepts, which CR4 bits a guest may set, and the XSAVE
// area sizes CPUID leaf 0xD reports. Every guest is offered the same: the XSAVE state components
// the host supports that the backends switch between vCPUs (x86/guest_context.hpp), worked out
// from the host's CPUID by xsave_offer(), which the CPUID policy, the exit handler and the
// backends all call, so that what CPUID shows, what XSETBV accepts and what is switched agree.
#pragma once

#include "nestor/virt/virt_ops.hpp"

namespace nestor::virt {

// XCR0 bits: XSAVE state components (nestor/arch/x86_regs.hpp).
using x86_regs::kXcr0Avx;
using x86_regs::kXcr0Avx512;
using x86_regs::kXcr0Hi16Zmm;
using x86_regs::kXcr0Opmask;
using x86_regs::kXcr0Pkru;
using x86_regs::kXcr0Sse;
using x86_regs::kXcr0X87;
using x86_regs::kXcr0ZmmHi256;
// The components a world switch may leave to the guest: user state in XSAVE's standard format,
// together at most a few KiB. Not MPX's (deprecated), not AMX's (8 KiB of tiles, and XFD), no
// supervisor state (IA32_XSS: guests get no XSAVES).
inline constexpr u64 kXcr0Switched = kXcr0X87 | kXcr0Sse | kXcr0Avx | kXcr0Avx512 | kXcr0Pkru;
inline constexpr u32 kXsaveComponents = 10;  // components 0..9: every one kXcr0Switched may hold

// CR4 bits that turn on extended state or features tied to it. CET's state is supervisor XSAVE
// state and PKS's (IA32_PKRS) is not switched: neither is offered.
using x86_regs::kCr4Cet;
using x86_regs::kCr4Osfxsr;
using x86_regs::kCr4Osxmmexcpt;
using x86_regs::kCr4Osxsave;
using x86_regs::kCr4Pke;
using x86_regs::kCr4Pks;

inline constexpr u32 kCpuidLeafXsave = 0xD;
inline constexpr u32 kCpuid1EcxXsave = 1u << 26;
inline constexpr u32 kCpuid1EcxOsxsave = 1u << 27;
inline constexpr u32 kCpuid7EcxPku = 1u << 3;
inline constexpr u32 kCpuid7EcxOspke = 1u << 4;
inline constexpr u32 kXsaveLegacyAndHeaderBytes = 576;  // the FXSAVE image and the XSAVE header
inline constexpr u32 kXsaveHeaderOffset = 512;          // XSTATE_BV, then XCOMP_BV, then reserved bytes
inline constexpr u64 kXcompBvCompacted = u64{1} << 63;  // XCOMP_BV: the image is in the compacted format
inline constexpr u32 kCpuidXsave1EaxXsavec = 1u << 1;   // CPUID(0xD, 1): XSAVEC, the compacted format

// What every guest is offered.
struct XsaveOffer {
    bool xsave;  // XSAVE, XSETBV and CR4.OSXSAVE; without it only x87 and SSE (FXSAVE)
    u64 xcr0;    // the XCR0 bits XSETBV accepts (x87 and SSE at least)
};

// From the host's CPUID leaves 1, 7 (subleaf 0) and 0xD (subleaf 0). AVX-512 is offered whole or
// not at all, and only with AVX; PKRU only with the host's PKU.
XsaveOffer xsave_offer(const CpuidValues& leaf1, const CpuidValues& leaf7, const CpuidValues& leaf_xsave);

// XSETBV(index, value) is architecturally valid for a CPU whose XCR0 supports exactly
// `offer.xcr0`: XCR0 only, x87 on, AVX only with SSE, AVX-512 whole and with AVX, nothing
// beyond the offer. False: #GP(0).
bool xsetbv_allowed(u32 index, u64 value, const XsaveOffer& offer);

// The CR4 bits of extended state a guest may not set: OSXSAVE without XSAVE, PKE without PKRU,
// CET and PKS always (their state is not switched).
u64 cr4_extended_state_not_offered(const XsaveOffer& offer);

// Where each XSAVE component lives in the standard format, from CPUID 0xD subleaves 2..9.
struct XsaveLayout {
    u32 size[kXsaveComponents];
    u32 offset[kXsaveComponents];
    bool align64[kXsaveComponents];  // in the compacted format (XSAVEC)
};
// Records component `index` (2..9) from the host's CPUID(0xD, index).
void record_xsave_component(XsaveLayout& layout, u32 index, const CpuidValues& subleaf);
// The bytes XSAVE writes for `xcr0` in the standard format (CPUID 0xD.0 EBX and ECX) and in the
// compacted one (0xD.1 EBX, with IA32_XSS 0).
u32 xsave_standard_size(const XsaveLayout& layout, u64 xcr0);
u32 xsave_compacted_size(const XsaveLayout& layout, u64 xcr0);

// Whether `image`, which XSAVEC wrote with x87, SSE and AVX requested while the upper half of YMM0
// held `ymm0_high`, is the compacted image the SDM describes (vol. 1, 13.4.3): XCOMP_BV names the
// format and those components, AVX state is in use, the header's reserved bytes are zero and
// YMM0's upper half is the first thing after the header. A CPU that writes anything else (Bochs
// 2.7 puts AVX state at byte 416, over the header) makes a guest's next XRSTOR of its own image
// #GP: such a CPU's XSAVEC is not offered (x86/host_cpuid.hpp).
bool xsavec_image_is_compacted(const u8* image, const u8 (&ymm0_high)[16]);

// The CPUID leaves whose answer follows the guest's own CR4 and XCR0 (OSXSAVE, OSPKE, the XSAVE
// area sizes): worked out at every query, never memoized.
inline bool cpuid_leaf_follows_guest(u32 leaf) { return leaf == 1 || leaf == 7 || leaf == kCpuidLeafXsave; }

// Completes the policy's answer for such a leaf: OSXSAVE (leaf 1) and OSPKE (leaf 7) from the
// guest's CR4; for leaf 0xD the offered XCR0 bits, the area sizes for the guest's XCR0 and for the
// whole offer, and nothing of a component the offer leaves out.
void follow_guest_controls(u32 leaf, u32 subleaf, CpuidValues& values, const GuestXsaveControls& guest,
                           const XsaveOffer& offer, const XsaveLayout& layout);

}  // namespace nestor::virt
