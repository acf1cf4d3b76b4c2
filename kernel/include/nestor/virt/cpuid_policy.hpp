// What a guest sees for CPUID: the host's values, minus what a guest must not believe it has
// (SVM, VMX: Nestor offers no nested virtualization to plain guests; MONITOR/MWAIT, which #UD;
// performance counters, whose RDPMC #GPs and MSRs are refused), plus the hypervisor leaves.
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

inline constexpr u32 kCpuid1EcxMonitor = 1u << 3;
inline constexpr u32 kCpuid1EcxVmx = 1u << 5;
inline constexpr u32 kCpuid1EcxPdcm = 1u << 15;  // IA32_PERF_CAPABILITIES
inline constexpr u32 kCpuid1EcxHypervisor = 1u << 31;
inline constexpr u32 kCpuidExt1EcxSvm = 1u << 2;
inline constexpr u32 kCpuidExt1EcxPerfCtrCore = 1u << 23;
inline constexpr u32 kCpuidExt1EcxPerfCtrNb = 1u << 24;
inline constexpr u32 kCpuidExt1EcxPerfCtrLlc = 1u << 28;
inline constexpr u32 kCpuidExt1EcxMonitorx = 1u << 29;
inline constexpr u32 kCpuidLeafMonitor = 0x5;            // MONITOR/MWAIT sizes and C-states
inline constexpr u32 kCpuidLeafArchPerfmon = 0xA;        // Intel's architectural performance counters
inline constexpr u32 kCpuidLeafAmdPerfmon = 0x80000022;  // AMD's PerfMonV2 counters
// Features whose state the world switch does not carry between vCPUs (xsave_policy.hpp): hidden.
inline constexpr u32 kCpuid7EbxMpx = 1u << 14;
inline constexpr u32 kCpuid7EbxProcessorTrace = 1u << 25;
inline constexpr u32 kCpuid7EcxCetShadowStack = 1u << 7;
inline constexpr u32 kCpuid7EcxPks = 1u << 31;
inline constexpr u32 kCpuid7EdxUintr = 1u << 5;
inline constexpr u32 kCpuid7EdxArchLbr = 1u << 19;
inline constexpr u32 kCpuid7EdxCetIbt = 1u << 20;
inline constexpr u32 kCpuid7EdxAmx = (1u << 22) | (1u << 24) | (1u << 25);  // AMX-BF16, AMX-TILE, AMX-INT8
inline constexpr u32 kCpuidXsave1EaxXsaves = 1u << 3;                       // XSAVES/XRSTORS and IA32_XSS
inline constexpr u32 kCpuidXsave1EaxXfd = 1u << 4;
inline constexpr u32 kCpuidExt1EcxLwp = 1u << 15;
inline constexpr u32 kCpuidLeafProcessorTrace = 0x14;
inline constexpr u32 kCpuidLeafAmxTiles = 0x1D;
inline constexpr u32 kCpuidLeafAmxTmul = 0x1E;
inline constexpr u32 kCpuidLeafAmdLwp = 0x8000001C;

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
