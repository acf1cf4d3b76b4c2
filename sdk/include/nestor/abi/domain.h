/* Domain configuration: flags, CPUID policies and the register packing of NESTOR_HC_DOMAIN_CREATE.
 * The kernel validates a configuration in one function (the sanitiser); a refused configuration
 * creates nothing. */
#ifndef NESTOR_ABI_DOMAIN_H
#define NESTOR_ABI_DOMAIN_H

#include <stdint.h>

/* Domain flags. */
#define NESTOR_DOMAIN_FLAG_NESTED_VIRT (1u << 0) /* expose SVM/VMX to the guest */
#define NESTOR_DOMAIN_FLAGS_VALID (NESTOR_DOMAIN_FLAG_NESTED_VIRT)

/* CPUID policies. */
#define NESTOR_CPUID_POLICY_DEFAULT 0u /* the safe, migratable feature set */
#define NESTOR_CPUID_POLICY_MINIMAL 1u /* bare minimum; hides virtualization extensions */
#define NESTOR_CPUID_POLICY_HOST 2u    /* everything the host can virtualize */
#define NESTOR_CPUID_POLICY_COUNT 3u

#define NESTOR_DOMAIN_MAX_VCPUS 64u
#define NESTOR_DOMAIN_MAX_MAPPINGS 32u

/* NESTOR_HC_DOMAIN_CREATE arg 3: vCPUs in bits 0..15, CSpace root size bits in 16..23, CPUID
 * policy in 24..31, flags in 32..63. Arg 4 is the memory limit in bytes (page multiple). */
#define NESTOR_DOMAIN_CREATE_PACK(vcpus, cspace_bits, cpuid_policy, flags)       \
    (((uint64_t)(vcpus) & 0xffffu) | (((uint64_t)(cspace_bits) & 0xffu) << 16) | \
     (((uint64_t)(cpuid_policy) & 0xffu) << 24) | ((uint64_t)(uint32_t)(flags) << 32))

#endif
