// What this build on this CPU can offer domains, decided in one place. The nested-virtualization
// predicate (like Xen's hvm_nested_virt_supported()) feeds PlatformCaps::nested_virt, which the
// sanitiser obeys and physcaps_bits() reports, and only a domain the sanitiser accepted with
// NESTOR_DOMAIN_FLAG_NESTED_VIRT gets nested state, hence SVM/VMX in CPUID: the three cannot
// disagree. The kernel reaches the nested component only through its table (nested_ops.hpp).
#pragma once

#include "nestor/boot_info.hpp"
#include "nestor/cap/domain_config.hpp"
#include "nestor/nested/nested_ops.hpp"
#include "nestor/virt/virt_ops.hpp"

namespace nestor::virt {

// The predicate for a given CPU and backend (`ops` = the selected backend, nullptr if none).
nested::Availability nested_virt_availability(const CpuFeatures& cpu, const VirtOps* ops);
// PlatformCaps from the backend and the predicate.
cap::PlatformCaps platform_caps_for(const CpuFeatures& cpu, const VirtOps* ops);

// The same for this boot (select_virt_ops() and the CPU's features). Kernel only.
nested::Availability nested_virt_availability();
bool nested_virt_supported();
cap::PlatformCaps platform_caps();

// Why the sanitiser refused a domain configuration, as the end of a sentence for the boot log
// ("domain NAME refused: <this>"). Every sanitiser error has its own sentence.
const char* domain_refusal_reason(cap::Error error);
// Logs "appliance: domain NAME refused: <reason>" and, for the nested-virtualization refusal,
// the predicate's reason for this boot. Kernel only.
void log_domain_refusal(const char* domain, cap::Error error);

// Nested state of a domain the sanitiser accepted with NESTOR_DOMAIN_FLAG_NESTED_VIRT and of
// each of its vCPUs; set up with the linked component's table. A domain without the flag never
// calls these: its vCPUs' NestedVcpu stays empty (ops == nullptr).
Status<nested::Error> nested_domain_initialise(nested::NestedDomain& domain, const CpuFeatures& cpu, u64 memory_bytes);

// NESTED_VIRT=MODULE, at boot before any domain exists: the table a loaded module brings replaces
// the linked (null) one; or, when none was loaded, `reason` (static text) becomes the predicate's
// reason, so a refused nested domain says why the module is missing.
void install_nested_ops(const nested::NestedOps& ops);
void set_nested_module_not_loaded(const char* reason);
const nested::NestedOps& installed_nested_ops();

// NESTED_VIRT=MODULE: loads the nested component from its boot module as the manifest says
// (kernel/virt/nested_module.cpp) and logs "nested: module loaded (N bytes)" or why not. The other
// builds link a version that does nothing (nested_module_absent.cpp).
void load_nested_module(const BootInfo& boot);
Status<nested::Error> nested_vcpu_initialise(nested::NestedVcpu& vcpu, nested::NestedDomain& domain);
void nested_vcpu_destroy(nested::NestedVcpu& vcpu);
void nested_domain_teardown(nested::NestedDomain& domain);

}  // namespace nestor::virt
