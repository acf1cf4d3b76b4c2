// The null component (NESTED_VIRT=OFF): only the predicate is reachable, and it says no.
// The other hooks are ASSERT_UNREACHABLE (they would abort this test), so the tests show that
// nothing a guest without nested virtualization does reaches them.
#include <catch2/catch.hpp>
#include <string>

#include "nested_fixture.hpp"
#include "nestor/abi/physcaps.h"

using namespace nested_test;

TEST_CASE("nested.null_table_is_linked") { CHECK(std::string(nested::nested_ops.name) == "null"); }

TEST_CASE("nested.null_predicate_says_no_for_every_cpu") {
    for (const CpuFeatures& cpu : {amd_cpu(), intel_cpu(), CpuFeatures{}}) {
        nested::Availability a = nested_virt_availability(cpu, &kSvmOps);
        CHECK_FALSE(a.available);
        CHECK(std::string(a.reason) == "built without NESTED_VIRT");
        CHECK(std::string(nested_virt_availability(cpu, nullptr).reason) == "built without NESTED_VIRT");
    }
}

TEST_CASE("nested.null_platform_caps_refuse_nested_domains") {
    cap::PlatformCaps caps = platform_caps_for(amd_cpu(), &kSvmOps);
    CHECK(caps.hvm_svm);
    CHECK_FALSE(caps.nested_virt);
    CHECK((cap::physcaps_bits(caps) & NESTOR_PHYSCAP_NESTED_VIRT) == 0);
    CHECK((cap::physcaps_bits(caps) & NESTOR_PHYSCAP_HVM_SVM) != 0);
    cap::DomainConfig config;
    config.flags = NESTOR_DOMAIN_FLAG_NESTED_VIRT;
    auto sane = cap::sanitise_domain_config(config, caps);
    REQUIRE_FALSE(sane.ok());
    CHECK(sane.error() == cap::Error::cfg_nested_virt_unavailable);
    config.flags = 0;
    CHECK(cap::sanitise_domain_config(config, caps).ok());
}

TEST_CASE("nested.null_guest_without_nested_never_reaches_the_table") {
    Guest g;  // no nested vCPU, as every guest of a NESTED_VIRT=OFF build
    CHECK((g.cpuid(0x80000001).ecx & kCpuidExt1EcxSvm) == 0);
    CHECK(g.cpuid(0x8000000A).edx == 0);
    CHECK((g.cpuid(1).ecx & kCpuid1EcxVmx) == 0);
    for (u64 code : {0x80, 0x82, 0x83, 0x84, 0x85, 0x7A, 27, 20}) {
        ExitOutcome o = g.run(instruction(code));
        CHECK(o.inject);
        CHECK(o.vector == kVectorUd);
    }
    for (u32 index : kVirtualizationMsrs) {
        ExitOutcome o = g.run(msr_write(index, 0));
        CHECK(o.inject);
        CHECK(o.vector == kVectorGp);
    }
    CHECK_FALSE(g.run(msr_read(kMsrFeatureControl)).inject);
    CHECK(g.state.rax() == 1);
    CHECK(g.run(msr_write(kMsrEfer, kEferSvme)).vector == kVectorGp);
}
