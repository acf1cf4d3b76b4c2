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
