// A loadable kernel component: an ELF64 x86-64 shared object (ld.lld -shared -z now), checked,
// copied and relocated by the kernel at boot. The bytes come from a boot module and are not
// trusted: plan_module() checks the headers and works out the image's pages, load_module() copies
// the segments into memory the caller provides and applies the relocations, resolving each
// undefined symbol only through the kernel's export table (any other refuses the module). No
// hardware access: the caller maps the pages afterwards with the permissions the plan gives.
#pragma once

#include "nestor/lib/result.hpp"
#include "nestor/lib/types.hpp"

namespace nestor::module {

enum class ModuleError : u8 {
    too_small,             // fewer bytes than an ELF header
    not_elf,               // no ELF magic
    not_elf64_x86_64,      // another class, byte order or machine
    not_shared_object,     // not ET_DYN (a relocatable image of its own)
    bad_program_headers,   // the program header table is malformed or outside the file
    segment_outside_file,  // a PT_LOAD's file bytes run past the file
    segment_unaligned,     // a PT_LOAD does not start on a page, or its offset differs from its address modulo a page
    segments_overlap,      // two PT_LOADs share a page, or are not in address order
    writable_and_executable,   // a PT_LOAD is both writable and executable
    no_loadable_segment,       // nothing to load
    image_too_large,           // the image spans more than kMaxImageBytes
    no_dynamic_section,        // no PT_DYNAMIC: nothing to relocate or look up
    bad_dynamic_section,       // a dynamic entry is missing, malformed or points outside the image
    not_bound_now,             // lazy binding asked for (the kernel resolves everything up front)
    unsupported_relocation,    // a relocation type the loader does not apply
    relocation_outside_image,  // a relocation writes outside the writable segments
    bad_symbol,                // a symbol index, name or value is out of range
    unresolved_symbol,         // an undefined symbol the kernel does not export
    no_entry_symbol,           // the module defines no entry symbol
};

const char* module_error_name(ModuleError error);

// One kernel symbol a module may use: its name and address in the running kernel.
struct Export {
    const char* name;
    uptr address;
};

struct ExportTable {
    const Export* entries;
    usize count;
    const Export* find(const char* name, usize name_length) const;
};

enum class PageAccess : u8 { read, read_write, read_execute };

// A page-aligned run of the image with one access, from the image's start.
struct ImageRegion {
    u64 offset;
    u64 bytes;
    PageAccess access;
};

inline constexpr u32 kMaxRegions = 8;
inline constexpr u64 kMaxImageBytes = 4ull << 20;  // a component is tens of KiB
inline constexpr usize kSymbolNameBytes = 64;      // of an unresolved symbol, for the log

struct ModulePlan {
    u64 image_bytes;  // a multiple of 4 KiB, from address 0 of the module
    ImageRegion regions[kMaxRegions];
    u32 region_count;
};

struct ModuleFault {
    ModuleError error = ModuleError::too_small;
    // unresolved_symbol: the symbol's name, printable characters only, cut to fit.
    char symbol[kSymbolNameBytes] = {};
};

Result<ModulePlan, ModuleFault> plan_module(const void* data, usize size);

// Copies the segments of a planned module into `image` (plan.image_bytes, zeroed by the caller),
// relocates them for the image running at virtual address `base`, and returns the run-time
// address of the defined symbol `entry`. Nothing in `image` is to be used when it fails.
Result<u64, ModuleFault> load_module(const void* data, usize size, const ModulePlan& plan, u8* image, u64 base,
                                     const ExportTable& exports, const char* entry);

}  // namespace nestor::module
