// What a guest sees for CPUID: the host's values, minus what a guest must not believe it has
// (SVM, VMX: Nestor offers no nested virtualization to plain guests; MONITOR/MWAIT, which #UD;
// performance counters, whose RDPMC #GPs and MSRs are refused), plus the hypervisor leaves.
// A vCPU of a domain with nested virtualization also sees what the nested component emulates.
// A vCPU of a PC domain (components/pc) also sees where it sits in its domain (APIC ID, the
// vCPU count in every topology leaf), the PC's local APIC and invariant TSC, the timer rates, and
// none of the features whose MSRs or instructions the PC does not provide (docs/msrs.md).
#pragma once

#include "nestor/nested/nested_ops.hpp"
#include "nestor/platform.hpp"
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

// PC domains. The topology: one package of `vcpus` cores, one thread each, APIC ID = vCPU index.
inline constexpr u32 kCpuidPcHypervisorMax = 0x40000010;  // highest hypervisor leaf a PC vCPU is answered
inline constexpr u32 kCpuidLeafTiming = 0x40000010;       // EAX: TSC kHz, EBX: local APIC timer kHz
inline constexpr u32 kCpuidLeafCacheParameters = 0x4;     // Intel: caches and cores per package
inline constexpr u32 kCpuidLeafThermalPower = 0x6;
inline constexpr u32 kCpuidLeafTopology = 0xB;  // x2APIC topology
inline constexpr u32 kCpuidLeafTopologyV2 = 0x1F;
inline constexpr u32 kCpuidLeafAmdCacheTopology = 0x8000001D;
inline constexpr u32 kCpuidLeafAmdTopology = 0x8000001E;
inline constexpr u32 kCpuid1EcxX2apic = 1u << 21;
inline constexpr u32 kCpuid1EcxTscDeadline = 1u << 24;
inline constexpr u32 kCpuid1EdxApic = 1u << 9;
inline constexpr u32 kCpuid1EdxHtt = 1u << 28;             // leaf 1 EBX[23:16] counts logical processors
inline constexpr u32 kCpuid6EaxArat = 1u << 2;             // the APIC timer runs in every C-state
inline constexpr u32 kCpuidExt7EdxInvariantTsc = 1u << 8;  // leaf 0x80000007
inline constexpr u32 kTopologyLevelSmt = 1;                // leaf 0xB/0x1F ECX[15:8]
inline constexpr u32 kTopologyLevelCore = 2;
// What the PC's MSR file offers depends on these (msr_config_from_cpuid, nestor/pc/msr_file.hpp).
inline constexpr u32 kCpuid7EbxTscAdjust = 1u << 1;
inline constexpr u32 kCpuid7EdxSpecCtrl = 1u << 26;  // IBRS and IBPB: IA32_SPEC_CTRL[0], IA32_PRED_CMD
inline constexpr u32 kCpuid7EdxStibp = 1u << 27;
inline constexpr u32 kCpuid7EdxArchCapabilities = 1u << 29;
inline constexpr u32 kCpuid7EdxSsbd = 1u << 31;
inline constexpr u32 kCpuid7Sub2EdxPsfd = 1u << 0;  // leaf 7 subleaf 2
inline constexpr u32 kCpuid7Sub2EdxIpredCtrl = 1u << 1;
inline constexpr u32 kCpuid7Sub2EdxRrsbaCtrl = 1u << 2;
inline constexpr u32 kCpuid7Sub2EdxBhiCtrl = 1u << 4;
inline constexpr u32 kCpuidExt8EbxIrperf = 1u << 1;  // leaf 0x80000008
inline constexpr u32 kCpuidExt8EbxIbpb = 1u << 12;
inline constexpr u32 kCpuidExt8EbxIbrs = 1u << 14;
inline constexpr u32 kCpuidExt8EbxStibp = 1u << 15;
inline constexpr u32 kCpuidExt8EbxSsbd = 1u << 24;
inline constexpr u32 kCpuidExt8EbxPsfd = 1u << 28;

// True if the guest's answer for `leaf` does not depend on the host (the hypervisor range).
bool cpuid_leaf_is_synthetic(u32 leaf);

// A vCPU of a PC domain, as its CPUID describes it: one package of `vcpus` cores with one thread
// each (as QEMU's default), this vCPU's APIC ID, and the rates of the timers it reads.
struct CpuidTopology {
    CpuVendor vendor;    // which vendor's topology leaves it reads (4, or 0x8000001D/0x8000001E)
    u32 apic_id;         // its (x2)APIC ID
    u32 vcpus;           // the domain's vCPUs (0 counts as 1)
    u32 tsc_khz;         // leaf 0x40000010 EAX
    u32 apic_timer_khz;  // leaf 0x40000010 EBX
};

// The guest's CPUID(leaf, subleaf), given the host's answer for the same query (ignored for
// synthetic leaves). `pc` is the vCPU's place in its PC domain; nullptr for every other domain,
// which sees exactly what it saw before PC domains existed.
CpuidValues cpuid_policy(u32 leaf, u32 subleaf, const CpuidValues& host, const CpuidTopology* pc = nullptr);

// What the guest's CPUID(leaf, subleaf) returns: cpuid_policy(), then, only when `nested` is
// not null (the vCPU's domain was accepted with nested virtualization), the component's
// additions (SVM or VMX shown to the L1 hypervisor).
CpuidValues guest_cpuid(u32 leaf, u32 subleaf, const CpuidValues& host, const nested::NestedVcpu* nested,
                        const CpuidTopology* pc = nullptr);

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
