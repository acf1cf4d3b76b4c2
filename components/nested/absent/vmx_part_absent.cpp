// INTEL_VMX=OFF: no nested VMX and no nested EPT in the image (no VMX backend for them to serve).
#include "../nested_component.hpp"

namespace nestor::nested {
const VendorPart* vmx_part() { return nullptr; }
}  // namespace nestor::nested
