// PC_PLATFORM=OFF: no PC platform in this image; a domain that asks for one is refused by name
// (toolstack.cpp), and none of the device models is linked.
#include "nestor/virt/pc_ops.hpp"

namespace nestor::virt {

const PcOps* pc_platform() { return nullptr; }

}  // namespace nestor::virt
