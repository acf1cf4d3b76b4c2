#include "nestor/virt/xsave_policy.hpp"

#include "nestor/lib/util.hpp"

namespace nestor::virt {

XsaveOffer xsave_offer(const CpuidValues& leaf1, const CpuidValues& leaf7, const CpuidValues& leaf_xsave) {
    if (!(leaf1.ecx & kCpuid1EcxXsave)) return {false, kXcr0X87 | kXcr0Sse};
    u64 xcr0 = ((u64{leaf_xsave.edx} << 32) | leaf_xsave.eax) & kXcr0Switched;
    xcr0 |= kXcr0X87 | kXcr0Sse;
    if (!(xcr0 & kXcr0Avx) || (xcr0 & kXcr0Avx512) != kXcr0Avx512) xcr0 &= ~kXcr0Avx512;
    if (!(leaf7.ecx & kCpuid7EcxPku)) xcr0 &= ~kXcr0Pkru;
    return {true, xcr0};
}

bool xsetbv_allowed(u32 index, u64 value, const XsaveOffer& offer) {
    if (!offer.xsave || index != 0) return false;
    if (!(value & kXcr0X87) || (value & ~offer.xcr0)) return false;
    if ((value & kXcr0Avx) && !(value & kXcr0Sse)) return false;
    u64 avx512 = value & kXcr0Avx512;
    if (avx512 && (avx512 != kXcr0Avx512 || !(value & kXcr0Avx))) return false;
    return true;
}

u64 cr4_extended_state_not_offered(const XsaveOffer& offer) {
    u64 refused = kCr4Cet | kCr4Pks;
    if (!offer.xsave) refused |= kCr4Osxsave;
    if (!(offer.xcr0 & kXcr0Pkru)) refused |= kCr4Pke;
    return refused;
}

void record_xsave_component(XsaveLayout& layout, u32 index, const CpuidValues& subleaf) {
    if (index < 2 || index >= kXsaveComponents) return;
    layout.size[index] = subleaf.eax;
    layout.offset[index] = subleaf.ebx;
    layout.align64[index] = subleaf.ecx & 2;
}

u32 xsave_standard_size(const XsaveLayout& layout, u64 xcr0) {
    u32 size = kXsaveLegacyAndHeaderBytes;
    for (u32 i = 2; i < kXsaveComponents; ++i) {
        if (!(xcr0 & (u64{1} << i)) || !layout.size[i]) continue;
        size = max(size, layout.offset[i] + layout.size[i]);
    }
    return size;
}

u32 xsave_compacted_size(const XsaveLayout& layout, u64 xcr0) {
    u32 size = kXsaveLegacyAndHeaderBytes;
    for (u32 i = 2; i < kXsaveComponents; ++i) {
        if (!(xcr0 & (u64{1} << i))) continue;
        if (layout.align64[i]) size = align_up(size, 64u);
        size += layout.size[i];
    }
    return size;
}

// Once at boot: for size, not speed.
[[gnu::cold]] bool xsavec_image_is_compacted(const u8* image, const u8 (&ymm0_high)[16]) {
    auto qword = [image](u32 offset) {
        u64 value = 0;
        for (u32 i = 0; i < 8; ++i) value |= u64{image[offset + i]} << (8 * i);
        return value;
    };
    constexpr u64 kRequested = kXcr0X87 | kXcr0Sse | kXcr0Avx;
    if (qword(kXsaveHeaderOffset + 8) != (kXcompBvCompacted | kRequested)) return false;
    if (!(qword(kXsaveHeaderOffset) & kXcr0Avx)) return false;
    for (u32 i = kXsaveHeaderOffset + 16; i < kXsaveLegacyAndHeaderBytes; ++i)
        if (image[i]) return false;
    for (u32 i = 0; i < 16; ++i)
        if (image[kXsaveLegacyAndHeaderBytes + i] != ymm0_high[i]) return false;
    return true;
}

void follow_guest_controls(u32 leaf, u32 subleaf, CpuidValues& values, const GuestXsaveControls& guest,
                           const XsaveOffer& offer, const XsaveLayout& layout) {
    switch (leaf) {
    case 1:
        values.ecx &= ~kCpuid1EcxOsxsave;
        if (offer.xsave && (guest.cr4 & kCr4Osxsave)) values.ecx |= kCpuid1EcxOsxsave;
        if (!offer.xsave) values.ecx &= ~kCpuid1EcxXsave;
        return;
    case 7:
        if (subleaf != 0) return;
        values.ecx &= ~kCpuid7EcxOspke;
        if (!(offer.xcr0 & kXcr0Pkru)) values.ecx &= ~kCpuid7EcxPku;
        if ((offer.xcr0 & kXcr0Pkru) && (guest.cr4 & kCr4Pke)) values.ecx |= kCpuid7EcxOspke;
        return;
    case kCpuidLeafXsave: break;
    default: return;
    }
    if (!offer.xsave) {
        values = {0, 0, 0, 0};
        return;
    }
    u64 xcr0 = guest.xcr0 & offer.xcr0;
    if (subleaf == 0) {
        values.eax = static_cast<u32>(offer.xcr0);
        values.edx = static_cast<u32>(offer.xcr0 >> 32);
        values.ebx = xsave_standard_size(layout, xcr0);
        values.ecx = xsave_standard_size(layout, offer.xcr0);
    } else if (subleaf == 1) {
        values.ebx = xsave_compacted_size(layout, xcr0);
    } else if (subleaf >= 64 || !(offer.xcr0 & (u64{1} << subleaf))) {
        values = {0, 0, 0, 0};
    }
}

}  // namespace nestor::virt
