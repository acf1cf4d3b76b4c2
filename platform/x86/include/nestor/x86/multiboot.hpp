// Multiboot v1 and multiboot2 boot information, parsed into nestor::BootInfo. The loader's tables
// are input from outside the kernel: every read goes through a bounded PhysicalReader and every
// inconsistency is reported as a MultibootError, never trusted.
//
// Policies (the loader's data does not always fit BootInfo's fixed arrays):
//  - Memory map entries beyond BootInfo::kMaxMemoryRanges: adjacent entries of the same kind are
//    merged first; if the table is still full, a usable entry is dropped (losing memory is safe)
//    or replaces a usable entry when the newcomer is not usable (a reserved range must never be
//    lost, or its bytes could be handed out). If every slot holds a non-usable range and another
//    non-usable range arrives, parsing fails with too_many_memory_ranges. Dropped usable entries
//    are counted in MultibootNotes.
//  - More than BootInfo::kMaxModules modules: an error (a silently missing module would boot a
//    different system).
//  - Strings longer than their BootInfo buffer are truncated (and counted in the notes); the copy
//    is always NUL-terminated. A string that has no NUL within its bounds (v2: its tag; v1:
//    kMaxV1StringScan readable bytes) is an error.
//  - Zero-length memory map entries are skipped.
//  - On any error the BootInfo is zeroed, so a half-parsed table is never used by mistake.
#pragma once

#include "nestor/boot_info.hpp"
#include "nestor/lib/result.hpp"
#include "nestor/x86/physical_memory.hpp"

namespace nestor::x86 {

inline constexpr u32 kMultiboot1BootMagic = 0x2BADB002;  // in EAX at entry
inline constexpr u32 kMultiboot2BootMagic = 0x36D76289;

// Multiboot v1 info struct size with every field up to the framebuffer info (spec 0.6.96): the
// range recorded in BootInfo::info_start/info_end.
inline constexpr u64 kMultiboot1InfoSize = 116;
// Largest multiboot2 info accepted: real tables are a few KiB.
inline constexpr u64 kMultiboot2MaxInfoSize = 1024 * 1024;
// How far a v1 string is searched for its NUL before it is declared unterminated.
inline constexpr u64 kMaxV1StringScan = 64 * 1024;

enum class MultibootError : u8 {
    bad_magic,                   // EAX held neither boot magic
    info_pointer_null,           // the info address is 0
    info_unreadable,             // a read inside the info (or a table it points to) failed
    v2_info_misaligned,          // multiboot2 info is not 8-byte aligned
    v2_total_size_too_small,     // smaller than header + end tag
    v2_total_size_too_large,     // above kMultiboot2MaxInfoSize
    v2_total_size_misaligned,    // not a multiple of 8
    v2_tag_too_small,            // tag size < 8
    v2_tag_past_end,             // tag runs past total_size
    v2_tag_truncated,            // tag smaller than the fixed fields of its type
    v2_missing_end_tag,          // tags ran out without an end tag
    v2_mmap_entry_size_invalid,  // mmap entry_size < 24 or not a multiple of 8
    v1_mmap_entry_too_small,     // v1 mmap entry size field < 20
    mmap_entry_past_end,         // the last mmap entry does not fit in the map
    range_overflow,              // base + length wraps past 2^64
    too_many_memory_ranges,      // only non-usable ranges would be dropped (see policy)
    too_many_modules,            // more than BootInfo::kMaxModules
    module_end_before_start,     // module end < start
    string_unreadable,           // a v1 string pointer leads into unreadable memory
    string_unterminated,         // no NUL within the string's bounds
    no_memory_map,               // neither a memory map nor basic memory info
};

// A human-readable name for the boot log.
const char* multiboot_error_name(MultibootError error);

// What parsing accepted but had to alter to fit BootInfo.
struct MultibootNotes {
    usize memory_ranges_dropped;  // usable ranges dropped because BootInfo was full
    usize strings_truncated;      // command lines cut to their BootInfo buffer
    bool memory_from_basic_info;  // no memory map: built from mem_lower/mem_upper
};

// Parses the table the loader left at `info_address`, choosing v1 or v2 by `magic` (the value in
// EAX at entry). Fills `out` on success.
Result<MultibootNotes, MultibootError> parse_multiboot(u32 magic, paddr info_address, const PhysicalReader& reader,
                                                       BootInfo& out);

}  // namespace nestor::x86
