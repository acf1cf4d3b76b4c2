// What the boot loader told us, after validation: the platform's boot code fills it from the
// multiboot tables, the kernel reads it. Fixed-size, so it needs no allocation.
#pragma once

#include "nestor/lib/types.hpp"

namespace nestor {

enum class MemoryKind : u8 { usable, reserved, acpi_reclaimable, acpi_nvs, bad };

struct MemoryRange {
    paddr base;
    u64 length;
    MemoryKind kind;
};

struct BootModule {
    paddr start;  // first byte
    paddr end;    // one past the last byte
    char cmdline[128];
};

struct BootInfo {
    static constexpr usize kMaxMemoryRanges = 64;
    static constexpr usize kMaxModules = 16;
    static constexpr usize kMaxCmdline = 256;

    u32 protocol;  // 1 = multiboot v1, 2 = multiboot2
    MemoryRange memory[kMaxMemoryRanges];
    usize memory_count;
    BootModule modules[kMaxModules];
    usize module_count;
    char cmdline[kMaxCmdline];
    paddr info_start;  // the loader's own tables, kept out of the frame allocator
    paddr info_end;
};

}  // namespace nestor
