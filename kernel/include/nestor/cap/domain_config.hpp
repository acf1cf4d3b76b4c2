// What a domain is created with, what the platform can do, and the single function that decides
// whether the two fit together (like Xen's arch_sanitise_domain_config). Every refusal has its
// own error code; a refused configuration creates nothing.
#pragma once

#include "nestor/abi/domain.h"
#include "nestor/cap/error.hpp"
#include "nestor/lib/types.hpp"

namespace nestor::cap {

// Filled in by the platform at boot. Whether nested virtualization is available is the
// platform's decision (build option, CPU features, backend support); the sanitiser only obeys it.
struct PlatformCaps {
    bool hvm_svm = false;
    bool hvm_vmx = false;
    bool nested_paging = false;
    bool nested_virt = false;
    u32 max_vcpus = NESTOR_DOMAIN_MAX_VCPUS;
    u64 max_memory_bytes = u64{1} << 40;
};

// NESTOR_PHYSCAP_* bits for NESTOR_HC_PHYSCAPS.
u64 physcaps_bits(const PlatformCaps& platform);

struct DomainConfig {
    u32 vcpus = 1;
    u64 memory_bytes = kPageSize;  // the most guest memory the domain may have mapped
    u32 flags = 0;                 // NESTOR_DOMAIN_FLAG_*
    u32 cpuid_policy = NESTOR_CPUID_POLICY_DEFAULT;
    u32 cspace_bits = 4;  // the domain's CSpace root CNode has 2^cspace_bits slots
};

inline constexpr u32 kDomainMinCSpaceBits = 1;
inline constexpr u32 kDomainMaxCSpaceBits = 12;

// Refuses with the first rule broken, in the order listed in docs/capabilities.md.
CapStatus sanitise_domain_config(const DomainConfig& config, const PlatformCaps& platform);

// Unpacks NESTOR_HC_DOMAIN_CREATE's packed argument (NESTOR_DOMAIN_CREATE_PACK).
DomainConfig unpack_domain_config(u64 packed, u64 memory_bytes);

}  // namespace nestor::cap
