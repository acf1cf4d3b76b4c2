// NESTED_VIRT=ON and OFF: the image carries its component (or the null stub) already; there is
// no module to load, whatever the manifest says.
#include "nestor/virt/platform_caps.hpp"

namespace nestor::virt {

void load_nested_module(const BootInfo&) {}

}  // namespace nestor::virt
