#include "nested_ept.hpp"

namespace nestor::nested::ept {

// An EPT violation the kernel judges is L1's own access, or L2's when L1 gives L2 no EPT (L2's
// addresses are then L1's): the kernel's rule applies. Faults on the shadow of L1's EPT never
// get here (vmx_l2.cpp handles them as L2's exits).
Decision nested_page_fault(NestedVcpu&, const virt::NestedPageFaultExit&) { return not_nested(); }

}  // namespace nestor::nested::ept
