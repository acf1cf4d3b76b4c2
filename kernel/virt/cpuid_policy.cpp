#include "nestor/virt/cpuid_policy.hpp"

#include "nestor/abi/version.h"
#include "nestor/virt/xsave_policy.hpp"

namespace nestor::virt {

bool cpuid_leaf_is_synthetic(u32 leaf) { return leaf >= kCpuidHypervisorBase && leaf < kCpuidHypervisorEnd; }

namespace {

CpuidValues hypervisor_leaf(u32 leaf, const CpuidTopology* pc) {
    switch (leaf) {
    case kCpuidHypervisorBase:
        return {pc ? kCpuidPcHypervisorMax : kCpuidHypervisorMax, kNestorSignatureEbx, kNestorSignatureEcx,
                kNestorSignatureEdx};
    case kCpuidHypervisorBase + 1: return {NESTOR_ABI_VERSION, 0, 0, 0};  // the hypercall ABI version
    case kCpuidLeafTiming:
        if (pc) return {pc->tsc_khz, pc->apic_timer_khz, 0, 0};
        return {0, 0, 0, 0};
    default: return {0, 0, 0, 0};
    }
}

// What every domain sees of a host leaf.
CpuidValues host_leaf(u32 leaf, u32 subleaf, const CpuidValues& host) {
    CpuidValues out = host;
    switch (leaf) {
    case 0x00000001:
        out.ecx = (out.ecx & ~(kCpuid1EcxVmx | kCpuid1EcxMonitor | kCpuid1EcxPdcm)) | kCpuid1EcxHypervisor;
        break;
    case 0x80000001:
        out.ecx &= ~(kCpuidExt1EcxSvm | kCpuidExt1EcxMonitorx | kCpuidExt1EcxPerfCtrCore | kCpuidExt1EcxPerfCtrNb |
                     kCpuidExt1EcxPerfCtrLlc | kCpuidExt1EcxLwp);
        break;
    case 0x00000007:
        if (subleaf != 0) break;
        out.ebx &= ~(kCpuid7EbxMpx | kCpuid7EbxProcessorTrace);
        out.ecx &= ~(kCpuid7EcxCetShadowStack | kCpuid7EcxPks);
        out.edx &= ~(kCpuid7EdxUintr | kCpuid7EdxArchLbr | kCpuid7EdxCetIbt | kCpuid7EdxAmx);
        break;
    case kCpuidLeafXsave:
        // Only the components every world switch carries (xsave_policy.hpp); no supervisor state.
        if (subleaf == 0) {
            out.eax &= static_cast<u32>(kXcr0Switched);
            out.edx &= static_cast<u32>(kXcr0Switched >> 32);
        } else if (subleaf == 1) {
            out.eax &= ~(kCpuidXsave1EaxXsaves | kCpuidXsave1EaxXfd);
            out.ecx = out.edx = 0;
        } else if (subleaf >= 64 || !(kXcr0Switched & (u64{1} << subleaf))) {
            out = {0, 0, 0, 0};
        }
        break;
    case kCpuidLeafProcessorTrace:
    case kCpuidLeafAmxTiles:
    case kCpuidLeafAmxTmul:
    case kCpuidLeafAmdLwp:
    case 0x8000000A:  // SVM features: meaningless without SVM
    case kCpuidLeafMonitor:
    case kCpuidLeafArchPerfmon:
    case kCpuidLeafAmdPerfmon: out = {0, 0, 0, 0}; break;
    default: break;
    }
    return out;
}

// PC domains: the features whose MSRs, instructions or state the PC does not provide, hidden as
// KVM hides them. Leaf 1: DTES64, DS-CPL, SMX, EST, TM2, CNXT-ID, xTPR, DCA; PSN, DS, ACPI
// (thermal MSRs), TM, PBE. Leaf 7: SGX, PQM/PQE (resource monitoring and allocation), WAITPKG
// (UMWAIT/TPAUSE #UD), TME (its MSR), bus-lock detection (DEBUGCTL bit), SGX launch control,
// TSX_FORCE_ABORT and L1D_FLUSH (their MSRs). 0x80000001: the extended APIC space, IBS, SKINIT,
// the watchdog timer, the node ID MSR, the performance TSC. 0x80000008: IRPERF (an HWCR bit).
// 0x80000021: automatic IBRS (an EFER bit).
// And the speculation controls: the MSR file would only store IA32_SPEC_CTRL, never load it into
// the CPU, so a guest shown IBRS, STIBP, SSBD, PSFD, IPRED/RRSBA/DDP/BHI control or IBPB would
// believe itself protected and not be. Without them IA32_SPEC_CTRL and IA32_PRED_CMD do not
// exist (msr_config_from_cpuid) and the guest picks mitigations that need no MSR. Leaf 7.0 EDX:
// IBRS/IBPB, STIBP, SSBD; 7.2 EDX: PSFD, IPRED_CTRL, RRSBA_CTRL, DDPD_U, BHI_CTRL; 0x80000008
// EBX: IBPB, IBRS, STIBP, their "always on", "preferred" and "same mode" reports, SSBD,
// VIRT_SSBD, PSFD, IBPB_RET; 0x80000021 EAX: SBPB and IBPB_BRTYPE (PRED_CMD's).
struct HiddenFeatures {
    u32 leaf;
    u32 subleaf;  // leaf 7's; the other leaves have none
    CpuidValues bits;
};
template <typename... Bit> constexpr u32 bits(Bit... bit) { return ((1u << bit) | ...); }
constexpr HiddenFeatures kPcHidden[] = {
    {0x00000001, 0, {0, 0, bits(2, 4, 6, 7, 8, 10, 14, 18), bits(18, 21, 22, 29, 31)}},
    {0x00000007, 0, {0, bits(2, 12, 15), bits(5, 13, 24, 30), bits(13, 26, 27, 28, 31)}},
    {0x00000007, 2, {0, 0, 0, bits(0, 1, 2, 3, 4)}},
    {0x80000001, 0, {0, 0, bits(3, 10, 12, 13, 19, 27), 0}},
    {0x80000008, 0, {0, kCpuidExt8EbxIrperf | bits(12, 14, 15, 16, 17, 18, 19, 24, 25, 28, 30), 0, 0}},
    {0x80000021, 0, {bits(8, 27, 28), 0, 0, 0}},
};

// Leaves about facilities the PC does not have: resource monitoring and allocation (0xF, 0x10,
// 0x80000020), SGX (0x12), IBS (0x8000001B), memory encryption (0x8000001F), and AMD's extended
// topology (0x80000026), which would describe the host's.
bool pc_leaf_is_absent(u32 leaf) {
    return leaf == 0xF || leaf == 0x10 || leaf == 0x12 || leaf == 0x8000001B || leaf == 0x8000001F ||
           leaf == 0x80000020 || leaf == 0x80000026;
}

void hide_pc_features(u32 leaf, u32 subleaf, CpuidValues& out) {
    for (const HiddenFeatures& hidden : kPcHidden) {
        if (hidden.leaf != leaf || (leaf == 7 && hidden.subleaf != subleaf)) continue;
        out.eax &= ~hidden.bits.eax;
        out.ebx &= ~hidden.bits.ebx;
        out.ecx &= ~hidden.bits.ecx;
        out.edx &= ~hidden.bits.edx;
    }
}

u32 vcpu_count(const CpuidTopology& pc) { return pc.vcpus ? pc.vcpus : 1; }

// Bits an APIC ID needs for `count` IDs: ceil(log2(count)).
u32 id_bits(u32 count) {
    u32 bits = 0;
    while (bits < 32 && (u64{1} << bits) < count) ++bits;
    return bits;
}

// The APIC IDs the package spans: the vCPU count rounded up to a power of two.
u32 addressable_ids(const CpuidTopology& pc) { return 1u << id_bits(vcpu_count(pc)); }

// Leaf 1: the APIC ID and the logical processors of the package, the local APIC (xAPIC and
// x2APIC, with the TSC-deadline timer).
void pc_leaf_1(CpuidValues& out, const CpuidTopology& pc) {
    u32 ids = addressable_ids(pc) > 0xFF ? 0xFF : addressable_ids(pc);
    out.ebx = (out.ebx & 0xFFFF) | (ids << 16) | ((pc.apic_id & 0xFF) << 24);
    out.ecx |= kCpuid1EcxX2apic | kCpuid1EcxTscDeadline | kCpuid1EcxHypervisor;
    out.edx |= kCpuid1EdxApic;
    out.edx = vcpu_count(pc) > 1 ? out.edx | kCpuid1EdxHtt : out.edx & ~kCpuid1EdxHtt;
}

// Leaf 0xB/0x1F subleaf n: level 0 is the thread (one per core), level 1 the core (the package's
// vCPUs), the rest invalid. EDX is the x2APIC ID at every level.
CpuidValues pc_x2apic_topology(u32 subleaf, const CpuidTopology& pc) {
    if (subleaf == 0) return {0, 1, kTopologyLevelSmt << 8, pc.apic_id};
    if (subleaf == 1) return {id_bits(vcpu_count(pc)), vcpu_count(pc), 1 | (kTopologyLevelCore << 8), pc.apic_id};
    return {0, 0, subleaf & 0xFF, pc.apic_id};
}

// A cache's EAX in leaf 4 or 0x8000001D: bits 25:14 count the logical processors sharing it less
// one: L1 and L2 belong to one core (one thread), L3 to the package. 0 in bits 4:0: no cache.
u32 cache_sharing(u32 eax, const CpuidTopology& pc) {
    if ((eax & 0x1F) == 0) return eax;
    u32 level = (eax >> 5) & 7;
    u32 sharing = level >= 3 ? addressable_ids(pc) - 1 : 0;
    return (eax & ~(0xFFFu << 14)) | ((sharing & 0xFFF) << 14);
}

// Leaf 4 (Intel): EAX bits 31:26 count the package's core IDs less one.
void pc_leaf_4(CpuidValues& out, const CpuidTopology& pc) {
    if ((out.eax & 0x1F) == 0) return;
    u32 cores = addressable_ids(pc) > 64 ? 64 : addressable_ids(pc);
    out.eax = (cache_sharing(out.eax, pc) & 0x03FFFFFF) | ((cores - 1) << 26);
}

// Leaf 0x80000008 ECX (AMD): NC, the package's threads less one, and the APIC ID bits they take.
void pc_leaf_80000008(CpuidValues& out, const CpuidTopology& pc) {
    u32 threads = vcpu_count(pc) > 0x100 ? 0x100 : vcpu_count(pc);
    u32 bits = id_bits(vcpu_count(pc)) > 0xF ? 0xF : id_bits(vcpu_count(pc));
    out.ecx = (out.ecx & ~0xF0FFu) | (threads - 1) | (bits << 12);
}

// Leaf 0x8000001E (AMD): the extended APIC ID, the core ID (one thread per core), one node.
CpuidValues pc_leaf_8000001e(const CpuidTopology& pc) { return {pc.apic_id, pc.apic_id & 0xFF, 0, 0}; }

bool amd(const CpuidTopology& pc) { return pc.vendor == CpuVendor::amd; }
bool intel(const CpuidTopology& pc) { return pc.vendor == CpuVendor::intel; }

// What a vCPU of a PC domain sees of a host leaf, after host_leaf().
void pc_host_leaf(u32 leaf, u32 subleaf, CpuidValues& out, const CpuidTopology& pc) {
    if (pc_leaf_is_absent(leaf)) {
        out = {0, 0, 0, 0};
        return;
    }
    hide_pc_features(leaf, subleaf, out);
    switch (leaf) {
    case 0x00000001: pc_leaf_1(out, pc); break;
    case kCpuidLeafCacheParameters:
        if (intel(pc)) pc_leaf_4(out, pc);
        break;
    case kCpuidLeafThermalPower: out = {kCpuid6EaxArat, 0, 0, 0}; break;  // no thermal or power MSRs
    case kCpuidLeafTopology:
    case kCpuidLeafTopologyV2: out = pc_x2apic_topology(subleaf, pc); break;
    case 0x80000007: out = {0, 0, 0, kCpuidExt7EdxInvariantTsc}; break;  // no power or RAS features
    case 0x00000007:
        // TSC_ADJUST is emulated on every host (the PC's MSR file). With the invariant TSC it
        // tells Linux the TSC needs no clocksource watchdog: the watchdog compares it with a
        // jiffies count that loses ticks whenever the host is late, and then condemns the TSC.
        if (subleaf == 0) out.ebx |= kCpuid7EbxTscAdjust;
        break;
    case 0x80000008:
        if (amd(pc)) pc_leaf_80000008(out, pc);
        break;
    case kCpuidLeafAmdCacheTopology:
        if (amd(pc)) out.eax = cache_sharing(out.eax, pc);
        break;
    case kCpuidLeafAmdTopology:
        if (amd(pc)) out = pc_leaf_8000001e(pc);
        break;
    default: break;
    }
}

}  // namespace

CpuidValues cpuid_policy(u32 leaf, u32 subleaf, const CpuidValues& host, const CpuidTopology* pc) {
    if (cpuid_leaf_is_synthetic(leaf)) return hypervisor_leaf(leaf, pc);
    CpuidValues out = host_leaf(leaf, subleaf, host);
    if (pc) pc_host_leaf(leaf, subleaf, out, *pc);
    return out;
}

CpuidValues guest_cpuid(u32 leaf, u32 subleaf, const CpuidValues& host, const nested::NestedVcpu* nested,
                        const CpuidTopology* pc) {
    CpuidValues guest = cpuid_policy(leaf, subleaf, host, pc);
    if (nested && !cpuid_leaf_is_synthetic(leaf)) nested->ops->cpuid(*nested, leaf, subleaf, guest);
    return guest;
}

}  // namespace nestor::virt
