#include <catch2/catch.hpp>

#include "nestor/virt/cpuid_policy.hpp"
#include "nestor/virt/exit_handler.hpp"
#include "nestor/virt/vm_devices.hpp"
#include "nestor/virt/xsave_policy.hpp"

using namespace nestor;
using namespace nestor::virt;

namespace {

constexpr CpuidValues kLeaf1Xsave{0, 0, kCpuid1EcxXsave, 0};
constexpr CpuidValues kLeaf1NoXsave{0, 0, 0, 0};
constexpr CpuidValues kLeaf7Pku{0, 0, kCpuid7EcxPku, 0};
constexpr CpuidValues kLeaf7{0, 0, 0, 0};
// A host supporting x87, SSE, AVX, MPX (3, 4), AVX-512 (5-7), PKRU (9) and AMX (17, 18).
constexpr u64 kHostXcr0 = 0x602FF;
constexpr CpuidValues kLeafD0{static_cast<u32>(kHostXcr0), 0, 0, 0};
constexpr u64 kAll = kXcr0X87 | kXcr0Sse | kXcr0Avx | kXcr0Avx512 | kXcr0Pkru;

// Skylake-X's standard-format layout (CPUID 0xD subleaves 2..9: size, offset, flags).
CpuidValues skylake_subleaf(u32 i) {
    switch (i) {
    case 2: return {256, 576, 0, 0};
    case 3: return {64, 960, 0, 0};
    case 4: return {64, 1024, 0, 0};
    case 5: return {64, 1088, 0, 0};
    case 6: return {512, 1152, 0, 0};
    case 7: return {1024, 1664, 0, 0};
    case 9: return {8, 2688, 2, 0};
    default: return {0, 0, 0, 0};
    }
}

XsaveLayout skylake_layout() {
    XsaveLayout layout{};
    for (u32 i = 2; i < kXsaveComponents; ++i) record_xsave_component(layout, i, skylake_subleaf(i));
    return layout;
}

}  // namespace

TEST_CASE("xsave.offer_is_the_switched_components_the_host_has") {
    XsaveOffer all = xsave_offer(kLeaf1Xsave, kLeaf7Pku, kLeafD0);
    CHECK(all.xsave);
    CHECK(all.xcr0 == kAll);                                                       // no MPX, no AMX
    CHECK(xsave_offer(kLeaf1Xsave, kLeaf7, kLeafD0).xcr0 == (kAll & ~kXcr0Pkru));  // PKRU needs PKU
    // AVX-512 whole or not at all, and only with AVX.
    CHECK(xsave_offer(kLeaf1Xsave, kLeaf7, {0x67, 0, 0, 0}).xcr0 == (kXcr0X87 | kXcr0Sse | kXcr0Avx));
    CHECK(xsave_offer(kLeaf1Xsave, kLeaf7, {0xE3, 0, 0, 0}).xcr0 == (kXcr0X87 | kXcr0Sse));
    CHECK(xsave_offer(kLeaf1Xsave, kLeaf7, {0x7, 0, 0, 0}).xcr0 == (kXcr0X87 | kXcr0Sse | kXcr0Avx));
    XsaveOffer none = xsave_offer(kLeaf1NoXsave, kLeaf7Pku, kLeafD0);
    CHECK_FALSE(none.xsave);
    CHECK(none.xcr0 == (kXcr0X87 | kXcr0Sse));
}

TEST_CASE("xsave.xsetbv_accepts_exactly_the_architectural_subsets_of_the_offer") {
    XsaveOffer offer = xsave_offer(kLeaf1Xsave, kLeaf7Pku, kLeafD0);
    CHECK(xsetbv_allowed(0, kXcr0X87, offer));
    CHECK(xsetbv_allowed(0, kXcr0X87 | kXcr0Sse, offer));
    CHECK(xsetbv_allowed(0, kXcr0X87 | kXcr0Sse | kXcr0Avx, offer));
    CHECK(xsetbv_allowed(0, kAll, offer));
    CHECK(xsetbv_allowed(0, kXcr0X87 | kXcr0Pkru, offer));
    CHECK_FALSE(xsetbv_allowed(1, kXcr0X87, offer));                                      // only XCR0
    CHECK_FALSE(xsetbv_allowed(0, kXcr0Sse, offer));                                      // x87 may not be off
    CHECK_FALSE(xsetbv_allowed(0, kXcr0X87 | kXcr0Avx, offer));                           // AVX without SSE
    CHECK_FALSE(xsetbv_allowed(0, kXcr0X87 | kXcr0Sse | kXcr0Opmask | kXcr0Avx, offer));  // part of AVX-512
    CHECK_FALSE(xsetbv_allowed(0, kXcr0X87 | kXcr0Sse | kXcr0Avx512, offer));             // AVX-512 without AVX
    for (u32 bit : {3u, 4u, 8u, 10u, 17u, 18u, 62u, 63u})                                 // not offered
        CHECK_FALSE(xsetbv_allowed(0, kXcr0X87 | kXcr0Sse | (u64{1} << bit), offer));
    XsaveOffer sse_only = xsave_offer(kLeaf1Xsave, kLeaf7, {0x3, 0, 0, 0});
    CHECK_FALSE(xsetbv_allowed(0, kXcr0X87 | kXcr0Sse | kXcr0Avx, sse_only));
    CHECK_FALSE(xsetbv_allowed(0, kXcr0X87, xsave_offer(kLeaf1NoXsave, kLeaf7, kLeafD0)));  // no XSETBV
}

TEST_CASE("xsave.cr4_bits_follow_the_offer") {
    XsaveOffer offer = xsave_offer(kLeaf1Xsave, kLeaf7Pku, kLeafD0);
    CHECK(cr4_extended_state_not_offered(offer) == (kCr4Cet | kCr4Pks));
    CHECK(cr4_extended_state_not_offered(xsave_offer(kLeaf1Xsave, kLeaf7, kLeafD0)) == (kCr4Cet | kCr4Pks | kCr4Pke));
    CHECK(cr4_extended_state_not_offered(xsave_offer(kLeaf1NoXsave, kLeaf7, kLeafD0)) ==
          (kCr4Cet | kCr4Pks | kCr4Pke | kCr4Osxsave));
}

TEST_CASE("xsave.area_sizes_from_the_layout") {
    XsaveLayout layout = skylake_layout();
    CHECK(xsave_standard_size(layout, kXcr0X87 | kXcr0Sse) == 576);
    CHECK(xsave_standard_size(layout, kXcr0X87 | kXcr0Sse | kXcr0Avx) == 832);
    CHECK(xsave_standard_size(layout, kAll & ~kXcr0Pkru) == 2688);
    CHECK(xsave_standard_size(layout, kAll) == 2696);
    CHECK(xsave_compacted_size(layout, kXcr0X87 | kXcr0Sse | kXcr0Avx) == 832);
    CHECK(xsave_compacted_size(layout, kXcr0X87 | kXcr0Pkru) == 576 + 8);
    CHECK(xsave_compacted_size(layout, kAll) == 576 + 256 + 64 + 512 + 1024 + 8);
    XsaveLayout aligned = layout;
    aligned.align64[9] = true;
    CHECK(xsave_compacted_size(aligned, kXcr0X87 | kXcr0Avx | kXcr0Sse | kXcr0Pkru) == 832 + 8);
}

TEST_CASE("xsave.cpuid_policy_hides_state_that_is_not_switched") {
    constexpr CpuidValues kAllOnes{0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF};
    CpuidValues l7 = cpuid_policy(7, 0, kAllOnes);
    CHECK((l7.ebx & (kCpuid7EbxMpx | kCpuid7EbxProcessorTrace)) == 0);
    CHECK((l7.ecx & (kCpuid7EcxCetShadowStack | kCpuid7EcxPks)) == 0);
    CHECK((l7.edx & (kCpuid7EdxCetIbt | kCpuid7EdxAmx | kCpuid7EdxUintr | kCpuid7EdxArchLbr)) == 0);
    CHECK((l7.ebx & (1u << 5)) != 0);                       // AVX2 stays
    CHECK((l7.ecx & kCpuid7EcxPku) != 0);                   // PKU stays
    CHECK(cpuid_policy(7, 1, kAllOnes).eax == 0xFFFFFFFF);  // other subleaves untouched
    CpuidValues d0 = cpuid_policy(kCpuidLeafXsave, 0, kAllOnes);
    CHECK(d0.eax == static_cast<u32>(kXcr0Switched));
    CHECK(d0.edx == 0);
    CpuidValues d1 = cpuid_policy(kCpuidLeafXsave, 1, kAllOnes);
    CHECK((d1.eax & (kCpuidXsave1EaxXsaves | kCpuidXsave1EaxXfd)) == 0);
    CHECK((d1.eax & 0x7) == 0x7);  // XSAVEOPT, XSAVEC, XGETBV1 stay
    CHECK(d1.ecx == 0);
    CHECK(d1.edx == 0);
    for (u32 sub : {3u, 4u, 8u, 11u, 12u, 17u, 18u, 63u, 64u}) {
        CpuidValues v = cpuid_policy(kCpuidLeafXsave, sub, kAllOnes);
        CHECK(v.eax == 0);
        CHECK(v.ebx == 0);
    }
    CHECK(cpuid_policy(kCpuidLeafXsave, 2, kAllOnes).eax == 0xFFFFFFFF);
    CHECK((cpuid_policy(0x80000001, 0, kAllOnes).ecx & kCpuidExt1EcxLwp) == 0);
    for (u32 leaf : {kCpuidLeafProcessorTrace, kCpuidLeafAmxTiles, kCpuidLeafAmxTmul, kCpuidLeafAmdLwp})
        CHECK(cpuid_policy(leaf, 0, kAllOnes).eax == 0);
}

namespace {

// A host like Skylake-X with PKU; the guest's CR4 and XCR0 are the test's to set.
class XsaveEnvironment final : public ExitEnvironment {
public:
    CpuidValues host_cpuid(u32 leaf, u32 subleaf) override {
        ++cpuid_calls;
        if (leaf == 1) return {0, 0, kCpuid1EcxXsave | kCpuid1EcxOsxsave | (1u << 28), 0};
        if (leaf == 7 && subleaf == 0) return {0, 0, kCpuid7EcxPku | kCpuid7EcxOspke, 0};
        if (leaf == kCpuidLeafXsave && subleaf == 0) return {static_cast<u32>(kHostXcr0), 9999, 9999, 0};
        if (leaf == kCpuidLeafXsave && subleaf == 1) return {0xF, 9999, 0x1900, 0};
        if (leaf == kCpuidLeafXsave) return skylake_subleaf(subleaf);
        return {0, 0, 0, 0};
    }
    void console_line(const char*, usize) override {}
    ExitOutcome hypercall(VcpuState&) override { return {}; }
    GuestXsaveControls guest_xsave_controls() override { return controls; }
    void set_guest_xcr0(u64 xcr0) override {
        controls.xcr0 = xcr0;
        ++xcr0_writes;
    }

    GuestXsaveControls controls{0, kXcr0X87};
    int cpuid_calls = 0;
    int xcr0_writes = 0;
};

struct XsaveFixture {
    XsaveEnvironment env;
    VmDevices devices;
    VcpuState state{};
    CpuidMemo memo;
    XsaveFixture() {
        REQUIRE(devices.attach().ok());
        state.rip = 0x1000;
        state.mode = CpuMode::long64;
    }
    ExitOutcome xsetbv(u32 index, u64 value) {
        VmExit exit{};
        exit.kind = ExitKind::xsetbv;
        exit.instruction_length = 3;
        exit.xsetbv = XsetbvExit{index, value};
        return handle_exit(exit, state, devices.bus, env, ExitContext{nullptr, &memo});
    }
    CpuidValues cpuid(u32 leaf, u32 subleaf) {
        VmExit exit{};
        exit.kind = ExitKind::cpuid;
        exit.instruction_length = 2;
        state.rax() = leaf;
        state.rcx() = subleaf;
        handle_exit(exit, state, devices.bus, env, ExitContext{nullptr, &memo});
        return {static_cast<u32>(state.rax()), static_cast<u32>(state.rbx()), static_cast<u32>(state.rcx()),
                static_cast<u32>(state.rdx())};
    }
};

}  // namespace

TEST_CASE("exit.xsetbv_of_an_offered_value_becomes_the_vcpus_xcr0") {
    XsaveFixture f;
    ExitOutcome o = f.xsetbv(0, kXcr0X87 | kXcr0Sse | kXcr0Avx);
    CHECK_FALSE(o.inject);
    CHECK_FALSE(o.stop);
    CHECK(f.state.rip == 0x1003);
    CHECK(f.env.controls.xcr0 == (kXcr0X87 | kXcr0Sse | kXcr0Avx));
}

TEST_CASE("exit.xsetbv_beyond_the_offer_gets_gp") {
    for (u64 value : {kXcr0X87 | kXcr0Sse | (u64{1} << 3), kXcr0X87 | kXcr0Sse | (u64{1} << 17), kXcr0Sse,
                      kXcr0X87 | kXcr0Avx, kXcr0X87 | kXcr0Sse | kXcr0Avx | kXcr0Opmask}) {
        XsaveFixture f;
        ExitOutcome o = f.xsetbv(0, value);
        CHECK(o.inject);
        CHECK(o.vector == kVectorGp);
        CHECK(o.has_error_code);
        CHECK(o.error_code == 0);
        CHECK(f.state.rip == 0x1000);  // a fault: the XSETBV is not completed
        CHECK(f.env.xcr0_writes == 0);
    }
    XsaveFixture f;
    CHECK(f.xsetbv(1, kXcr0X87).vector == kVectorGp);
    CHECK(f.env.xcr0_writes == 0);
    CHECK(f.xsetbv(0, kXcr0X87 | kXcr0Sse).stop == false);
    VmExit undecodable{};
    undecodable.kind = ExitKind::xsetbv;
    undecodable.xsetbv = XsetbvExit{0, kXcr0X87};
    CHECK(handle_exit(undecodable, f.state, f.devices.bus, f.env).reason == StopReason::undecodable);
}

TEST_CASE("exit.cpuid_reports_the_guests_own_cr4_and_xcr0") {
    XsaveFixture f;
    CHECK((f.cpuid(1, 0).ecx & kCpuid1EcxOsxsave) == 0);  // the host's OSXSAVE is not the guest's
    CHECK((f.cpuid(7, 0).ecx & kCpuid7EcxOspke) == 0);
    CpuidValues d0 = f.cpuid(kCpuidLeafXsave, 0);
    CHECK(d0.eax == static_cast<u32>(kAll));
    CHECK(d0.ebx == 576);   // for XCR0 = x87
    CHECK(d0.ecx == 2696);  // for everything offered
    f.env.controls = {kCr4Osxsave | kCr4Pke, kXcr0X87 | kXcr0Sse | kXcr0Avx};
    int calls = f.env.cpuid_calls;
    CHECK((f.cpuid(1, 0).ecx & kCpuid1EcxOsxsave) != 0);  // never from the memo
    CHECK(f.env.cpuid_calls > calls);
    CHECK((f.cpuid(7, 0).ecx & kCpuid7EcxOspke) != 0);
    CHECK(f.cpuid(kCpuidLeafXsave, 0).ebx == 832);
    CHECK(f.cpuid(kCpuidLeafXsave, 1).ebx == 832);
    CHECK(f.cpuid(kCpuidLeafXsave, 3).eax == 0);  // MPX: not offered
    CHECK(f.cpuid(kCpuidLeafXsave, 9).ebx == 2688);
}

namespace {

constexpr u8 kYmm0High[16] = {0x5A, 0xC3, 1, 0xFE, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13};

void put_qword(u8* image, u32 offset, u64 value) {
    for (u32 i = 0; i < 8; ++i) image[offset + i] = static_cast<u8>(value >> (8 * i));
}

// What XSAVEC writes with x87, SSE and AVX requested and AVX in use, YMM state at `avx_offset`.
void xsavec_image(u8 (&image)[1024], u32 avx_offset) {
    for (u8& byte : image) byte = 0;
    for (u32 i = 0; i < 16; ++i) image[avx_offset + i] = kYmm0High[i];
    put_qword(image, kXsaveHeaderOffset, kXcr0Sse | kXcr0Avx);
    put_qword(image, kXsaveHeaderOffset + 8, kXcompBvCompacted | kXcr0X87 | kXcr0Sse | kXcr0Avx);
}

}  // namespace

TEST_CASE("xsave.xsavec_image_in_the_compacted_format_passes") {
    u8 image[1024];
    xsavec_image(image, kXsaveLegacyAndHeaderBytes);
    CHECK(xsavec_image_is_compacted(image, kYmm0High));
}

TEST_CASE("xsave.xsavec_image_with_avx_state_over_the_header_fails") {
    // Bochs 2.7: the AVX state after the SSE state's 256 bytes, at 416, over the header's
    // reserved bytes; the header then written over its first 16.
    u8 image[1024];
    xsavec_image(image, 416);
    for (u32 i = 416; i < 416 + 256; ++i) image[i] = static_cast<u8>(i | 1);
    put_qword(image, kXsaveHeaderOffset, kXcr0Sse | kXcr0Avx);
    put_qword(image, kXsaveHeaderOffset + 8, kXcompBvCompacted | kXcr0X87 | kXcr0Sse | kXcr0Avx);
    CHECK_FALSE(xsavec_image_is_compacted(image, kYmm0High));
}

TEST_CASE("xsave.xsavec_image_fails_on_each_wrong_part") {
    u8 image[1024];
    xsavec_image(image, kXsaveLegacyAndHeaderBytes);
    image[kXsaveHeaderOffset + 16] = 1;  // a reserved header byte
    CHECK_FALSE(xsavec_image_is_compacted(image, kYmm0High));
    xsavec_image(image, kXsaveLegacyAndHeaderBytes);
    image[kXsaveLegacyAndHeaderBytes - 1] = 1;  // the last reserved header byte
    CHECK_FALSE(xsavec_image_is_compacted(image, kYmm0High));
    xsavec_image(image, kXsaveLegacyAndHeaderBytes);
    put_qword(image, kXsaveHeaderOffset + 8, kXcr0X87 | kXcr0Sse | kXcr0Avx);  // the standard format
    CHECK_FALSE(xsavec_image_is_compacted(image, kYmm0High));
    xsavec_image(image, kXsaveLegacyAndHeaderBytes);
    put_qword(image, kXsaveHeaderOffset, kXcr0Sse);  // AVX state not saved
    CHECK_FALSE(xsavec_image_is_compacted(image, kYmm0High));
    xsavec_image(image, kXsaveLegacyAndHeaderBytes);
    image[kXsaveLegacyAndHeaderBytes + 15] ^= 0xFF;  // YMM0's upper half not where it belongs
    CHECK_FALSE(xsavec_image_is_compacted(image, kYmm0High));
}
