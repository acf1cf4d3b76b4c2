#include "nestor/x86/host_cpuid.hpp"

#include "nestor/log.hpp"
#include "nestor/virt/xsave_policy.hpp"
#include "nestor/x86/cpu.hpp"

namespace nestor::x86 {
namespace {

bool xsavec_wrong = false;

// YMM0 for the check: its upper half is what the image must hold right after the header.
alignas(32) constexpr u8 kYmm0[32] = {
    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,     // XMM0
    0x5A, 0xC3, 0x01, 0xFE, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0, 0xB0, 0xC0,  // upper half
};
constexpr u32 kAvxStateBytes = 256;  // the upper halves of YMM0-15
alignas(64) u8 xsavec_image[virt::kXsaveLegacyAndHeaderBytes + kAvxStateBytes];

}  // namespace

virt::CpuidValues host_cpuid(u32 leaf, u32 subleaf) {
    CpuidResult r = cpuid(leaf, subleaf);
    if (leaf == virt::kCpuidLeafXsave && subleaf == 1 && xsavec_wrong) [[unlikely]]
        r.eax &= ~virt::kCpuidXsave1EaxXsavec;
    return {r.eax, r.ebx, r.ecx, r.edx};
}

[[gnu::cold]] void check_xsavec(u64 xcr0) {
    if (!(xcr0 & virt::kXcr0Avx) || !(cpuid(virt::kCpuidLeafXsave, 1).eax & virt::kCpuidXsave1EaxXsavec)) return;
    constexpr u64 kRequested = virt::kXcr0X87 | virt::kXcr0Sse | virt::kXcr0Avx;
    for (u8& byte : xsavec_image) byte = 0;
    // VPXOR afterwards puts YMM0 back in its initial state (a VEX write zeroes the upper half).
    asm volatile(
        "vmovdqa (%0), %%ymm0\n\t"
        "xsavec64 (%1)\n\t"
        "vpxor %%xmm0, %%xmm0, %%xmm0" ::"r"(kYmm0),
        "r"(xsavec_image), "a"(static_cast<u32>(kRequested)), "d"(0u)
        : "memory");
    const u8(&ymm0_high)[16] = *reinterpret_cast<const u8(*)[16]>(kYmm0 + 16);
    if (virt::xsavec_image_is_compacted(xsavec_image, ymm0_high)) return;
    xsavec_wrong = true;
    log::warn(
        "x86: this CPU's XSAVEC does not write the compacted format (its AVX state lands elsewhere): "
        "XSAVEC is not offered to guests");
}

}  // namespace nestor::x86
