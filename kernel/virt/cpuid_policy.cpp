#include "nestor/virt/cpuid_policy.hpp"

#include "nestor/abi/version.h"

namespace nestor::virt {

bool cpuid_leaf_is_synthetic(u32 leaf) { return leaf >= kCpuidHypervisorBase && leaf < kCpuidHypervisorEnd; }

CpuidValues cpuid_policy(u32 leaf, u32 subleaf, const CpuidValues& host) {
    (void)subleaf;
    if (cpuid_leaf_is_synthetic(leaf)) {
        switch (leaf) {
        case kCpuidHypervisorBase:
            return {kCpuidHypervisorMax, kNestorSignatureEbx, kNestorSignatureEcx, kNestorSignatureEdx};
        case kCpuidHypervisorBase + 1: return {NESTOR_ABI_VERSION, 0, 0, 0};  // the hypercall ABI version
        default: return {0, 0, 0, 0};
        }
    }
    CpuidValues out = host;
    switch (leaf) {
    case 0x00000001: out.ecx = (out.ecx & ~kCpuid1EcxVmx) | kCpuid1EcxHypervisor; break;
    case 0x80000001: out.ecx &= ~kCpuidExt1EcxSvm; break;
    case 0x8000000A:  // SVM features: meaningless without SVM
        out = {0, 0, 0, 0};
        break;
    default: break;
    }
    return out;
}

CpuidValues guest_cpuid(u32 leaf, u32 subleaf, const CpuidValues& host, const nested::NestedVcpu* nested) {
    CpuidValues guest = cpuid_policy(leaf, subleaf, host);
    if (nested && !cpuid_leaf_is_synthetic(leaf)) nested->ops->cpuid(*nested, leaf, subleaf, guest);
    return guest;
}

}  // namespace nestor::virt
