// What a guest sees for CPUID: the host's values, minus what a guest must not believe it has
// (SVM, VMX: Nestor offers no nested virtualization to plain guests), plus the hypervisor leaves.
// A vCPU of a domain with nested virtualization also sees what the nested component emulates.
#pragma once

#include "nestor/nested/nested_ops.hpp"
#include "nestor/virt/virt_ops.hpp"

namespace nestor::virt {

inline constexpr u32 kCpuidHypervisorBase = 0x40000000;
inline constexpr u32 kCpuidHypervisorMax = 0x40000001;  // highest hypervisor leaf answered
inline constexpr u32 kCpuidHypervisorEnd = 0x40000100;  // the hypervisor range [base, end)
// "NestorNestor" in EBX, ECX, EDX of leaf 0x40000000.
inline constexpr u32 kNestorSignatureEbx = 0x7473654E;  // "Nest"
inline constexpr u32 kNestorSignatureEcx = 0x654E726F;  // "orNe"
inline constexpr u32 kNestorSignatureEdx = 0x726F7473;  // "stor"

inline constexpr u32 kCpuid1EcxVmx = 1u << 5;
inline constexpr u32 kCpuid1EcxHypervisor = 1u << 31;
inline constexpr u32 kCpuidExt1EcxSvm = 1u << 2;

// True if the guest's answer for `leaf` does not depend on the host (the hypervisor range).
bool cpuid_leaf_is_synthetic(u32 leaf);

// The guest's CPUID(leaf, subleaf), given the host's answer for the same query (ignored for
// synthetic leaves).
CpuidValues cpuid_policy(u32 leaf, u32 subleaf, const CpuidValues& host);

// What the guest's CPUID(leaf, subleaf) returns: cpuid_policy(), then, only when `nested` is
// not null (the vCPU's domain was accepted with nested virtualization), the component's
// additions (SVM or VMX shown to the L1 hypervisor).
CpuidValues guest_cpuid(u32 leaf, u32 subleaf, const CpuidValues& host, const nested::NestedVcpu* nested);

}  // namespace nestor::virt
