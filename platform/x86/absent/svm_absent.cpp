// Linked instead of the SVM backend when the image is built without it: the kernel asks for the
// backend and learns, at run time, that this image does not carry one.
#include "nestor/virt/virt_ops.hpp"

namespace nestor::virt {
const VirtOps* svm_backend() { return nullptr; }
}  // namespace nestor::virt
