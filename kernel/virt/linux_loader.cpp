#include "nestor/virt/linux_loader.hpp"

#include "nestor/lib/cmdline.hpp"
#include "nestor/lib/format.hpp"
#include "nestor/lib/util.hpp"

namespace nestor::virt {
namespace {

// Offsets of the setup header's fields, the same in the image and in boot_params.
namespace hdr {
constexpr u64 setup_sects = 0x1F1;
constexpr u64 boot_flag = 0x1FE;
constexpr u64 jump = 0x200;  // a short jump; its second byte is the header's length past 0x202
constexpr u64 magic = 0x202;
constexpr u64 version = 0x206;
constexpr u64 type_of_loader = 0x210;
constexpr u64 code32_start = 0x214;
constexpr u64 ramdisk_image = 0x218;
constexpr u64 ramdisk_size = 0x21C;
constexpr u64 cmd_line_ptr = 0x228;
constexpr u64 initrd_addr_max = 0x22C;
constexpr u64 kernel_alignment = 0x230;
constexpr u64 relocatable_kernel = 0x234;
constexpr u64 xloadflags = 0x236;
constexpr u64 cmdline_size = 0x238;
constexpr u64 pref_address = 0x258;
constexpr u64 init_size = 0x260;
constexpr u64 end_of_2_12 = 0x264;  // a 2.12 header holds every field above
}  // namespace hdr

// boot_params beyond the setup header.
constexpr u64 kBootParamsBytes = 0x1000;
constexpr u64 kSetupHeaderLimit = 0x290;  // where the field after the header begins
constexpr u64 kE820EntryCount = 0x1E8;
constexpr u64 kE820Table = 0x2D0;
constexpr u64 kE820EntryBytes = 20;
constexpr u32 kE820Ram = 1, kE820Reserved = 2;

constexpr u16 kBootFlag = 0xAA55;
constexpr u32 kHeaderMagic = 0x53726448;  // "HdrS"
constexpr u16 kXlfKernel64 = 1u << 0;
constexpr u8 kLoaderUndefined = 0xFF;
constexpr u64 kSectorBytes = 512;
constexpr u64 kDefaultSetupSects = 4;  // what setup_sects 0 means
constexpr u64 kEntry64Offset = 0x200;  // from the protected-mode kernel's start
constexpr u64 kInitrdPartAlignment = 4;

u64 read_le(const u8* at, usize width) {
    u64 value = 0;
    for (usize i = 0; i < width; ++i) value |= static_cast<u64>(at[i]) << (8 * i);
    return value;
}

bool put(GuestRam& ram, u64 gpa, u64 value, usize width) {
    u8 bytes[8];
    for (usize i = 0; i < width; ++i) bytes[i] = static_cast<u8>(value >> (8 * i));
    return ram.write(gpa, bytes, width);
}

// What the loader takes from the setup header.
struct SetupHeader {
    u64 header_end;  // the header's last byte + 1 in the image
    u64 kernel_offset;
    u64 kernel_size;
    u64 initrd_addr_max;
    u64 alignment;
    bool relocatable;
    u64 cmdline_size;
    u64 pref_address;
    u64 init_size;
};

Result<SetupHeader, LoadError> read_setup_header(const u8* image, usize size) {
    if (!is_bzimage(image, size)) return fail(LoadError::not_bzimage);
    if (read_le(image + hdr::version, 2) < kLinuxMinProtocol) return fail(LoadError::linux_protocol_too_old);
    if (size < hdr::end_of_2_12) return fail(LoadError::not_bzimage);
    if (!(read_le(image + hdr::xloadflags, 2) & kXlfKernel64)) return fail(LoadError::linux_no_64bit_entry);
    SetupHeader h{};
    h.header_end = hdr::magic + image[hdr::jump + 1];
    u64 setup_sects = image[hdr::setup_sects] ? image[hdr::setup_sects] : kDefaultSetupSects;
    h.kernel_offset = (setup_sects + 1) * kSectorBytes;
    if (h.header_end < hdr::end_of_2_12 || h.header_end > kSetupHeaderLimit || h.header_end > size ||
        h.kernel_offset + kEntry64Offset >= size)
        return fail(LoadError::not_bzimage);
    h.kernel_size = size - h.kernel_offset;
    h.initrd_addr_max = read_le(image + hdr::initrd_addr_max, 4);
    h.alignment = read_le(image + hdr::kernel_alignment, 4);
    h.relocatable = image[hdr::relocatable_kernel] != 0;
    h.cmdline_size = read_le(image + hdr::cmdline_size, 4);
    h.pref_address = read_le(image + hdr::pref_address, 8);
    h.init_size = read_le(image + hdr::init_size, 4);
    return h;
}

// Where the kernel and the initrd go in guest RAM.
struct Placement {
    u64 load;         // the protected-mode kernel's first byte
    u64 kernel_end;   // load + the larger of its size and init_size
    u64 initrd;       // 0: no initrd
    u64 initrd_size;  // with every part padded to kInitrdPartAlignment
};

// pref_address; a relocatable kernel that prefers the loader's area goes to the first aligned
// address above it instead.
u64 load_address(const SetupHeader& h) {
    if (h.pref_address >= kLoaderAreaEnd || !h.relocatable) return h.pref_address;
    u64 alignment = (h.alignment & (h.alignment - 1)) == 0 ? max(h.alignment, kPageSize) : kLargePageSize;
    return align_up(kLoaderAreaEnd, alignment);
}

Result<Placement, LoadError> place(const SetupHeader& h, u64 initrd_size, u64 ram_size) {
    Placement p{load_address(h), 0, 0, initrd_size};
    if (p.load < kLoaderAreaEnd || !checked_add(p.load, max(h.kernel_size, h.init_size), p.kernel_end) ||
        p.kernel_end > ram_size)
        return fail(LoadError::linux_does_not_fit);
    if (initrd_size == 0) return p;
    u64 top = min(ram_size, h.initrd_addr_max + 1);  // at most 4 GiB: ramdisk_image has 32 bits
    if (top < initrd_size) return fail(LoadError::linux_does_not_fit);
    p.initrd = align_down(top - initrd_size, kPageSize);
    if (p.initrd < p.kernel_end) return fail(LoadError::linux_does_not_fit);
    return p;
}

Result<u64, LoadError> initrd_bytes(const GuestModule* parts, usize count) {
    u64 total = 0;
    for (usize i = 0; i < count; ++i) {
        u64 padded = align_up(parts[i].size, kInitrdPartAlignment);
        if (padded < parts[i].size || !checked_add(total, padded, total)) return fail(LoadError::linux_does_not_fit);
    }
    return total;
}

// The parts one after another, each padded with zeros to kInitrdPartAlignment: the kernel skips
// zeros between archives.
bool write_initrd(GuestRam& ram, u64 at, const GuestModule* parts, usize count) {
    for (usize i = 0; i < count; ++i) {
        u64 padded = align_up(parts[i].size, kInitrdPartAlignment);
        if (!ram.write(at, parts[i].data, parts[i].size) || !ram.fill(at + parts[i].size, 0, padded - parts[i].size))
            return false;
        at += padded;
    }
    return true;
}

// Appends " tsc_early_khz=<tsc_khz>" to the `length` bytes of command line at kLinuxCmdlineGpa if
// it fits whole within `limit` (a cut number would be a wrong rate); returns the new length.
Result<usize, LoadError> append_tsc_rate(GuestRam& ram, usize length, usize limit, u64 tsc_khz) {
    char rate[40];
    usize added = format_into(rate, sizeof rate, "{}tsc_early_khz={}", length ? " " : "", tsc_khz);
    if (length + added > limit) return length;
    if (!ram.write(kLinuxCmdlineGpa + length, rate, added)) return fail(LoadError::linux_does_not_fit);
    return length + added;
}

// The domain's command line, then the TSC's rate (when known) unless it gives one itself: Linux
// takes tsc_early_khz instead of calibrating the TSC against the PIT or the PM timer, whose every
// read is an exit (slow enough under an emulator for its calibration to fail or to come out
// wrong, and the clocksource watchdog then marks the TSC unstable).
bool write_cmdline(GuestRam& ram, const char* cmdline, u64 cmdline_size, u64 tsc_khz) {
    const char* given = cmdline ? cmdline : "";
    usize limit = min<u64>(cmdline_size, kLinuxCmdlineBytes - 1);
    usize length = 0;
    while (given[length] && length < limit) ++length;
    if (length && !ram.write(kLinuxCmdlineGpa, given, length)) return false;
    char ignored[2];
    if (tsc_khz != 0 && !given[length] && !cmdline_option(given, "tsc_early_khz", ignored, sizeof ignored)) {
        auto appended = append_tsc_rate(ram, length, limit, tsc_khz);
        if (!appended) return false;
        length = *appended;
    }
    return ram.fill(kLinuxCmdlineGpa + length, 0, 1);
}

bool write_e820(GuestRam& ram) {
    struct Entry {
        u64 base, length;
        u32 type;
    };
    const Entry entries[] = {{0, kLowMemoryEnd, kE820Ram},
                             {kLowMemoryEnd, kLoaderAreaEnd - kLowMemoryEnd, kE820Reserved},
                             {kLoaderAreaEnd, ram.size() - kLoaderAreaEnd, kE820Ram},
                             {kHighRamBase, ram.high_size(), kE820Ram}};
    const usize count = ram.high_size() != 0 ? 4 : 3;  // RAM above 4 GiB: a PC's above its hole
    for (usize i = 0; i < count; ++i) {
        u64 at = kLinuxBootParamsGpa + kE820Table + i * kE820EntryBytes;
        if (!put(ram, at, entries[i].base, 8) || !put(ram, at + 8, entries[i].length, 8) ||
            !put(ram, at + 16, entries[i].type, 4))
            return false;
    }
    return put(ram, kLinuxBootParamsGpa + kE820EntryCount, count, 1);
}

bool write_boot_params(GuestRam& ram, const u8* image, const SetupHeader& h, const Placement& p) {
    const u64 bp = kLinuxBootParamsGpa;
    return ram.fill(bp, 0, kBootParamsBytes) &&
           ram.write(bp + hdr::setup_sects, image + hdr::setup_sects, h.header_end - hdr::setup_sects) &&
           put(ram, bp + hdr::type_of_loader, kLoaderUndefined, 1) && put(ram, bp + hdr::code32_start, p.load, 4) &&
           put(ram, bp + hdr::ramdisk_image, p.initrd, 4) && put(ram, bp + hdr::ramdisk_size, p.initrd_size, 4) &&
           put(ram, bp + hdr::cmd_line_ptr, kLinuxCmdlineGpa, 4) && write_e820(ram);
}

}  // namespace

bool is_bzimage(const u8* image, usize image_size) {
    return image_size >= hdr::version + 2 && read_le(image + hdr::boot_flag, 2) == kBootFlag &&
           read_le(image + hdr::magic, 4) == kHeaderMagic;
}

Result<LoadedGuest, LoadError> load_linux_guest(const u8* image, usize image_size, const char* cmdline,
                                                const GuestModule* initrd_parts, usize part_count, GuestRam& ram,
                                                u64 tsc_khz) {
    if (part_count > kMaxGuestModules) return fail(LoadError::too_many_modules);
    auto header = read_setup_header(image, image_size);
    if (!header) return fail(header.error());
    auto initrd_size = initrd_bytes(initrd_parts, part_count);
    if (!initrd_size) return fail(initrd_size.error());
    auto placed = place(*header, *initrd_size, ram.size());
    if (!placed) return fail(placed.error());
    if (!ram.write(placed->load, image + header->kernel_offset, header->kernel_size) ||
        !write_initrd(ram, placed->initrd, initrd_parts, part_count) ||
        !write_cmdline(ram, cmdline, header->cmdline_size, tsc_khz) ||
        !write_boot_params(ram, image, *header, *placed) || !write_identity_tables(ram))
        return fail(LoadError::linux_does_not_fit);
    return LoadedGuest{.mode = CpuMode::long64,
                       .entry = placed->load + kEntry64Offset,
                       .info_gpa = kLinuxBootParamsGpa,
                       .cr3 = kLongModeTablesGpa,
                       .stack_top = kLongModeStackTop,
                       .image_end = max(placed->kernel_end, placed->initrd + placed->initrd_size),
                       .protocol = BootProtocol::linux_bzimage};
}

}  // namespace nestor::virt
