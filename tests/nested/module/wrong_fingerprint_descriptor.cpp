// A nested module whose table layout differs from the kernel's (same interface version, another
// layout fingerprint): the kernel must refuse it by name before it reads the table.
#include "nestor/nested/nested_module.hpp"

extern "C" __attribute__((visibility("default"))) const nestor::nested::ModuleDescriptor nestor_nested_module = {
    .magic = nestor::nested::kModuleMagic,
    .interface_version = nestor::nested::kModuleInterfaceVersion,
    .layout_fingerprint = nestor::nested::module_layout_fingerprint() ^ 1,
    .ops = &nestor::nested::nested_ops,
};
