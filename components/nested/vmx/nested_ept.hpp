// Nested EPT: the L1's EPT for its L2, walked when an L2 access faults. Part of nested VMX, so
// built only with INTEL_VMX=ON (the review's nested_ept point: it is unreachable without VMX).
#pragma once

#include "../nested_component.hpp"

namespace nestor::nested::ept {

Decision nested_page_fault(NestedVcpu& vcpu, const virt::NestedPageFaultExit& fault);

}  // namespace nestor::nested::ept
