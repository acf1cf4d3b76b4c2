#include "nestor/virt/guest_loader.hpp"

#include "nestor/lib/elf.hpp"
#include "nestor/lib/util.hpp"

namespace nestor::virt {
namespace {

constexpr u32 kMultibootHeaderMagic = 0x1BADB002;
constexpr usize kMultibootSearchBytes = 8192;
constexpr u32 kMultibootAoutKludge = 1u << 16;
constexpr u32 kMultibootVideoMode = 1u << 2;

// Where the information block's parts go inside the loader's area.
constexpr u64 kMemoryMapGpa = kMultibootInfoGpa + 0x100;
constexpr u64 kCmdlineGpa = kMultibootInfoGpa + 0x200;
constexpr usize kCmdlineBytes = 0x200;
constexpr u64 kModuleListGpa = kMultibootInfoGpa + 0x400;
constexpr u64 kModuleStringsGpa = kMultibootInfoGpa + 0x500;
constexpr usize kModuleStringBytes = 0x100;

enum InfoFlag : u32 { memory = 1u << 0, cmdline = 1u << 2, mods = 1u << 3, mmap = 1u << 6 };

struct ElfSegment {
    u64 file_offset;
    u64 file_size;
    u64 memory_size;
    u64 physical;
};

// Little-endian reads that never run past the file.
struct FileView {
    const u8* data;
    usize size;
    bool has(u64 offset, u64 length) const {
        u64 end = 0;
        return checked_add(offset, length, end) && end <= size;
    }
    u64 read(u64 offset, usize width) const {
        u64 value = 0;
        for (usize i = 0; i < width; ++i) value |= static_cast<u64>(data[offset + i]) << (8 * i);
        return value;
    }
};

// Whether the file carries a multiboot v1 header (checked in full by check_multiboot_header).
bool has_multiboot_magic(const FileView& file) {
    usize limit = min<usize>(file.size, kMultibootSearchBytes);
    for (usize offset = 0; offset + 12 <= limit; offset += 4)
        if (file.read(offset, 4) == kMultibootHeaderMagic) return true;
    return false;
}

Status<LoadError> check_multiboot_header(const FileView& file) {
    usize limit = min<usize>(file.size, kMultibootSearchBytes);
    for (usize offset = 0; offset + 12 <= limit; offset += 4) {
        if (file.read(offset, 4) != kMultibootHeaderMagic) continue;
        u32 flags = static_cast<u32>(file.read(offset + 4, 4));
        u32 checksum = static_cast<u32>(file.read(offset + 8, 4));
        if (static_cast<u32>(kMultibootHeaderMagic + flags + checksum) != 0)
            return fail(LoadError::bad_multiboot_checksum);
        if (flags & (kMultibootAoutKludge | kMultibootVideoMode)) return fail(LoadError::unsupported_multiboot_flags);
        return {};
    }
    return fail(LoadError::no_multiboot_header);
}

struct ElfLayout {
    bool is64;
    u64 entry;
    u64 phoff;
    u64 phentsize;
    u64 phnum;
};

Result<ElfLayout, LoadError> read_elf_header(const FileView& file) {
    if (!file.has(0, 52) || file.read(0, 4) != elf::kMagic) return fail(LoadError::not_elf);
    u8 elf_class = file.data[4];
    if (file.data[5] != elf::kDataLittleEndian || (elf_class != elf::kClass32 && elf_class != elf::kClass64))
        return fail(LoadError::unsupported_elf);
    bool is64 = elf_class == elf::kClass64;
    if (is64 && !file.has(0, 64)) return fail(LoadError::not_elf);
    u64 machine = file.read(18, 2);
    if (file.read(16, 2) != elf::kTypeExecutable || machine != (is64 ? elf::kMachineX86_64 : elf::kMachine386))
        return fail(LoadError::unsupported_elf);
    ElfLayout layout{is64, 0, 0, 0, 0};
    layout.entry = is64 ? file.read(24, 8) : file.read(24, 4);
    layout.phoff = is64 ? file.read(32, 8) : file.read(28, 4);
    layout.phentsize = file.read(is64 ? 54 : 42, 2);
    layout.phnum = file.read(is64 ? 56 : 44, 2);
    if (layout.phentsize < (is64 ? 56u : 32u) || !file.has(layout.phoff, layout.phentsize * layout.phnum))
        return fail(LoadError::not_elf);
    return layout;
}

// The program header `index`, or false if it is not PT_LOAD.
bool read_segment(const FileView& file, const ElfLayout& elf, u64 index, ElfSegment& out) {
    u64 at = elf.phoff + index * elf.phentsize;
    if (file.read(at, 4) != elf::kSegmentLoad) return false;
    if (elf.is64) {
        out = {file.read(at + 8, 8), file.read(at + 32, 8), file.read(at + 40, 8), file.read(at + 24, 8)};
    } else {
        out = {file.read(at + 4, 4), file.read(at + 16, 4), file.read(at + 20, 4), file.read(at + 12, 4)};
    }
    return true;
}

Status<LoadError> load_segment(const FileView& file, const ElfSegment& seg, GuestRam& ram, u64& image_end) {
    if (!file.has(seg.file_offset, seg.file_size) || seg.file_size > seg.memory_size)
        return fail(LoadError::segment_outside_file);
    u64 end = 0;
    if (seg.physical < kLoaderAreaEnd || !checked_add(seg.physical, seg.memory_size, end) || end > ram.size())
        return fail(LoadError::segment_outside_ram);
    if (!ram.write(seg.physical, file.data + seg.file_offset, seg.file_size) ||
        !ram.fill(seg.physical + seg.file_size, 0, seg.memory_size - seg.file_size))
        return fail(LoadError::segment_outside_ram);
    image_end = max(image_end, end);
    return {};
}

bool entry_in_segment(u64 entry, const ElfSegment& seg) {
    return entry >= seg.physical && entry - seg.physical < seg.memory_size;
}

void put32(u8* at, u32 value) { copy_bytes(at, &value, 4); }
void put64(u8* at, u64 value) { copy_bytes(at, &value, 8); }

// Copies text (NUL-terminated, cut to capacity - 1) to gpa.
bool write_string(GuestRam& ram, u64 gpa, const char* text, usize capacity) {
    usize length = 0;
    while (text && text[length] && length + 1 < capacity) ++length;
    return ram.write(gpa, text ? text : "", length) && ram.fill(gpa + length, 0, 1);
}

bool write_memory_map(GuestRam& ram, u32& map_length) {
    struct Entry {
        u64 base, length;
        u32 type;
    };
    const Entry entries[] = {{0, kLowMemoryEnd, 1},
                             {kLowMemoryEnd, kLoaderAreaEnd - kLowMemoryEnd, 2},
                             {kLoaderAreaEnd, ram.size() - kLoaderAreaEnd, 1},
                             {kHighRamBase, ram.high_size(), 1}};
    const usize count = ram.high_size() != 0 ? 4 : 3;  // RAM above 4 GiB: a PC's above its hole
    u8 bytes[4 * 24];
    for (usize i = 0; i < count; ++i) {
        put32(bytes + 24 * i, 20);  // the size field does not count itself
        put64(bytes + 24 * i + 4, entries[i].base);
        put64(bytes + 24 * i + 12, entries[i].length);
        put32(bytes + 24 * i + 20, entries[i].type);
    }
    map_length = static_cast<u32>(24 * count);
    return ram.write(kMemoryMapGpa, bytes, map_length);
}

Status<LoadError> load_modules(const GuestModule* modules, usize count, GuestRam& ram, u64& image_end) {
    for (usize i = 0; i < count; ++i) {
        u64 start = align_up(image_end, kPageSize);
        u64 end = 0;
        if (!checked_add(start, modules[i].size, end) || end > ram.size() ||
            !ram.write(start, modules[i].data, modules[i].size))
            return fail(LoadError::modules_do_not_fit);
        u64 string_gpa = kModuleStringsGpa + i * kModuleStringBytes;
        u8 entry[16];
        put32(entry, static_cast<u32>(start));
        put32(entry + 4, static_cast<u32>(end));
        put32(entry + 8, static_cast<u32>(string_gpa));
        put32(entry + 12, 0);
        if (!ram.write(kModuleListGpa + 16 * i, entry, sizeof(entry)) ||
            !write_string(ram, string_gpa, modules[i].cmdline, kModuleStringBytes))
            return fail(LoadError::modules_do_not_fit);
        image_end = end;
    }
    return {};
}

bool write_info(GuestRam& ram, const char* cmdline, usize module_count, u32 map_length) {
    u8 info[116] = {};
    put32(info, InfoFlag::memory | InfoFlag::cmdline | InfoFlag::mods | InfoFlag::mmap);
    put32(info + 4, static_cast<u32>(kLowMemoryEnd / 1024));
    put32(info + 8, static_cast<u32>(min<u64>((ram.size() - kLoaderAreaEnd) / 1024, 0xFFFFFFFF)));
    put32(info + 16, static_cast<u32>(kCmdlineGpa));
    put32(info + 20, static_cast<u32>(module_count));
    put32(info + 24, static_cast<u32>(kModuleListGpa));
    put32(info + 44, map_length);
    put32(info + 48, static_cast<u32>(kMemoryMapGpa));
    return ram.write(kMultibootInfoGpa, info, sizeof(info)) && write_string(ram, kCmdlineGpa, cmdline, kCmdlineBytes);
}

}  // namespace

// A PML4, a PDPT and four PDs of 2 MiB pages.
bool write_identity_tables(GuestRam& ram) {
    constexpr u64 kPresentWritable = 0x3, kLarge = 0x80;
    const u64 pml4 = kLongModeTablesGpa, pdpt = pml4 + kPageSize, pd = pdpt + kPageSize;
    if (!ram.fill(pml4, 0, 6 * kPageSize)) return false;
    u64 entry = pdpt | kPresentWritable;
    if (!ram.write(pml4, &entry, 8)) return false;
    for (u64 i = 0; i < 4; ++i) {
        entry = (pd + i * kPageSize) | kPresentWritable;
        if (!ram.write(pdpt + i * 8, &entry, 8)) return false;
    }
    for (u64 i = 0; i < 4 * 512; ++i) {
        entry = (i * kLargePageSize) | kPresentWritable | kLarge;
        if (!ram.write(pd + i * 8, &entry, 8)) return false;
    }
    return true;
}

Result<LoadedGuest, LoadError> load_multiboot_guest(const u8* image, usize image_size, const char* cmdline,
                                                    const GuestModule* modules, usize module_count, GuestRam& ram) {
    if (module_count > kMaxGuestModules) return fail(LoadError::too_many_modules);
    if (ram.size() <= kLoaderAreaEnd) return fail(LoadError::segment_outside_ram);
    const FileView file{image, image_size};
    auto elf = read_elf_header(file);
    if (!elf) return fail(elf.error());
    const bool multiboot = !elf->is64 || has_multiboot_magic(file);
    if (multiboot)
        if (auto header = check_multiboot_header(file); !header) return fail(header.error());

    u64 image_end = kLoaderAreaEnd;
    bool loaded = false, entry_found = false;
    for (u64 i = 0; i < elf->phnum; ++i) {
        ElfSegment seg{};
        if (!read_segment(file, *elf, i, seg) || seg.memory_size == 0) continue;
        if (auto status = load_segment(file, seg, ram, image_end); !status) return fail(status.error());
        loaded = true;
        entry_found = entry_found || entry_in_segment(elf->entry, seg);
    }
    if (!loaded) return fail(LoadError::no_loadable_segment);
    if (!entry_found || (multiboot && elf->entry > 0xFFFFFFFF)) return fail(LoadError::entry_outside_image);

    if (auto status = load_modules(modules, module_count, ram, image_end); !status) return fail(status.error());
    u32 map_length = 0;
    if (!write_memory_map(ram, map_length) || !write_info(ram, cmdline, module_count, map_length))
        return fail(LoadError::segment_outside_ram);
    if (multiboot)
        return LoadedGuest{.mode = CpuMode::protected32,
                           .entry = elf->entry,
                           .info_gpa = kMultibootInfoGpa,
                           .cr3 = 0,
                           .stack_top = 0,
                           .image_end = image_end,
                           .protocol = BootProtocol::multiboot};
    if (!write_identity_tables(ram)) return fail(LoadError::segment_outside_ram);
    return LoadedGuest{.mode = CpuMode::long64,
                       .entry = elf->entry,
                       .info_gpa = kMultibootInfoGpa,
                       .cr3 = kLongModeTablesGpa,
                       .stack_top = kLongModeStackTop,
                       .image_end = image_end,
                       .protocol = BootProtocol::elf64};
}

const char* load_error_name(LoadError error) {
    switch (error) {
    case LoadError::not_elf: return "not an ELF file";
    case LoadError::unsupported_elf: return "not a little-endian x86 ELF executable";
    case LoadError::no_multiboot_header: return "no multiboot header in the first 8 KiB";
    case LoadError::bad_multiboot_checksum: return "bad multiboot header checksum";
    case LoadError::unsupported_multiboot_flags: return "multiboot header asks for an a.out kludge or a video mode";
    case LoadError::segment_outside_file: return "a segment runs past the end of the file";
    case LoadError::segment_outside_ram: return "a segment does not fit in guest RAM above 1 MiB";
    case LoadError::no_loadable_segment: return "no loadable segment";
    case LoadError::entry_outside_image: return "the entry point is not in a loaded segment";
    case LoadError::modules_do_not_fit: return "the modules do not fit in guest RAM";
    case LoadError::too_many_modules: return "too many modules";
    case LoadError::not_bzimage: return "not a Linux bzImage: its setup header or kernel runs past the file";
    case LoadError::linux_protocol_too_old: return "Linux boot protocol older than 2.12 (no 64-bit entry to tell)";
    case LoadError::linux_no_64bit_entry: return "the Linux kernel has no 64-bit entry point (XLF_KERNEL_64)";
    case LoadError::linux_does_not_fit: return "the Linux kernel and its initrd do not fit in guest RAM";
    }
    return "?";
}

const char* boot_protocol_name(BootProtocol protocol) {
    switch (protocol) {
    case BootProtocol::multiboot: return "multiboot";
    case BootProtocol::elf64: return "64-bit ELF";
    case BootProtocol::linux_bzimage: return "Linux bzImage";
    }
    return "?";
}

}  // namespace nestor::virt
