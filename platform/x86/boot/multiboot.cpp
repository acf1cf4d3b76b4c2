// Multiboot v1 / multiboot2 parsing into BootInfo. See multiboot.hpp for the policies on tables
// that do not fit; the comments here say why each check exists.
#include "nestor/x86/multiboot.hpp"

namespace nestor::x86 {

namespace {

using Error = MultibootError;

// Memory map "type" values shared by both multiboot versions.
MemoryKind memory_kind(u32 type) {
    switch (type) {
    case 1: return MemoryKind::usable;
    case 3: return MemoryKind::acpi_reclaimable;
    case 4: return MemoryKind::acpi_nvs;
    case 5: return MemoryKind::bad;
    default: return MemoryKind::reserved;  // unknown types must never be used
    }
}

// Reads that cannot leave [base, base + size): a tag's fields are read through a view of exactly
// that tag, so a lying length inside a tag cannot make us read its neighbour or beyond the table.
class BoundedView {
public:
    BoundedView(const PhysicalReader& reader, paddr base, u64 size) : reader_(reader), base_(base), size_(size) {}

    template <typename T> bool read(u64 offset, T& out) const { return read_bytes(offset, &out, sizeof(T)); }

    bool read_bytes(u64 offset, void* out, usize count) const {
        u64 end = 0;
        if (!checked_add(offset, count, end) || end > size_) return false;
        return reader_.read(base_ + offset, out, count);  // base_ + size_ was checked by the owner
    }

    paddr base() const { return base_; }
    u64 size() const { return size_; }

private:
    const PhysicalReader& reader_;
    paddr base_;
    u64 size_;
};

struct ParseState {
    BootInfo& info;
    MultibootNotes notes;
};

// The slot a new range can merge into: same kind and touching, so nothing is lost by merging.
MemoryRange* find_mergeable(BootInfo& info, paddr base, u64 end, MemoryKind kind) {
    for (usize i = 0; i < info.memory_count; ++i) {
        MemoryRange& range = info.memory[i];
        if (range.kind != kind) continue;
        if (range.base + range.length == base || end == range.base) return &range;
    }
    return nullptr;
}

MemoryRange* find_usable_slot(BootInfo& info) {
    for (usize i = 0; i < info.memory_count; ++i) {
        if (info.memory[i].kind == MemoryKind::usable) return &info.memory[i];
    }
    return nullptr;
}

Status<Error> add_memory_range(ParseState& state, paddr base, u64 length, u32 type) {
    if (length == 0) return {};
    u64 end = 0;
    if (!checked_add(base, length, end)) return fail(Error::range_overflow);
    BootInfo& info = state.info;
    const MemoryKind kind = memory_kind(type);
    if (info.memory_count < BootInfo::kMaxMemoryRanges) {
        info.memory[info.memory_count++] = MemoryRange{base, length, kind};
        return {};
    }
    // Full. Only now merge, so ordinary maps are stored exactly as the loader gave them.
    if (MemoryRange* range = find_mergeable(info, base, end, kind)) {
        range->base = min(range->base, base);
        range->length += length;
        return {};
    }
    // Dropping usable memory only wastes it; dropping a reserved range could hand it out.
    if (kind == MemoryKind::usable) {
        ++state.notes.memory_ranges_dropped;
        return {};
    }
    MemoryRange* victim = find_usable_slot(info);
    if (victim == nullptr) return fail(Error::too_many_memory_ranges);
    *victim = MemoryRange{base, length, kind};
    ++state.notes.memory_ranges_dropped;
    return {};
}

// The classic BIOS view: conventional memory from 0 and extended memory from 1 MiB, in KiB.
Status<Error> add_basic_memory(ParseState& state, u32 lower_kib, u32 upper_kib) {
    constexpr u32 kUsable = 1;
    if (auto s = add_memory_range(state, 0, u64{lower_kib} * 1024, kUsable); !s) return s;
    if (auto s = add_memory_range(state, 0x100000, u64{upper_kib} * 1024, kUsable); !s) return s;
    state.notes.memory_from_basic_info = true;
    return {};
}

// Copies the NUL-terminated string at `address` (at most `max_bytes` long, NUL included) into
// dst[capacity], truncating and always terminating. Reads byte by byte: the string may end right
// at the edge of readable memory.
Status<Error> copy_string(const PhysicalReader& reader, paddr address, u64 max_bytes, char* dst, usize capacity,
                          Error unreadable, MultibootNotes& notes) {
    for (u64 i = 0; i < max_bytes; ++i) {
        paddr at = 0;
        char c = 0;
        if (!checked_add(address, i, at) || !reader.read(at, &c, 1)) return fail(unreadable);
        if (i < capacity - 1) dst[i] = c;
        if (c == '\0') {
            if (i >= capacity) ++notes.strings_truncated;
            dst[min<u64>(i, capacity - 1)] = '\0';
            return {};
        }
    }
    dst[min<u64>(max_bytes, capacity - 1)] = '\0';
    return fail(Error::string_unterminated);
}

// ---- multiboot v1 ----

struct V1Info {  // the prefix of the v1 info struct that we use
    u32 flags;
    u32 mem_lower;
    u32 mem_upper;
    u32 boot_device;
    u32 cmdline;
    u32 mods_count;
    u32 mods_addr;
    u32 syms[4];
    u32 mmap_length;
    u32 mmap_addr;
};
static_assert(sizeof(V1Info) == 52);

struct V1Module {
    u32 start;
    u32 end;
    u32 string;
    u32 reserved;
};
static_assert(sizeof(V1Module) == 16);

constexpr u32 kV1FlagMemory = 1u << 0;
constexpr u32 kV1FlagCmdline = 1u << 2;
constexpr u32 kV1FlagModules = 1u << 3;
constexpr u32 kV1FlagMemoryMap = 1u << 6;
constexpr u32 kV1MmapEntryMinSize = 20;  // base, length, type; the size field excludes itself

Status<Error> copy_v1_string(ParseState& state, const PhysicalReader& reader, u32 address, char* dst, usize capacity) {
    if (address == 0) {  // no string given: an empty one, not a read of address 0
        dst[0] = '\0';
        return {};
    }
    return copy_string(reader, address, kMaxV1StringScan, dst, capacity, Error::string_unreadable, state.notes);
}

Status<Error> parse_v1_memory_map(ParseState& state, const PhysicalReader& reader, const V1Info& v1) {
    const BoundedView map(reader, v1.mmap_addr, v1.mmap_length);  // 32-bit fields: no overflow
    u64 offset = 0;
    while (offset < map.size()) {
        u32 size = 0;
        if (map.size() - offset < sizeof(size)) return fail(Error::mmap_entry_past_end);
        if (!map.read(offset, size)) return fail(Error::info_unreadable);
        if (size < kV1MmapEntryMinSize) return fail(Error::v1_mmap_entry_too_small);
        if (map.size() - offset - sizeof(size) < size) return fail(Error::mmap_entry_past_end);
        u64 base = 0;
        u64 length = 0;
        u32 type = 0;
        if (!map.read(offset + 4, base) || !map.read(offset + 12, length) || !map.read(offset + 20, type))
            return fail(Error::info_unreadable);
        if (auto s = add_memory_range(state, base, length, type); !s) return s;
        offset += sizeof(size) + size;
    }
    return {};
}

Status<Error> parse_v1_modules(ParseState& state, const PhysicalReader& reader, const V1Info& v1) {
    if (v1.mods_count > BootInfo::kMaxModules) return fail(Error::too_many_modules);
    const BoundedView list(reader, v1.mods_addr, u64{v1.mods_count} * sizeof(V1Module));
    for (u32 i = 0; i < v1.mods_count; ++i) {
        V1Module module{};
        if (!list.read(u64{i} * sizeof(V1Module), module)) return fail(Error::info_unreadable);
        if (module.end < module.start) return fail(Error::module_end_before_start);
        BootModule& out = state.info.modules[state.info.module_count++];
        out.start = module.start;
        out.end = module.end;
        if (auto s = copy_v1_string(state, reader, module.string, out.cmdline, sizeof(out.cmdline)); !s) return s;
    }
    return {};
}

Status<Error> parse_v1(ParseState& state, const PhysicalReader& reader, paddr address) {
    V1Info v1{};
    if (!reader.read(address, &v1, sizeof(v1))) return fail(Error::info_unreadable);
    u64 end = 0;
    if (!checked_add(address, kMultiboot1InfoSize, end)) return fail(Error::range_overflow);
    BootInfo& info = state.info;
    info.protocol = 1;
    info.info_start = address;
    info.info_end = end;
    if (v1.flags & kV1FlagCmdline) {
        if (auto s = copy_v1_string(state, reader, v1.cmdline, info.cmdline, sizeof(info.cmdline)); !s) return s;
    }
    if (v1.flags & kV1FlagModules) {
        if (auto s = parse_v1_modules(state, reader, v1); !s) return s;
    }
    if (v1.flags & kV1FlagMemoryMap) {
        if (auto s = parse_v1_memory_map(state, reader, v1); !s) return s;
    }
    if (info.memory_count == 0 && (v1.flags & kV1FlagMemory)) {
        if (auto s = add_basic_memory(state, v1.mem_lower, v1.mem_upper); !s) return s;
    }
    if (info.memory_count == 0) return fail(Error::no_memory_map);
    return {};
}

// ---- multiboot2 ----

constexpr u32 kV2TagEnd = 0;
constexpr u32 kV2TagCmdline = 1;
constexpr u32 kV2TagModule = 3;
constexpr u32 kV2TagBasicMemory = 4;
constexpr u32 kV2TagMemoryMap = 6;
constexpr u64 kV2HeaderSize = 8;     // total_size, reserved
constexpr u64 kV2TagHeaderSize = 8;  // type, size
constexpr u64 kV2TagAlign = 8;       // tags start on 8-byte boundaries
constexpr u64 kV2MmapEntryMinSize = 24;

struct V2TagHeader {
    u32 type;
    u32 size;
};

struct V2BasicMemory {
    bool present;
    u32 lower_kib;
    u32 upper_kib;
};

// A string that fills the rest of a tag from `offset`; it must end inside the tag.
Status<Error> copy_v2_string(ParseState& state, const PhysicalReader& reader, const BoundedView& tag, u64 offset,
                             char* dst, usize capacity) {
    return copy_string(reader, tag.base() + offset, tag.size() - offset, dst, capacity, Error::info_unreadable,
                       state.notes);
}

Status<Error> parse_v2_memory_map(ParseState& state, const BoundedView& tag) {
    u32 entry_size = 0;
    if (tag.size() < 16) return fail(Error::v2_tag_truncated);
    if (!tag.read(8, entry_size)) return fail(Error::info_unreadable);
    // Entries are read at 8-byte strides, and a loader may append fields (never remove them).
    if (entry_size < kV2MmapEntryMinSize || entry_size % 8 != 0) return fail(Error::v2_mmap_entry_size_invalid);
    const u64 entries_bytes = tag.size() - 16;
    if (entries_bytes % entry_size != 0) return fail(Error::mmap_entry_past_end);
    for (u64 offset = 16; offset < tag.size(); offset += entry_size) {
        u64 base = 0;
        u64 length = 0;
        u32 type = 0;
        if (!tag.read(offset, base) || !tag.read(offset + 8, length) || !tag.read(offset + 16, type))
            return fail(Error::info_unreadable);
        if (auto s = add_memory_range(state, base, length, type); !s) return s;
    }
    return {};
}

Status<Error> parse_v2_module(ParseState& state, const PhysicalReader& reader, const BoundedView& tag) {
    u32 start = 0;
    u32 end = 0;
    if (tag.size() < 16) return fail(Error::v2_tag_truncated);
    if (!tag.read(8, start) || !tag.read(12, end)) return fail(Error::info_unreadable);
    if (end < start) return fail(Error::module_end_before_start);
    BootInfo& info = state.info;
    if (info.module_count == BootInfo::kMaxModules) return fail(Error::too_many_modules);
    BootModule& module = info.modules[info.module_count++];
    module.start = start;
    module.end = end;
    return copy_v2_string(state, reader, tag, 16, module.cmdline, sizeof(module.cmdline));
}

Status<Error> parse_v2_basic_memory(const BoundedView& tag, V2BasicMemory& out) {
    if (tag.size() < 16) return fail(Error::v2_tag_truncated);
    if (!tag.read(8, out.lower_kib) || !tag.read(12, out.upper_kib)) return fail(Error::info_unreadable);
    out.present = true;
    return {};
}

Status<Error> parse_v2_tag(ParseState& state, const PhysicalReader& reader, const BoundedView& tag, u32 type,
                           V2BasicMemory& basic) {
    switch (type) {
    case kV2TagCmdline: return copy_v2_string(state, reader, tag, 8, state.info.cmdline, sizeof(state.info.cmdline));
    case kV2TagModule: return parse_v2_module(state, reader, tag);
    case kV2TagBasicMemory: return parse_v2_basic_memory(tag, basic);
    case kV2TagMemoryMap: return parse_v2_memory_map(state, tag);
    default: return {};  // other tags (framebuffer, ACPI, ...) are not ours to judge here
    }
}

Status<Error> check_v2_total_size(u32 total_size) {
    if (total_size < kV2HeaderSize + kV2TagHeaderSize) return fail(Error::v2_total_size_too_small);
    if (total_size > kMultiboot2MaxInfoSize) return fail(Error::v2_total_size_too_large);
    if (total_size % kV2TagAlign != 0) return fail(Error::v2_total_size_misaligned);
    return {};
}

Status<Error> parse_v2_tags(ParseState& state, const PhysicalReader& reader, const BoundedView& table,
                            V2BasicMemory& basic) {
    u64 offset = kV2HeaderSize;
    for (;;) {
        if (table.size() - offset < kV2TagHeaderSize) return fail(Error::v2_missing_end_tag);
        V2TagHeader header{};
        if (!table.read(offset, header)) return fail(Error::info_unreadable);
        if (header.size < kV2TagHeaderSize) return fail(Error::v2_tag_too_small);
        if (table.size() - offset < header.size) return fail(Error::v2_tag_past_end);
        if (header.type == kV2TagEnd) return {};
        const BoundedView tag(reader, table.base() + offset, header.size);
        if (auto s = parse_v2_tag(state, reader, tag, header.type, basic); !s) return s;
        // total_size <= 1 MiB and is a multiple of 8, so this neither wraps nor skips the end.
        offset += align_up(header.size, kV2TagAlign);
    }
}

Status<Error> parse_v2(ParseState& state, const PhysicalReader& reader, paddr address) {
    if (!is_aligned(address, kV2TagAlign)) return fail(Error::v2_info_misaligned);
    u32 total_size = 0;
    if (!reader.read(address, &total_size, sizeof(total_size))) return fail(Error::info_unreadable);
    if (auto s = check_v2_total_size(total_size); !s) return s;
    u64 end = 0;
    if (!checked_add(address, total_size, end)) return fail(Error::range_overflow);
    BootInfo& info = state.info;
    info.protocol = 2;
    info.info_start = address;
    info.info_end = end;
    V2BasicMemory basic{};
    if (auto s = parse_v2_tags(state, reader, BoundedView(reader, address, total_size), basic); !s) return s;
    if (info.memory_count == 0 && basic.present) {
        if (auto s = add_basic_memory(state, basic.lower_kib, basic.upper_kib); !s) return s;
    }
    if (info.memory_count == 0) return fail(Error::no_memory_map);
    return {};
}

Status<Error> parse_any(ParseState& state, u32 magic, paddr address, const PhysicalReader& reader) {
    if (magic != kMultiboot1BootMagic && magic != kMultiboot2BootMagic) return fail(Error::bad_magic);
    if (address == 0) return fail(Error::info_pointer_null);
    if (magic == kMultiboot1BootMagic) return parse_v1(state, reader, address);
    return parse_v2(state, reader, address);
}

}  // namespace

Result<MultibootNotes, MultibootError> parse_multiboot(u32 magic, paddr info_address, const PhysicalReader& reader,
                                                       BootInfo& out) {
    fill_bytes(&out, 0, sizeof(out));
    ParseState state{out, MultibootNotes{}};
    if (auto status = parse_any(state, magic, info_address, reader); !status) {
        fill_bytes(&out, 0, sizeof(out));
        return fail(status.error());
    }
    return state.notes;
}

const char* multiboot_error_name(MultibootError error) {
    switch (error) {
    case Error::bad_magic: return "bad boot magic";
    case Error::info_pointer_null: return "boot info pointer is null";
    case Error::info_unreadable: return "boot info unreadable";
    case Error::v2_info_misaligned: return "multiboot2 info not 8-byte aligned";
    case Error::v2_total_size_too_small: return "multiboot2 total_size too small";
    case Error::v2_total_size_too_large: return "multiboot2 total_size too large";
    case Error::v2_total_size_misaligned: return "multiboot2 total_size not a multiple of 8";
    case Error::v2_tag_too_small: return "multiboot2 tag smaller than 8 bytes";
    case Error::v2_tag_past_end: return "multiboot2 tag runs past total_size";
    case Error::v2_tag_truncated: return "multiboot2 tag too small for its type";
    case Error::v2_missing_end_tag: return "multiboot2 end tag missing";
    case Error::v2_mmap_entry_size_invalid: return "multiboot2 mmap entry_size invalid";
    case Error::v1_mmap_entry_too_small: return "multiboot mmap entry smaller than 20 bytes";
    case Error::mmap_entry_past_end: return "memory map entry runs past the map";
    case Error::range_overflow: return "memory range wraps past 2^64";
    case Error::too_many_memory_ranges: return "too many reserved memory ranges";
    case Error::too_many_modules: return "too many boot modules";
    case Error::module_end_before_start: return "boot module ends before it starts";
    case Error::string_unreadable: return "boot string unreadable";
    case Error::string_unterminated: return "boot string not NUL-terminated";
    case Error::no_memory_map: return "no memory information";
    }
    return "unknown multiboot error";
}

}  // namespace nestor::x86
