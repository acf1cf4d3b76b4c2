#include <catch2/catch.hpp>
#include <cstring>
#include <string>

#include "nestor/virt/cpuid_policy.hpp"

using namespace nestor::virt;

namespace {
constexpr CpuidValues kAllOnes{0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF};
constexpr CpuidValues kZeros{0, 0, 0, 0};
}  // namespace

TEST_CASE("cpuid_policy.hides_vmx") {
    CpuidValues v = cpuid_policy(1, 0, kAllOnes);
    CHECK((v.ecx & (1u << 5)) == 0);
    CHECK(v.ecx == (0xFFFFFFFFu & ~(1u << 5)));
    CHECK(v.eax == 0xFFFFFFFF);
    CHECK(v.edx == 0xFFFFFFFF);
}

TEST_CASE("cpuid_policy.hides_svm") {
    CpuidValues v = cpuid_policy(0x80000001, 0, kAllOnes);
    CHECK((v.ecx & (1u << 2)) == 0);
    CHECK(v.ecx == (0xFFFFFFFFu & ~(1u << 2)));
    CHECK(v.edx == 0xFFFFFFFF);
    CpuidValues features = cpuid_policy(0x8000000A, 0, kAllOnes);
    CHECK(features.eax == 0);
    CHECK(features.ebx == 0);
    CHECK(features.edx == 0);
}

TEST_CASE("cpuid_policy.sets_hypervisor_bit") {
    CHECK((cpuid_policy(1, 0, kZeros).ecx & (1u << 31)) != 0);
}

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
    CHECK(seven.ebx == 0xFFFFFFFF);
}
