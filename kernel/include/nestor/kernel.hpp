// The entry from the platform into the vendor-neutral kernel, once the machine is set up.
#pragma once

#include "nestor/boot_info.hpp"

namespace nestor {

struct MemorySummary {
    u64 usable_bytes;       // all RAM the firmware calls usable
    u64 free_frames;        // frames the allocator can still hand out
    u64 reserved_bytes;     // kernel image, modules, loader tables, firmware
    u64 page_table_frames;  // frames used by the kernel's page tables
};

[[noreturn]] void kernel_main(const BootInfo& boot, const MemorySummary& memory);

}  // namespace nestor
