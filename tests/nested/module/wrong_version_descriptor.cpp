// A nested module built for another interface version: the kernel must refuse it by name.
#include "nestor/nested/nested_module.hpp"

extern "C" __attribute__((visibility("default"))) const nestor::nested::ModuleDescriptor nestor_nested_module = {
    .magic = nestor::nested::kModuleMagic,
    .interface_version = nestor::nested::kModuleInterfaceVersion + 1,
    .layout_fingerprint = nestor::nested::module_layout_fingerprint(),
    .ops = &nestor::nested::nested_ops,
};
