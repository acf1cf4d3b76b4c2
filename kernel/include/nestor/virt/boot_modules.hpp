// The boot modules by name: a module's name is the last word of its command line
// ("/boot/hello.elf hello" and "hello" both name "hello").
#pragma once

#include "nestor/boot_info.hpp"

namespace nestor::virt {

bool module_named(const BootModule& module, const char* name);
// The first module called `name`, or nullptr.
const BootModule* find_module(const BootInfo& boot, const char* name);
const u8* module_bytes(const BootModule& module);
inline usize module_size(const BootModule& module) { return static_cast<usize>(module.end - module.start); }

}  // namespace nestor::virt
