#include "nestor/virt/cr4_policy.hpp"

#include "nestor/virt/vcpu_state.hpp"

namespace nestor::virt {

namespace {

constexpr u32 kCpuid1EcxPcid = 1u << 17;
constexpr u32 kCpuid7EbxFsgsbase = 1u << 0;
constexpr u32 kCpuid7EbxSmep = 1u << 7;
constexpr u32 kCpuid7EbxSmap = 1u << 20;
constexpr u32 kCpuid7EcxUmip = 1u << 2;
constexpr u32 kCpuid7EcxLa57 = 1u << 16;
constexpr u64 kCr3PcidMask = 0xFFF;

}  // namespace

u64 cr4_guest_settable(const CpuidValues& leaf1, const CpuidValues& leaf7, const XsaveOffer& offer) {
    u64 settable = kCr4Baseline;
    if (leaf1.ecx & kCpuid1EcxPcid) settable |= kCr4Pcide;
    if (leaf7.ebx & kCpuid7EbxFsgsbase) settable |= kCr4Fsgsbase;
    if (leaf7.ebx & kCpuid7EbxSmep) settable |= kCr4Smep;
    if (leaf7.ebx & kCpuid7EbxSmap) settable |= kCr4Smap;
    if (leaf7.ecx & kCpuid7EcxUmip) settable |= kCr4Umip;
    if (leaf7.ecx & kCpuid7EcxLa57) settable |= kCr4La57;
    if (offer.xsave) settable |= kCr4Osxsave;
    if (offer.xcr0 & kXcr0Pkru) settable |= kCr4Pke;
    return settable;
}

bool cr4_write_faults(u64 current_cr4, u64 value, u64 efer, u64 cr3, u64 settable) {
    if (value & ~settable) return true;
    bool long_mode = efer & kEferLma;
    if (long_mode && !(value & kCr4Pae)) return true;
    if (long_mode && ((value ^ current_cr4) & kCr4La57)) return true;
    bool pcide_set = (value & kCr4Pcide) && !(current_cr4 & kCr4Pcide);
    return pcide_set && (!long_mode || (cr3 & kCr3PcidMask));
}

}  // namespace nestor::virt
