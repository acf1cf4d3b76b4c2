// The boot modules by name (boot_modules.hpp).
#include "nestor/virt/boot_modules.hpp"

#include "nestor/platform.hpp"

namespace nestor::virt {

bool module_named(const BootModule& module, const char* name) {
    const char* cmdline = module.cmdline;
    usize end = 0;
    while (cmdline[end]) ++end;
    while (end > 0 && cmdline[end - 1] == ' ') --end;
    usize start = end;
    while (start > 0 && cmdline[start - 1] != ' ') --start;
    usize length = 0;
    while (name[length]) ++length;
    return length == end - start && length > 0 && __builtin_memcmp(cmdline + start, name, length) == 0;
}

const BootModule* find_module(const BootInfo& boot, const char* name) {
    for (usize i = 0; i < boot.module_count; ++i)
        if (module_named(boot.modules[i], name)) return &boot.modules[i];
    return nullptr;
}

const u8* module_bytes(const BootModule& module) {
    return static_cast<const u8*>(platform::physical_to_virtual(module.start));
}

}  // namespace nestor::virt
