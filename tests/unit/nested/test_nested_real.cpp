// The real component (both vendor parts): the predicate, the platform capabilities it decides,
// the sanitiser and physcaps that follow them, and the component's own hooks.
#include <catch2/catch.hpp>
#include <string>

#include "nested_fixture.hpp"
#include "nestor/abi/physcaps.h"

using namespace nested_test;

TEST_CASE("nested.real_table_is_linked") { CHECK(std::string(nested::nested_ops.name) == "nested"); }

TEST_CASE("nested.predicate_svm_needs_svm_and_npt") {
    CHECK(nested_virt_availability(amd_cpu(), &kSvmOps).available);
    nested::Availability no_npt = nested_virt_availability(amd_cpu(false), &kSvmOps);
    CHECK_FALSE(no_npt.available);
    CHECK(std::string(no_npt.reason).find("NPT") != std::string::npos);
    CpuFeatures no_svm = amd_cpu();
    no_svm.svm = false;
    CHECK(std::string(nested_virt_availability(no_svm, nullptr).reason) == "the CPU has no SVM");
}

TEST_CASE("nested.predicate_vmx_needs_ept_and_unrestricted_guest") {
    CHECK(nested_virt_availability(intel_cpu(), &kVmxOps).available);
    nested::Availability no_ept = nested_virt_availability(intel_cpu(false), &kVmxOps);
    CHECK_FALSE(no_ept.available);
    CHECK(std::string(no_ept.reason).find("EPT") != std::string::npos);
    nested::Availability no_ug = nested_virt_availability(intel_cpu(true, false), &kVmxOps);
    CHECK_FALSE(no_ug.available);
    CHECK(std::string(no_ug.reason).find("unrestricted guest") != std::string::npos);
}

TEST_CASE("nested.predicate_needs_a_backend_and_a_known_vendor") {
    nested::Availability no_backend = nested_virt_availability(amd_cpu(), nullptr);
    CHECK_FALSE(no_backend.available);
    CHECK(std::string(no_backend.reason) == "no usable virtualization backend on this CPU");
    CpuFeatures unknown{};
    CHECK_FALSE(nested_virt_availability(unknown, nullptr).available);
}

TEST_CASE("nested.platform_caps_physcaps_and_sanitiser_agree_with_the_predicate") {
    struct Case {
        CpuFeatures cpu;
        const VirtOps* ops;
    };
    const Case cases[] = {{amd_cpu(), &kSvmOps},   {amd_cpu(false), &kSvmOps},   {amd_cpu(), nullptr},
                          {intel_cpu(), &kVmxOps}, {intel_cpu(false), &kVmxOps}, {intel_cpu(true, false), &kVmxOps},
                          {CpuFeatures{}, nullptr}};
    for (const Case& c : cases) {
        bool predicate = nested_virt_availability(c.cpu, c.ops).available;
        cap::PlatformCaps caps = platform_caps_for(c.cpu, c.ops);
        CHECK(caps.nested_virt == predicate);
        CHECK(((cap::physcaps_bits(caps) & NESTOR_PHYSCAP_NESTED_VIRT) != 0) == predicate);
        cap::DomainConfig config;
        config.flags = NESTOR_DOMAIN_FLAG_NESTED_VIRT;
        auto sane = cap::sanitise_domain_config(config, caps);
        CHECK(sane.ok() == predicate);
        if (!sane && c.ops) CHECK(sane.error() == cap::Error::cfg_nested_virt_unavailable);
    }
}

TEST_CASE("nested.platform_caps_follow_the_backends_vendor_not_its_name") {
    cap::PlatformCaps svm = platform_caps_for(amd_cpu(), &kSvmOps);
    CHECK(svm.hvm_svm);
    CHECK_FALSE(svm.hvm_vmx);
    CHECK(svm.nested_paging);
    cap::PlatformCaps vmx = platform_caps_for(intel_cpu(), &kVmxOps);
    CHECK(vmx.hvm_vmx);
    CHECK_FALSE(vmx.hvm_svm);
    cap::PlatformCaps none = platform_caps_for(amd_cpu(), nullptr);
    CHECK_FALSE(none.hvm_svm);
    CHECK_FALSE(none.nested_paging);
    CHECK_FALSE(none.nested_virt);
}

TEST_CASE("nested.refusal_reasons_are_sentences") {
    CHECK(std::string(domain_refusal_reason(cap::Error::cfg_nested_virt_unavailable)) ==
          "it asks for nested virtualization, which this build on this CPU cannot offer");
    CHECK(std::string(domain_refusal_reason(cap::Error::cfg_nested_virt_cpuid_conflict)).find("minimal") !=
          std::string::npos);
    CHECK(std::string(domain_refusal_reason(cap::Error::cfg_no_vcpus)) == "it has no vCPU");
}

TEST_CASE("nested.domain_and_vcpu_life_cycle") {
    nested::NestedDomain domain;
    REQUIRE(nested_domain_initialise(domain, amd_cpu(), 16u << 20).ok());
    CHECK(domain.ops == &nested::nested_ops);
    nested::NestedVcpu vcpu;
    REQUIRE(nested_vcpu_initialise(vcpu, domain).ok());
    CHECK(vcpu.ops == &nested::nested_ops);
    CHECK_FALSE(vcpu.ops->in_guest_mode(vcpu));
    virt::VcpuState state{};
    constexpr u8 kL1Vector = 0x30;
    CHECK(vcpu.ops->route_interrupt(vcpu, state, kL1Vector).action ==
          nested::Action::not_nested);  // GIF set at power-on
    nested_vcpu_destroy(vcpu);
    CHECK(vcpu.ops == nullptr);
    nested_domain_teardown(domain);
    CHECK(domain.ops == nullptr);
    nested_vcpu_destroy(vcpu);  // twice is harmless
}

TEST_CASE("nested.domain_refused_when_the_predicate_says_no") {
    nested::NestedDomain domain;
    auto status = nested_domain_initialise(domain, amd_cpu(false), 16u << 20);
    REQUIRE_FALSE(status.ok());
    CHECK(status.error() == nested::Error::unavailable);
}

TEST_CASE("nested.vcpu_reset_returns_to_power_on_state") {
    nested::NestedDomain domain;
    REQUIRE(nested_domain_initialise(domain, amd_cpu(), 16u << 20).ok());
    nested::NestedVcpu vcpu;
    REQUIRE(nested_vcpu_initialise(vcpu, domain).ok());
    VcpuState state{};
    CHECK(vcpu.ops->msr_write(vcpu, 0xC0010117, 0x5000, state).action == nested::Action::complete);
    CHECK(vcpu.ops->msr_read(vcpu, 0xC0010117, state).value == 0x5000);
    vcpu.ops->vcpu_reset(vcpu);
    CHECK(vcpu.ops->msr_read(vcpu, 0xC0010117, state).value == 0);
}
