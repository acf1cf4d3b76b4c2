// The domain-configuration sanitiser: the one place that decides whether a configuration can be
// built on this platform.
#include "nestor/cap/domain_config.hpp"

#include "nestor/abi/physcaps.h"
#include "nestor/lib/util.hpp"

namespace nestor::cap {

u64 physcaps_bits(const PlatformCaps& platform) {
    u64 bits = 0;
    if (platform.hvm_svm) bits |= NESTOR_PHYSCAP_HVM_SVM;
    if (platform.hvm_vmx) bits |= NESTOR_PHYSCAP_HVM_VMX;
    if (platform.nested_paging) bits |= NESTOR_PHYSCAP_NESTED_PAGING;
    // Advertised only when the sanitiser would accept NESTED_VIRT.
    bool any_hvm = platform.hvm_svm || platform.hvm_vmx;
    if (platform.nested_virt && platform.nested_paging && any_hvm) bits |= NESTOR_PHYSCAP_NESTED_VIRT;
    return bits;
}

namespace {

CapStatus sanitise_shape(const DomainConfig& config, const PlatformCaps& platform) {
    if (config.vcpus == 0) return fail(Error::cfg_no_vcpus);
    if (config.vcpus > min<u32>(platform.max_vcpus, NESTOR_DOMAIN_MAX_VCPUS)) return fail(Error::cfg_too_many_vcpus);
    if (config.memory_bytes == 0) return fail(Error::cfg_no_memory);
    if (!is_aligned(config.memory_bytes, kPageSize)) return fail(Error::cfg_memory_unaligned);
    if (config.memory_bytes > platform.max_memory_bytes) return fail(Error::cfg_memory_too_large);
    if ((config.flags & ~NESTOR_DOMAIN_FLAGS_VALID) != 0) return fail(Error::cfg_unknown_flags);
    if (config.cpuid_policy >= NESTOR_CPUID_POLICY_COUNT) return fail(Error::cfg_unknown_cpuid_policy);
    if (config.cspace_bits < kDomainMinCSpaceBits || config.cspace_bits > kDomainMaxCSpaceBits) {
        return fail(Error::cfg_cspace_size);
    }
    return {};
}

CapStatus sanitise_platform_fit(const DomainConfig& config, const PlatformCaps& platform) {
    if (!platform.hvm_svm && !platform.hvm_vmx) return fail(Error::cfg_no_hvm);
    if ((config.flags & NESTOR_DOMAIN_FLAG_NESTED_VIRT) != 0) {
        if (!platform.nested_virt) return fail(Error::cfg_nested_virt_unavailable);
        // The L1 hypervisor's own guests need a second translation stage we can shadow cheaply.
        if (!platform.nested_paging) return fail(Error::cfg_nested_virt_needs_hap);
        // The minimal policy hides SVM/VMX, which a nested hypervisor needs to see.
        if (config.cpuid_policy == NESTOR_CPUID_POLICY_MINIMAL) return fail(Error::cfg_nested_virt_cpuid_conflict);
    }
    return {};
}

}  // namespace

CapStatus sanitise_domain_config(const DomainConfig& config, const PlatformCaps& platform) {
    CapStatus shape = sanitise_shape(config, platform);
    if (!shape) return shape;
    return sanitise_platform_fit(config, platform);
}

DomainConfig unpack_domain_config(u64 packed, u64 memory_bytes) {
    DomainConfig config;
    config.vcpus = static_cast<u32>(packed & 0xffff);
    config.cspace_bits = static_cast<u32>((packed >> 16) & 0xff);
    config.cpuid_policy = static_cast<u32>((packed >> 24) & 0xff);
    config.flags = static_cast<u32>(packed >> 32);
    config.memory_bytes = memory_bytes;
    return config;
}

}  // namespace nestor::cap
