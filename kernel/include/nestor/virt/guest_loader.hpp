// Loads a guest kernel into a domain's RAM. Two kinds of image here (a Linux bzImage is the third,
// linux_loader.hpp):
//  - a multiboot v1 kernel (ELF64 or ELF32 with a multiboot header): it starts in the machine
//    state the multiboot specification defines (32-bit protected mode, paging off), EAX holding
//    the boot magic and EBX the information block (memory map, command line, modules);
//  - a plain ELF64 kernel (no multiboot header): it starts at its entry in 64-bit long mode,
//    on identity page tables the loader builds for the first 4 GiB, with RSP below 636 KiB and
//    RDI pointing at the same multiboot information block.
// The image comes from a boot module and is checked before use: every segment must lie inside
// the file and inside guest RAM above the loader's own area.
#pragma once

#include "nestor/lib/result.hpp"
#include "nestor/lib/types.hpp"
#include "nestor/virt/ram_layout.hpp"
#include "nestor/virt/vcpu_state.hpp"

namespace nestor::virt {

// A domain's RAM as the loader sees it (ram_layout.hpp): size() bytes from guest-physical 0,
// where everything the loaders place goes, and high_size() bytes from 4 GiB (a PC's RAM above its
// hole), which only the memory maps describe.
class GuestRam {
public:
    virtual u64 size() const = 0;
    virtual u64 high_size() const { return 0; }
    // False if [gpa, gpa + length) is not entirely inside the RAM.
    virtual bool write(u64 gpa, const void* data, usize length) = 0;
    virtual bool fill(u64 gpa, u8 value, usize length) = 0;

protected:
    ~GuestRam() = default;
};

enum class LoadError : u8 {
    not_elf,                      // no ELF magic, or the headers run past the file
    unsupported_elf,              // not x86 (EM_X86_64 / EM_386), not little-endian, not executable
    no_multiboot_header,          // an ELF32 image without a multiboot v1 header in the first 8 KiB
    bad_multiboot_checksum,       // magic + flags + checksum is not 0
    unsupported_multiboot_flags,  // needs something the loader does not offer (a.out kludge, video)
    segment_outside_file,         // a segment's bytes run past the file
    segment_outside_ram,          // a segment does not fit in guest RAM above the loader's area
    no_loadable_segment,          // nothing to load
    entry_outside_image,          // the entry point is not inside a loaded segment
    modules_do_not_fit,           // the modules do not fit in guest RAM after the image
    too_many_modules,             // more than kMaxGuestModules
    // A Linux bzImage (linux_loader.hpp):
    not_bzimage,             // no setup header, or the header or the kernel runs past the file
    linux_protocol_too_old,  // boot protocol before 2.12: no xloadflags to tell a 64-bit entry
    linux_no_64bit_entry,    // xloadflags without XLF_KERNEL_64
    linux_does_not_fit,      // the kernel (init_size) and its initrd do not fit in guest RAM
};

const char* load_error_name(LoadError error);

inline constexpr usize kMaxGuestModules = 8;
// The loader's area: guest RAM below this holds the information block, the memory map, the
// command line and the module list; segments must load at or above it.
inline constexpr u64 kLoaderAreaEnd = 0x100000;
inline constexpr u64 kMultibootInfoGpa = 0x8000;
// Conventional memory ends at 636 KiB, as on a PC: the memory maps mark the rest below 1 MiB
// reserved (a PC domain's ACPI tables are there).
inline constexpr u64 kLowMemoryEnd = 0x9F000;
// Where a plain ELF64 kernel's identity page tables and stack go, inside the loader's area.
inline constexpr u64 kLongModeTablesGpa = 0x10000;
inline constexpr u64 kLongModeStackTop = 0x9F000;
inline constexpr u32 kMultibootBootMagic = 0x2BADB002;

struct GuestModule {
    const u8* data;
    usize size;
    const char* cmdline;
};

// How the guest was started, which decides the register that points at its boot information.
enum class BootProtocol : u8 {
    multiboot,      // EBX: the multiboot information block (EAX: kMultibootBootMagic)
    elf64,          // RDI: the multiboot information block
    linux_bzimage,  // RSI: the Linux boot_params ("zero page")
};

struct LoadedGuest {
    CpuMode mode;   // protected32 (multiboot) or long64 (plain ELF64, Linux)
    u64 entry;      // the first RIP
    u64 info_gpa;   // where `protocol` says: EBX, RDI or RSI
    u64 cr3;        // long64: the identity page tables
    u64 stack_top;  // long64: RSP
    u64 image_end;  // first byte after the loaded segments and modules
    BootProtocol protocol;
};

const char* boot_protocol_name(BootProtocol protocol);

// Identity page tables for the first 4 GiB (2 MiB pages) at kLongModeTablesGpa, for a guest that
// starts in long mode. False if guest RAM does not hold them.
bool write_identity_tables(GuestRam& ram);

Result<LoadedGuest, LoadError> load_multiboot_guest(const u8* image, usize image_size, const char* cmdline,
                                                    const GuestModule* modules, usize module_count, GuestRam& ram);

}  // namespace nestor::virt
