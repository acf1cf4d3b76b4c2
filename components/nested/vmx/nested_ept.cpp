#include "nested_ept.hpp"

namespace nestor::nested::ept {

// Outside guest mode an EPT violation is the L1's own access: the kernel's rule applies. In
// guest mode it would need the L1's EPT walked, which comes with VMLAUNCH (issue 7).
Decision nested_page_fault(NestedVcpu& vcpu, const virt::NestedPageFaultExit&) {
    if (!in_guest_mode(vcpu)) return not_nested();
    ASSERT_UNREACHABLE();  // no L2 runs before VMLAUNCH is implemented
}

}  // namespace nestor::nested::ept
