// AMD_SVM=OFF: no nested SVM in the image (there is no SVM backend for it to serve).
#include "../nested_component.hpp"

namespace nestor::nested {
const VendorPart* svm_part() { return nullptr; }
}  // namespace nestor::nested
