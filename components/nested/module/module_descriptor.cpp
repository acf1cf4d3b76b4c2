// The one symbol a NESTED_VIRT=MODULE build of the component exports: what the kernel's loader
// checks (magic, interface version, layout fingerprint) before it installs `ops`.
#include "nestor/nested/nested_module.hpp"

extern "C" __attribute__((visibility("default"))) const nestor::nested::ModuleDescriptor nestor_nested_module = {
    .magic = nestor::nested::kModuleMagic,
    .interface_version = nestor::nested::kModuleInterfaceVersion,
    .layout_fingerprint = nestor::nested::module_layout_fingerprint(),
    .ops = &nestor::nested::nested_ops,
};
