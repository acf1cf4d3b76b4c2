// The kernel's side of nested virtualization: the predicate combined with the backend, the
// platform capabilities it decides, refusal sentences, and setting up nested state through the
// linked component's table. No hardware access: also built into the host unit tests.
#include "nestor/virt/platform_caps.hpp"

namespace nestor::virt {
namespace {

// The table the kernel calls: the linked one, or one a boot module installed
// (NESTED_VIRT=MODULE). Set once at boot, before any domain exists.
const nested::NestedOps* installed_ops = &nested::nested_ops;
const char* not_loaded_reason = nullptr;

}  // namespace

nested::Availability nested_virt_availability(const CpuFeatures& cpu, const VirtOps* ops) {
    // The component's answer first: "built without NESTED_VIRT" says more than "no backend".
    nested::Availability component = installed_ops->availability(cpu);
    if (!component.available && not_loaded_reason) return {false, not_loaded_reason};
    if (!component.available) return component;
    if (!ops) return {false, "no usable virtualization backend on this CPU"};
    return component;
}

cap::PlatformCaps platform_caps_for(const CpuFeatures& cpu, const VirtOps* ops) {
    cap::PlatformCaps caps;
    caps.hvm_svm = ops && ops->vendor == CpuVendor::amd;
    caps.hvm_vmx = ops && ops->vendor == CpuVendor::intel;
    caps.nested_paging = ops != nullptr;  // both backends require NPT / EPT
    caps.nested_virt = nested_virt_availability(cpu, ops).available;
    return caps;
}

const char* domain_refusal_reason(cap::Error error) {
    switch (error) {
    case cap::Error::cfg_no_vcpus: return "it has no vCPU";
    case cap::Error::cfg_too_many_vcpus: return "it asks for more vCPUs than this platform has";
    case cap::Error::cfg_no_memory: return "it has no memory";
    case cap::Error::cfg_memory_unaligned: return "its memory is not a multiple of 4 KiB";
    case cap::Error::cfg_memory_too_large: return "it asks for more memory than this platform allows";
    case cap::Error::cfg_unknown_flags: return "it sets a domain flag this ABI does not define";
    case cap::Error::cfg_unknown_cpuid_policy: return "it names a CPUID policy this ABI does not define";
    case cap::Error::cfg_no_hvm: return "this CPU can run no hardware-virtualized guest";
    case cap::Error::cfg_nested_virt_unavailable:
        return "it asks for nested virtualization, which this build on this CPU cannot offer";
    case cap::Error::cfg_nested_virt_needs_hap: return "it asks for nested virtualization, which needs nested paging";
    case cap::Error::cfg_nested_virt_cpuid_conflict:
        return "it asks for nested virtualization, which the minimal CPUID policy hides";
    case cap::Error::cfg_cspace_size: return "its CSpace size is out of range";
    default: return "the capability runtime refused its configuration";
    }
}

Status<nested::Error> nested_domain_initialise(nested::NestedDomain& domain, const CpuFeatures& cpu, u64 memory_bytes) {
    domain.ops = installed_ops;
    return domain.ops->domain_initialise(domain, cpu, memory_bytes);
}

void install_nested_ops(const nested::NestedOps& ops) {
    installed_ops = &ops;
    not_loaded_reason = nullptr;
}

void set_nested_module_not_loaded(const char* reason) { not_loaded_reason = reason; }

const nested::NestedOps& installed_nested_ops() { return *installed_ops; }

Status<nested::Error> nested_vcpu_initialise(nested::NestedVcpu& vcpu, nested::NestedDomain& domain) {
    vcpu.ops = domain.ops;
    return vcpu.ops->vcpu_initialise(vcpu, domain);
}

void nested_vcpu_destroy(nested::NestedVcpu& vcpu) {
    if (!vcpu.ops) return;
    vcpu.ops->vcpu_destroy(vcpu);
    vcpu.ops = nullptr;
    vcpu.host = nullptr;
    vcpu.hardware = nullptr;
}

void nested_domain_teardown(nested::NestedDomain& domain) {
    if (!domain.ops) return;
    domain.ops->domain_teardown(domain);
    domain.ops = nullptr;
}

}  // namespace nestor::virt
