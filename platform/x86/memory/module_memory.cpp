// Memory for a component loaded at boot (platform.hpp). The reservation is one 2 MiB-aligned
// run of 2 MiB: the direct map covers it with exactly one large page, which seal_module_memory
// unmaps whole (the page-table builder never splits a large page), so the frames have no alias
// left but the module area's pages, each mapped read-execute, read-only or read-write. Unused
// frames of the run stay reserved: their direct-map alias is gone too.
#include "nestor/log.hpp"
#include "nestor/platform.hpp"
#include "nestor/x86/cpu.hpp"
#include "nestor/x86/kernel_memory.hpp"
#include "nestor/x86/page_table_builder.hpp"
#include "platform/x86/boot/layout.h"

namespace nestor::platform {
namespace {

// PML4 slot 508, away from the direct map (256), the local APIC window (384) and the kernel (511).
constexpr vaddr kModuleArea = 0xFFFF'FE00'0000'0000;
constexpr u64 kCr3AddressMask = 0x000F'FFFF'FFFF'F000;

x86::PageTableBuilder kernel_tables(x86::AllocatorTableMemory& memory) {
    x86::PageTableBuilder tables(memory);
    tables.use_root(x86::read_cr3() & kCr3AddressMask);
    return tables;
}

void flush_page(vaddr address) { asm volatile("invlpg (%0)" ::"r"(address) : "memory"); }

}  // namespace

bool reserve_module_memory(u64 bytes, paddr& physical, void*& writable) {
    if (bytes == 0 || bytes > kModuleMemoryBytes) return false;
    auto run = x86::kernel_frames().allocate_contiguous(kModuleMemoryBytes / kPageSize, kModuleMemoryBytes);
    if (!run) return false;
    physical = *run;
    writable = physical_to_virtual(physical);
    fill_bytes(writable, 0, kModuleMemoryBytes);
    return true;
}

vaddr module_area() { return kModuleArea; }

bool map_module_region(paddr physical, u64 offset, u64 bytes, bool writable, bool executable) {
    x86::AllocatorTableMemory memory(x86::kernel_frames(), x86::kernel_physical_memory());
    x86::PageTableBuilder tables = kernel_tables(memory);
    auto mapped = tables.map(kModuleArea + offset, physical + offset, bytes,
                             {.writable = writable, .executable = executable, .global = true});
    if (!mapped) log::error("module: mapping at {:#x}: {}", kModuleArea + offset, x86::map_error_name(mapped.error()));
    return mapped.ok();
}

bool seal_module_memory(paddr physical) {
    x86::AllocatorTableMemory memory(x86::kernel_frames(), x86::kernel_physical_memory());
    x86::PageTableBuilder tables = kernel_tables(memory);
    const vaddr alias = PHYSMAP_BASE + physical;
    auto unmapped = tables.unmap(alias, kModuleMemoryBytes);
    if (!unmapped) {
        log::error("module: unmapping the direct map's alias: {}", x86::map_error_name(unmapped.error()));
        return false;
    }
    auto gone = tables.translate(alias);
    if (gone) return false;  // still reachable: refuse rather than run with an alias
    for (u64 offset = 0; offset < kModuleMemoryBytes; offset += kPageSize) flush_page(alias + offset);
    return true;
}

}  // namespace nestor::platform
