// This boot's platform capabilities and nested-virtualization predicate: the pure functions of
// nested_support.cpp applied to the CPU and the backend selected at boot.
#include "nestor/log.hpp"
#include "nestor/virt/platform_caps.hpp"

namespace nestor::virt {

nested::Availability nested_virt_availability() {
    return nested_virt_availability(platform::cpu_features(), select_virt_ops());
}

bool nested_virt_supported() { return nested_virt_availability().available; }

cap::PlatformCaps platform_caps() { return platform_caps_for(platform::cpu_features(), select_virt_ops()); }

void log_domain_refusal(const char* domain, cap::Error error) {
    if (error == cap::Error::cfg_nested_virt_unavailable) {
        log::error("appliance: domain {} refused: {} ({})", domain, domain_refusal_reason(error),
                   nested_virt_availability().reason);
        return;
    }
    log::error("appliance: domain {} refused: {}", domain, domain_refusal_reason(error));
}

}  // namespace nestor::virt
