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

// A vCPU's CPUID answers, remembered (a per-vCPU CPUID table, as KVM and Xen keep one per
// domain). What a vCPU sees for CPUID is fixed for its life: guest_cpuid() depends only on the
// leaf, the subleaf, the host's answer (constant on this CPU) and the nested component's
// adjustment, which shows the extension it emulates. So each (leaf, subleaf) goes through the
// policy (and the component's hook) once, when the guest first asks, and later exits answer from
// here. Direct-mapped and keyed by the exact (leaf, subleaf): a collision only costs working the
// answer out again, never a wrong answer. Nothing is allocated; an empty memo is all zeros.
class CpuidMemo {
public:
    static constexpr u32 kEntries = 32;

    // The remembered answer to CPUID(leaf, subleaf), or nullptr.
    const CpuidValues* find(u32 leaf, u32 subleaf) const {
        u32 i = index(leaf, subleaf);
        const Entry& e = entries_[i];
        if (!(valid_ & (1u << i)) || e.leaf != leaf || e.subleaf != subleaf) return nullptr;
        return &e.values;
    }
    // Remembers `values` for (leaf, subleaf), replacing whatever shared its entry.
    void remember(u32 leaf, u32 subleaf, const CpuidValues& values) {
        u32 i = index(leaf, subleaf);
        entries_[i] = Entry{leaf, subleaf, values};
        valid_ |= 1u << i;
    }
    void clear() { valid_ = 0; }

    // The entry (leaf, subleaf) lives in: a multiplicative hash, so the basic (0x0...), hypervisor
    // (0x4000...) and extended (0x8000...) leaves and their subleaves spread over the table.
    static u32 index(u32 leaf, u32 subleaf) {
        return ((leaf ^ (subleaf * 0x85EBCA6Bu)) * 0x9E3779B1u) >> (32 - kEntryBits);
    }

private:
    static constexpr u32 kEntryBits = 5;
    static_assert(kEntries == 1u << kEntryBits && kEntries <= 32);
    struct Entry {
        u32 leaf;
        u32 subleaf;
        CpuidValues values;
    };
    u32 valid_ = 0;  // bit i: entries_[i] holds an answer
    Entry entries_[kEntries] = {};
};

}  // namespace nestor::virt
