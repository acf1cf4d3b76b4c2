#include "nestor/virt/cpuid_policy.hpp"

#include "nestor/abi/version.h"
#include "nestor/virt/xsave_policy.hpp"

namespace nestor::virt {

bool cpuid_leaf_is_synthetic(u32 leaf) { return leaf >= kCpuidHypervisorBase && leaf < kCpuidHypervisorEnd; }

CpuidValues cpuid_policy(u32 leaf, u32 subleaf, const CpuidValues& host) {
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

CpuidValues guest_cpuid(u32 leaf, u32 subleaf, const CpuidValues& host, const nested::NestedVcpu* nested) {
    CpuidValues guest = cpuid_policy(leaf, subleaf, host);
    if (nested && !cpuid_leaf_is_synthetic(leaf)) nested->ops->cpuid(*nested, leaf, subleaf, guest);
    return guest;
}

}  // namespace nestor::virt
