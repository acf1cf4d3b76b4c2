// From the boot stub to the kernel: console, descriptors, CPU features, boot information,
// physical memory and the kernel's own page tables, then kernel_main.
#include "nestor/boot_info.hpp"
#include "nestor/kernel.hpp"
#include "nestor/lib/cmdline.hpp"
#include "nestor/log.hpp"
#include "nestor/platform.hpp"
#include "nestor/x86/cpu.hpp"
#include "nestor/x86/descriptors.hpp"
#include "nestor/x86/kernel_memory.hpp"
#include "nestor/x86/local_apic.hpp"
#include "nestor/x86/multiboot.hpp"
#include "nestor/x86/page_table_builder.hpp"
#include "nestor/x86/selftest.hpp"
#include "nestor/x86/uart16550.hpp"
#include "platform/x86/boot/layout.h"

using namespace nestor;

extern "C" u64 boot_entry_tsc;  // written by the boot stub; reachable until the boot map goes
extern "C" char __kernel_phys_start[], __kernel_phys_end[];
extern "C" char __text_start[], __text_end[], __rodata_start[], __rodata_end[], __data_start[], __data_end[];

namespace {

BootInfo boot_info{};

[[noreturn]] void fail_boot(const char* what, const char* why) {
    log::error("boot: {}: {}", what, why);
    platform::shutdown(ExitStatus::failure);
}

void apply_cmdline(const char* cmdline) {
    char level_name[16];
    if (!cmdline_option(cmdline, "nestor.log", level_name, sizeof(level_name))) return;
    log::Level level;
    if (log::parse_level(level_name, level))
        log::set_threshold(level);
    else
        log::warn("boot: unknown log level '{}' (error, warn, info, debug)", level_name);
}

void parse_boot_information(u32 magic, u32 info_address) {
    auto parsed = x86::parse_multiboot(magic, info_address, x86::kernel_physical_memory(), boot_info);
    if (!parsed) {
        log::error("boot: magic {:#x}, information at {:#x}", magic, info_address);
        fail_boot("bad multiboot information", x86::multiboot_error_name(parsed.error()));
    }
    apply_cmdline(boot_info.cmdline);
    log::info("boot: multiboot{} information, {} memory ranges, {} modules", boot_info.protocol == 1 ? " v1" : "2",
              boot_info.memory_count, boot_info.module_count);
    if (parsed->memory_ranges_dropped)
        log::warn("boot: {} usable memory ranges dropped", parsed->memory_ranges_dropped);
    if (parsed->strings_truncated) log::warn("boot: {} command lines truncated", parsed->strings_truncated);
}

paddr top_of_usable_memory() {
    paddr top = 0;
    for (usize i = 0; i < boot_info.memory_count; ++i) {
        const MemoryRange& r = boot_info.memory[i];
        if (r.kind == MemoryKind::usable) top = max(top, r.base + r.length);
    }
    return align_down(min(top, x86::FrameAllocator::kPhysicalLimit), kLargePageSize);
}

u64 physical_of(const char* symbol) { return reinterpret_cast<uptr>(symbol) - KERNEL_VIRT_OFFSET; }

void map_or_fail(x86::PageTableBuilder& tables, u64 virt, paddr phys, u64 size, x86::Permissions perm,
                 const char* what) {
    auto mapped = tables.map(virt, phys, size, perm);
    if (!mapped) fail_boot(what, x86::map_error_name(mapped.error()));
}

// The kernel's own tables: text read-execute, rodata read-only, data read-write, all of RAM
// read-write but never executable in the direct map. Nothing is both writable and executable.
paddr build_kernel_page_tables(paddr ram_top) {
    x86::AllocatorTableMemory table_memory(x86::kernel_frames(), x86::kernel_physical_memory());
    x86::PageTableBuilder tables(table_memory);
    auto root = tables.create_root();
    if (!root) fail_boot("page tables", x86::map_error_name(root.error()));
    auto section = [&](const char* start, const char* end, x86::Permissions perm, const char* name) {
        u64 size = static_cast<u64>(end - start);
        if (size) map_or_fail(tables, reinterpret_cast<uptr>(start), physical_of(start), size, perm, name);
    };
    section(__text_start, __text_end, {.writable = false, .executable = true, .global = true}, "kernel text");
    section(__rodata_start, __rodata_end, {.writable = false, .executable = false, .global = true}, "kernel rodata");
    section(__data_start, __data_end, {.writable = true, .executable = false, .global = true}, "kernel data");
    map_or_fail(tables, PHYSMAP_BASE, 0, ram_top, {.writable = true, .executable = false, .global = true},
                "direct map");
    paddr apic = x86::lapic::mmio_physical();
    map_or_fail(tables, x86::lapic::kMmioWindow + apic, apic, kPageSize,
                {.writable = true, .executable = false, .global = true, .uncached = true}, "local APIC");
    return tables.root();
}

MemorySummary set_up_memory() {
    // The linker script defines these two at physical addresses.
    const x86::PhysicalRange image{reinterpret_cast<uptr>(__kernel_phys_start),
                                   reinterpret_cast<uptr>(__kernel_phys_end)};
    x86::FrameAllocator& frames = x86::kernel_frames();
    auto ready = frames.init(boot_info, image, x86::kernel_physical_memory());
    if (!ready) fail_boot("frame allocator", x86::frame_error_name(ready.error()));
    u64 free_before_tables = frames.free_frames();

    paddr ram_top = top_of_usable_memory();
    paddr root = build_kernel_page_tables(ram_top);
    x86::write_cr3(root);
    x86::kernel_physical_memory().retarget(PHYSMAP_BASE, ram_top);
    if (!x86::lapic::init()) log::warn("apic: the local APIC timer does not count: guests cannot be preempted");

    MemorySummary summary{};
    for (usize i = 0; i < boot_info.memory_count; ++i)
        if (boot_info.memory[i].kind == MemoryKind::usable) summary.usable_bytes += boot_info.memory[i].length;
    summary.free_frames = frames.free_frames();
    summary.page_table_frames = free_before_tables - frames.free_frames();
    u64 managed_bytes = frames.total_frames() * kPageSize;
    summary.reserved_bytes = summary.usable_bytes > managed_bytes ? summary.usable_bytes - managed_bytes : 0;
    return summary;
}

}  // namespace

extern "C" [[noreturn]] void x86_boot_main(u32 magic, u32 info_address) {
    u64 entry_tsc = boot_entry_tsc;
    x86::uart::init(x86::uart::kCom1);
    log::info("boot: kernel entered at tsc {}", entry_tsc);
    x86::load_descriptors();
    x86::detect_cpu_features();
    parse_boot_information(magic, info_address);
    MemorySummary memory = set_up_memory();
    x86::run_selftest(boot_info.cmdline);
    kernel_main(boot_info, memory);
}
