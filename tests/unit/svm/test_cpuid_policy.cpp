#include <catch2/catch.hpp>
#include <cstring>
#include <string>

#include "nestor/virt/cpuid_policy.hpp"

using namespace nestor;
using namespace nestor::virt;

namespace {
constexpr CpuidValues kAllOnes{0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF};
constexpr CpuidValues kZeros{0, 0, 0, 0};
}  // namespace

TEST_CASE("cpuid_policy.hides_vmx") {
    CpuidValues v = cpuid_policy(1, 0, kAllOnes);
    CHECK((v.ecx & (1u << 5)) == 0);
    // VMX, MONITOR (bit 3) and PDCM (bit 15) hidden; nothing else.
    CHECK(v.ecx == (0xFFFFFFFFu & ~((1u << 5) | (1u << 3) | (1u << 15))));
    CHECK(v.eax == 0xFFFFFFFF);
    CHECK(v.edx == 0xFFFFFFFF);
}

TEST_CASE("cpuid_policy.hides_svm") {
    CpuidValues v = cpuid_policy(0x80000001, 0, kAllOnes);
    CHECK((v.ecx & (1u << 2)) == 0);
    // SVM, LWP (bit 15, state not switched), the performance-counter extensions (bits 23, 24, 28)
    // and MONITORX (bit 29) hidden.
    CHECK(v.ecx == (0xFFFFFFFFu & ~((1u << 2) | (1u << 15) | (1u << 23) | (1u << 24) | (1u << 28) | (1u << 29))));
    CHECK(v.edx == 0xFFFFFFFF);
    CpuidValues features = cpuid_policy(0x8000000A, 0, kAllOnes);
    CHECK(features.eax == 0);
    CHECK(features.ebx == 0);
    CHECK(features.edx == 0);
}

TEST_CASE("cpuid_policy.hides_monitor_mwait_and_performance_counters") {
    CHECK((cpuid_policy(1, 0, kAllOnes).ecx & (1u << 3)) == 0);            // MONITOR: MONITOR/MWAIT #UD
    CHECK((cpuid_policy(0x80000001, 0, kAllOnes).ecx & (1u << 29)) == 0);  // MONITORX
    CHECK((cpuid_policy(0x80000001, 0, kAllOnes).ecx & (1u << 23)) == 0);  // core counters: RDPMC #GPs
    for (u32 leaf : {0x5u, 0xAu, 0x80000022u}) {
        CpuidValues v = cpuid_policy(leaf, 0, kAllOnes);
        CHECK(v.eax == 0);
        CHECK(v.ebx == 0);
        CHECK(v.ecx == 0);
        CHECK(v.edx == 0);
    }
}

TEST_CASE("cpuid_policy.sets_hypervisor_bit") { CHECK((cpuid_policy(1, 0, kZeros).ecx & (1u << 31)) != 0); }

TEST_CASE("cpuid_policy.hypervisor_leaf") {
    CpuidValues v = cpuid_policy(0x40000000, 0, kAllOnes);
    CHECK(v.eax == 0x40000001);
    char signature[13] = {};
    std::memcpy(signature, &v.ebx, 4);
    std::memcpy(signature + 4, &v.ecx, 4);
    std::memcpy(signature + 8, &v.edx, 4);
    CHECK(std::string(signature) == "NestorNestor");
    CHECK(cpuid_leaf_is_synthetic(0x40000000));
    CHECK(cpuid_leaf_is_synthetic(0x400000FF));
    CHECK_FALSE(cpuid_leaf_is_synthetic(0x40000100));
    CHECK_FALSE(cpuid_leaf_is_synthetic(0x3FFFFFFF));
}

TEST_CASE("cpuid_policy.unanswered_hypervisor_leaves_are_zero") {
    CpuidValues v = cpuid_policy(0x40000042, 0, kAllOnes);
    CHECK(v.eax == 0);
    CHECK(v.ebx == 0);
    CHECK(v.ecx == 0);
    CHECK(v.edx == 0);
}

TEST_CASE("cpuid_policy.other_leaves_pass_through") {
    CpuidValues host{0x0D, 0x68747541, 0x444D4163, 0x69746E65};  // "AuthenticAMD"
    CpuidValues v = cpuid_policy(0, 0, host);
    CHECK(v.eax == host.eax);
    CHECK(v.ebx == host.ebx);
    CHECK(v.ecx == host.ecx);
    CHECK(v.edx == host.edx);
    CpuidValues seven = cpuid_policy(7, 0, kAllOnes);
    // All but MPX and Processor Trace, whose state is not switched (xsave_policy.hpp).
    CHECK(seven.ebx == ~(kCpuid7EbxMpx | kCpuid7EbxProcessorTrace));
}

TEST_CASE("cpuid_memo.remembers_exactly_the_leaf_and_subleaf") {
    CpuidMemo memo;
    CHECK(memo.find(0, 0) == nullptr);
    memo.remember(7, 0, {1, 2, 3, 4});
    const CpuidValues* v = memo.find(7, 0);
    REQUIRE(v != nullptr);
    CHECK(v->eax == 1);
    CHECK(v->ebx == 2);
    CHECK(v->ecx == 3);
    CHECK(v->edx == 4);
    CHECK(memo.find(7, 1) == nullptr);  // another subleaf is another question
    CHECK(memo.find(0x80000007, 0) == nullptr);
    memo.remember(7, 0, {5, 6, 7, 8});  // the newest answer wins
    CHECK(memo.find(7, 0)->eax == 5);
    memo.clear();
    CHECK(memo.find(7, 0) == nullptr);
}

TEST_CASE("cpuid_memo.a_shared_entry_never_answers_for_the_wrong_query") {
    // Find two queries that share an entry: the second replaces the first, which is then
    // worked out again rather than answered with the other's values.
    u32 leaf_a = 0, leaf_b = 1;
    while (CpuidMemo::index(leaf_b, 0) != CpuidMemo::index(leaf_a, 0)) ++leaf_b;
    CpuidMemo memo;
    memo.remember(leaf_a, 0, {0xA, 0xA, 0xA, 0xA});
    memo.remember(leaf_b, 0, {0xB, 0xB, 0xB, 0xB});
    CHECK(memo.find(leaf_a, 0) == nullptr);
    REQUIRE(memo.find(leaf_b, 0) != nullptr);
    CHECK(memo.find(leaf_b, 0)->eax == 0xB);
}

TEST_CASE("cpuid_memo.spreads_the_leaves_a_guest_asks_for") {
    // The basic, hypervisor and extended leaves a booting OS reads: few may share an entry.
    u32 leaves[] = {0, 1, 2, 4, 6, 7, 0xB, 0xD, 0x40000000, 0x40000001, 0x80000000, 0x80000001, 0x80000007, 0x80000008};
    bool used[CpuidMemo::kEntries] = {};
    int shared = 0;
    for (u32 leaf : leaves) {
        u32 i = CpuidMemo::index(leaf, 0);
        REQUIRE(i < CpuidMemo::kEntries);
        if (used[i]) ++shared;
        used[i] = true;
    }
    CHECK(shared <= 3);
    for (u32 sub = 0; sub < 4; ++sub) CHECK(CpuidMemo::index(4, sub) < CpuidMemo::kEntries);
}

// PC domains: the vCPU's place in its domain and the PC's additions (CpuidTopology).
namespace {
constexpr CpuVendor kBothVendors[] = {CpuVendor::intel, CpuVendor::amd};
CpuidTopology pc_vcpu(CpuVendor vendor, u32 apic_id, u32 vcpus) {
    return {vendor, apic_id, vcpus, 2'400'000, 1'000'000};
}
}  // namespace

TEST_CASE("cpuid_policy.pc_leaf_1_places_the_vcpu_and_its_apic") {
    for (CpuVendor vendor : kBothVendors) {
        CpuidTopology pc = pc_vcpu(vendor, 3, 4);
        CpuidValues v = cpuid_policy(1, 0, {0x000A0655, 0x00000800, 0, 0}, &pc);
        CHECK(v.eax == 0x000A0655);
        CHECK(v.ebx == 0x03040800);  // APIC ID 3, 4 logical processors, the host's CLFLUSH size
        CHECK((v.ecx & kCpuid1EcxX2apic) != 0);
        CHECK((v.ecx & kCpuid1EcxTscDeadline) != 0);
        CHECK((v.ecx & kCpuid1EcxHypervisor) != 0);
        CHECK((v.edx & kCpuid1EdxApic) != 0);
        CHECK((v.edx & kCpuid1EdxHtt) != 0);
        // The logical-processor count is a power of two: the APIC IDs the package spans.
        pc = pc_vcpu(vendor, 5, 6);
        CHECK(cpuid_policy(1, 0, kZeros, &pc).ebx == 0x05080000);
        pc = pc_vcpu(vendor, 0, 1);
        v = cpuid_policy(1, 0, kAllOnes, &pc);
        CHECK((v.ebx >> 16) == 0x0001);
        CHECK((v.edx & kCpuid1EdxHtt) == 0);
    }
}

TEST_CASE("cpuid_policy.pc_leaf_1_hides_what_the_pc_lacks") {
    CpuidTopology pc = pc_vcpu(CpuVendor::intel, 0, 2);
    CpuidValues v = cpuid_policy(1, 0, kAllOnes, &pc);
    // Bare policy's hidden bits, and DTES64, DS-CPL, SMX, EST, TM2, CNXT-ID, xTPR, DCA.
    u32 ecx_hidden = (1u << 2) | (1u << 3) | (1u << 4) | (1u << 5) | (1u << 6) | (1u << 7) | (1u << 8) | (1u << 10) |
                     (1u << 14) | (1u << 15) | (1u << 18);
    CHECK(v.ecx == ~ecx_hidden);
    // PSN, DS, ACPI, TM, PBE.
    CHECK(v.edx == ~((1u << 18) | (1u << 21) | (1u << 22) | (1u << 29) | (1u << 31)));
    // A bare domain still sees them all.
    CHECK(cpuid_policy(1, 0, kAllOnes).edx == 0xFFFFFFFF);
}

TEST_CASE("cpuid_policy.pc_x2apic_topology_leaves") {
    for (CpuVendor vendor : kBothVendors)
        for (u32 leaf : {0xBu, 0x1Fu}) {
            CpuidTopology pc = pc_vcpu(vendor, 5, 6);
            CpuidValues smt = cpuid_policy(leaf, 0, kAllOnes, &pc);
            CHECK(smt.eax == 0);  // one thread per core: no bits
            CHECK(smt.ebx == 1);
            CHECK(smt.ecx == (kTopologyLevelSmt << 8));
            CHECK(smt.edx == 5);
            CpuidValues core = cpuid_policy(leaf, 1, kAllOnes, &pc);
            CHECK(core.eax == 3);  // 6 vCPUs take 3 bits of APIC ID
            CHECK(core.ebx == 6);
            CHECK(core.ecx == (1 | (kTopologyLevelCore << 8)));
            CHECK(core.edx == 5);
            for (u32 sub : {2u, 3u, 0x1234u}) {
                CpuidValues end = cpuid_policy(leaf, sub, kAllOnes, &pc);
                CHECK(end.eax == 0);
                CHECK(end.ebx == 0);
                CHECK(end.ecx == (sub & 0xFF));  // level type 0: invalid
                CHECK(end.edx == 5);
            }
            pc = pc_vcpu(vendor, 0, 1);
            CHECK(cpuid_policy(leaf, 1, kAllOnes, &pc).eax == 0);
            CHECK(cpuid_policy(leaf, 1, kAllOnes, &pc).ebx == 1);
        }
}

TEST_CASE("cpuid_policy.pc_intel_cache_leaf_counts_the_package") {
    CpuidTopology pc = pc_vcpu(CpuVendor::intel, 1, 6);
    CpuidValues l1d = cpuid_policy(4, 0, {0xFC004121, 0x01C0003F, 0x3F, 0}, &pc);  // host: L1d, 2 threads, 64 cores
    CHECK(l1d.eax == ((7u << 26) | 0x121));                                        // 8 core IDs, one thread shares it
    CHECK(l1d.ebx == 0x01C0003F);
    CpuidValues l3 = cpuid_policy(4, 3, {0xFC0FC163, 0x03C0003F, 0x7FFF, 6}, &pc);
    CHECK(l3.eax == ((7u << 26) | (7u << 14) | 0x163));  // the package's 8 APIC IDs share it
    CHECK(l3.edx == 6);
    CpuidValues end = cpuid_policy(4, 4, {0, 0, 0, 0}, &pc);  // no more caches: untouched
    CHECK(end.eax == 0);
    pc.vendor = CpuVendor::amd;  // AMD's leaf 4 is the host's
    CHECK(cpuid_policy(4, 0, {0xFC004121, 0, 0, 0}, &pc).eax == 0xFC004121);
}

TEST_CASE("cpuid_policy.pc_amd_topology_leaves") {
    CpuidTopology pc = pc_vcpu(CpuVendor::amd, 5, 6);
    CpuidValues size = cpuid_policy(0x80000008, 0, {0x3030, 0, 0x0003F07F, 0}, &pc);
    CHECK(size.eax == 0x3030);
    CHECK(size.ecx == (0x00030000 | (3u << 12) | 5));  // NC = 5, 3 APIC ID bits; PerfTscSize kept
    CpuidValues ids = cpuid_policy(0x8000001E, 0, kAllOnes, &pc);
    CHECK(ids.eax == 5);  // extended APIC ID
    CHECK(ids.ebx == 5);  // core 5, one thread per core
    CHECK(ids.ecx == 0);  // node 0 of one
    CHECK(ids.edx == 0);
    CpuidValues l3 = cpuid_policy(0x8000001D, 3, {0x0003C163, 0x03C0003F, 0x7FFF, 1}, &pc);
    CHECK(l3.eax == ((7u << 14) | 0x163));
    CpuidValues l1 = cpuid_policy(0x8000001D, 0, {0x00004121, 0x01C0003F, 0x3F, 0}, &pc);
    CHECK(l1.eax == 0x121);
    // Intel's answers to these are the host's.
    pc.vendor = CpuVendor::intel;
    CHECK(cpuid_policy(0x80000008, 0, {0x3027, 0, 0x1234, 0}, &pc).ecx == 0x1234);
    CHECK(cpuid_policy(0x8000001E, 0, kAllOnes, &pc).eax == 0xFFFFFFFF);
}

TEST_CASE("cpuid_policy.pc_invariant_tsc_and_no_power_management") {
    for (CpuVendor vendor : kBothVendors) {
        CpuidTopology pc = pc_vcpu(vendor, 0, 2);
        CpuidValues power = cpuid_policy(0x80000007, 0, kAllOnes, &pc);
        CHECK(power.eax == 0);
        CHECK(power.ebx == 0);  // no SMCA
        CHECK(power.ecx == 0);
        CHECK(power.edx == kCpuidExt7EdxInvariantTsc);
        CHECK(cpuid_policy(0x80000007, 0, kZeros, &pc).edx == kCpuidExt7EdxInvariantTsc);
        CpuidValues thermal = cpuid_policy(6, 0, kAllOnes, &pc);
        CHECK(thermal.eax == kCpuid6EaxArat);
        CHECK(thermal.ebx == 0);
        CHECK(thermal.ecx == 0);  // no APERF/MPERF
        CHECK(thermal.edx == 0);
    }
    CHECK(cpuid_policy(0x80000007, 0, kAllOnes).edx == 0xFFFFFFFF);  // bare: the host's
}

TEST_CASE("cpuid_policy.pc_offers_tsc_adjust_on_every_host") {
    for (CpuVendor vendor : kBothVendors) {
        CpuidTopology pc = pc_vcpu(vendor, 0, 2);
        CHECK(cpuid_policy(7, 0, kZeros, &pc).ebx == kCpuid7EbxTscAdjust);
        CHECK(cpuid_policy(7, 1, kZeros, &pc).ebx == 0);  // leaf 7's other subleaves are the host's
    }
    CHECK(cpuid_policy(7, 0, kZeros).ebx == 0);  // bare: the host's
}

TEST_CASE("cpuid_policy.pc_hypervisor_leaves") {
    for (CpuVendor vendor : kBothVendors) {
        CpuidTopology pc = pc_vcpu(vendor, 0, 2);
        CpuidValues base = cpuid_policy(0x40000000, 0, kAllOnes, &pc);
        CHECK(base.eax == 0x40000010);
        CHECK(base.ebx == kNestorSignatureEbx);
        CHECK(base.ecx == kNestorSignatureEcx);
        CHECK(base.edx == kNestorSignatureEdx);
        CHECK(cpuid_policy(0x40000001, 0, kAllOnes, &pc).eax == cpuid_policy(0x40000001, 0, kAllOnes).eax);
        CpuidValues timing = cpuid_policy(0x40000010, 0, kAllOnes, &pc);
        CHECK(timing.eax == 2'400'000);
        CHECK(timing.ebx == 1'000'000);
        CHECK(timing.ecx == 0);
        CHECK(timing.edx == 0);
        CHECK(cpuid_policy(0x40000005, 0, kAllOnes, &pc).eax == 0);
    }
    // A bare domain's hypervisor leaves are what they were.
    CHECK(cpuid_policy(0x40000000, 0, kAllOnes).eax == 0x40000001);
    CHECK(cpuid_policy(0x40000010, 0, kAllOnes).eax == 0);
}

TEST_CASE("cpuid_policy.pc_hides_features_without_their_msrs") {
    CpuidTopology pc = pc_vcpu(CpuVendor::intel, 0, 2);
    CpuidValues seven = cpuid_policy(7, 0, kAllOnes, &pc);
    CHECK(seven.ebx == ~(kCpuid7EbxMpx | kCpuid7EbxProcessorTrace | (1u << 2) | (1u << 12) | (1u << 15)));
    CHECK((seven.ecx & ((1u << 5) | (1u << 13) | (1u << 24) | (1u << 30))) == 0);  // WAITPKG, TME, bus lock, SGX-LC
    CHECK((seven.edx & ((1u << 13) | (1u << 28))) == 0);                           // TSX_FORCE_ABORT, L1D_FLUSH
    CHECK((seven.edx & kCpuid7EdxArchCapabilities) != 0);                          // the MSR file has it
    CHECK(cpuid_policy(7, 1, kAllOnes, &pc).ebx == 0xFFFFFFFF);                    // other subleaves: the host's
    CHECK((cpuid_policy(7, 0, kAllOnes).ecx & (1u << 5)) != 0);                    // bare: WAITPKG stays
    CpuidValues ext1 = cpuid_policy(0x80000001, 0, kAllOnes, &pc);
    for (u32 bit : {3u, 10u, 12u, 13u, 19u, 27u}) CHECK((ext1.ecx & (1u << bit)) == 0);
    CHECK((ext1.ecx & (1u << 22)) != 0);  // TOPOEXT stays: 0x8000001D/E describe the PC
    CHECK((cpuid_policy(0x80000008, 0, kAllOnes, &pc).ebx & kCpuidExt8EbxIrperf) == 0);
    CHECK((cpuid_policy(0x80000021, 0, kAllOnes, &pc).eax & (1u << 8)) == 0);  // automatic IBRS
    for (u32 leaf : {0xFu, 0x10u, 0x12u, 0x8000001Bu, 0x8000001Fu, 0x80000020u, 0x80000026u}) {
        INFO(std::hex << leaf);
        CpuidValues v = cpuid_policy(leaf, 0, kAllOnes, &pc);
        CHECK(v.eax == 0);
        CHECK(v.ebx == 0);
        CHECK(v.ecx == 0);
        CHECK(v.edx == 0);
        CHECK(cpuid_policy(leaf, 0, kAllOnes).eax == 0xFFFFFFFF);  // bare: the host's
    }
}

// IA32_SPEC_CTRL would be stored, never loaded into the CPU: a PC guest is shown no speculation
// control, so it neither believes itself protected nor finds the MSRs (msr_config_from_cpuid).
TEST_CASE("cpuid_policy.pc_hides_the_speculation_controls") {
    for (CpuVendor vendor : {CpuVendor::intel, CpuVendor::amd}) {
        CpuidTopology pc = pc_vcpu(vendor, 0, 2);
        CpuidValues seven = cpuid_policy(7, 0, kAllOnes, &pc);
        CHECK((seven.edx & (kCpuid7EdxSpecCtrl | kCpuid7EdxStibp | kCpuid7EdxSsbd)) == 0);
        CHECK((seven.edx & ((1u << 10) | kCpuid7EdxArchCapabilities)) != 0);  // MD_CLEAR (VERW) stays
        CpuidValues seven_2 = cpuid_policy(7, 2, kAllOnes, &pc);
        CHECK((seven_2.edx & 0x1F) == 0);       // PSFD, IPRED_CTRL, RRSBA_CTRL, DDPD_U, BHI_CTRL
        CHECK((seven_2.edx & (1u << 5)) != 0);  // MCDT_NO: a report, no MSR
        CHECK(cpuid_policy(7, 1, kAllOnes, &pc).edx == 0xFFFFFFFF);
        u32 ext8 = cpuid_policy(0x80000008, 0, kAllOnes, &pc).ebx;
        for (u32 bit : {12u, 14u, 15u, 16u, 17u, 18u, 19u, 24u, 25u, 28u, 30u}) {
            INFO(bit);
            CHECK((ext8 & (1u << bit)) == 0);
        }
        CHECK((ext8 & ((1u << 26) | (1u << 29))) != 0);  // SSB_NO, BTC_NO: reports stay
        CHECK((cpuid_policy(0x80000021, 0, kAllOnes, &pc).eax & ((1u << 27) | (1u << 28))) == 0);  // SBPB, IBPB_BRTYPE
    }
    // A domain without a PC: the host's (its MSRs are none but 0x8B anyway).
    CHECK((cpuid_policy(7, 0, kAllOnes).edx & kCpuid7EdxSpecCtrl) != 0);
    CHECK((cpuid_policy(0x80000008, 0, kAllOnes).ebx & kCpuidExt8EbxIbpb) != 0);
}

TEST_CASE("cpuid_policy.guest_cpuid_passes_the_pc_topology") {
    CpuidTopology pc = pc_vcpu(CpuVendor::amd, 7, 8);
    CHECK((guest_cpuid(1, 0, kZeros, nullptr, &pc).ebx >> 24) == 7);
    CHECK((guest_cpuid(1, 0, kZeros, nullptr).ebx >> 24) == 0);
    CHECK(guest_cpuid(0xB, 0, kZeros, nullptr, &pc).edx == 7);
}
