// The CR4 writes a guest's CPU would refuse with #GP (the SVM backend's emulated MOV to CR4).
#include <catch2/catch.hpp>

#include "nestor/virt/cr4_policy.hpp"
#include "nestor/virt/vcpu_state.hpp"

using namespace nestor;
using namespace nestor::virt;

namespace {

// QEMU's -cpu EPYC: PCID no, FSGSBASE, SMEP, SMAP yes, UMIP and LA57 no; XSAVE with AVX, no PKU.
constexpr CpuidValues kLeaf1{0, 0, 1u << 26, 0};
constexpr CpuidValues kLeaf7{0, (1u << 0) | (1u << 7) | (1u << 20), 0, 0};
constexpr XsaveOffer kOffer{true, kXcr0X87 | kXcr0Sse | kXcr0Avx};
constexpr u64 kLongModeCr4 = kCr4Pae | kCr4Osfxsr | kCr4Osxmmexcpt;
constexpr u64 kLongModeEfer = kEferLme | kEferLma;

}  // namespace

TEST_CASE("cr4_policy.settable_bits_follow_the_host_and_the_offer") {
    u64 settable = cr4_guest_settable(kLeaf1, kLeaf7, kOffer);
    CHECK(settable == (kCr4Baseline | kCr4Fsgsbase | kCr4Smep | kCr4Smap | kCr4Osxsave));
    CHECK_FALSE(settable & (kCr4Vmxe | kCr4Smxe | kCr4Pke | kCr4Cet | kCr4Pks | kCr4Umip | kCr4La57 | kCr4Pcide));

    CpuidValues leaf1_pcid{0, 0, 1u << 17, 0};
    CpuidValues leaf7_more{0, 0, (1u << 2) | (1u << 16), 0};
    XsaveOffer with_pkru{true, kXcr0X87 | kXcr0Sse | kXcr0Pkru};
    u64 more = cr4_guest_settable(leaf1_pcid, leaf7_more, with_pkru);
    CHECK((more & (kCr4Pcide | kCr4Umip | kCr4La57 | kCr4Pke | kCr4Osxsave)) ==
          (kCr4Pcide | kCr4Umip | kCr4La57 | kCr4Pke | kCr4Osxsave));
    CHECK_FALSE(cr4_guest_settable(kLeaf1, kLeaf7, XsaveOffer{false, kXcr0X87 | kXcr0Sse}) & kCr4Osxsave);
}

TEST_CASE("cr4_policy.refuses_bits_the_cpu_lacks") {
    u64 settable = cr4_guest_settable(kLeaf1, kLeaf7, kOffer);
    CHECK_FALSE(cr4_write_faults(kLongModeCr4, kLongModeCr4 | kCr4Osxsave | kCr4Smep, kLongModeEfer, 0, settable));
    CHECK(cr4_write_faults(kLongModeCr4, kLongModeCr4 | (u64{1} << 19), kLongModeEfer, 0, settable));  // reserved
    CHECK(cr4_write_faults(kLongModeCr4, kLongModeCr4 | kCr4Vmxe, kLongModeEfer, 0, settable));
    CHECK(cr4_write_faults(kLongModeCr4, kLongModeCr4 | kCr4Umip, kLongModeEfer, 0, settable));
    CHECK(cr4_write_faults(kLongModeCr4, kLongModeCr4 | kCr4Pke, kLongModeEfer, 0, settable));
    CHECK(cr4_write_faults(kLongModeCr4, kLongModeCr4 | (u64{1} << 32), kLongModeEfer, 0, settable));
}

TEST_CASE("cr4_policy.long_mode_rules") {
    u64 settable = kCr4Baseline | kCr4Pcide | kCr4La57;
    // PAE may not be cleared in long mode, but may outside it.
    CHECK(cr4_write_faults(kLongModeCr4, kLongModeCr4 & ~kCr4Pae, kLongModeEfer, 0, settable));
    CHECK_FALSE(cr4_write_faults(kCr4Pae, 0, 0, 0, settable));
    // LA57 may not change in long mode.
    CHECK(cr4_write_faults(kLongModeCr4, kLongModeCr4 | kCr4La57, kLongModeEfer, 0, settable));
    CHECK(cr4_write_faults(kLongModeCr4 | kCr4La57, kLongModeCr4, kLongModeEfer, 0, settable));
    CHECK_FALSE(cr4_write_faults(kCr4Pae, kCr4Pae | kCr4La57, 0, 0, settable));
    // PCIDE: only in long mode, and only with CR3's PCID 0; keeping it set is no new setting.
    CHECK_FALSE(cr4_write_faults(kLongModeCr4, kLongModeCr4 | kCr4Pcide, kLongModeEfer, 0x1000, settable));
    CHECK(cr4_write_faults(kLongModeCr4, kLongModeCr4 | kCr4Pcide, kLongModeEfer, 0x1001, settable));
    CHECK(cr4_write_faults(kCr4Pae, kCr4Pae | kCr4Pcide, 0, 0, settable));
    CHECK_FALSE(cr4_write_faults(kLongModeCr4 | kCr4Pcide, kLongModeCr4 | kCr4Pcide, kLongModeEfer, 0x1005, settable));
}
