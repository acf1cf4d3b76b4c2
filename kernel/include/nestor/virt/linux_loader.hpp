// Loads a Linux kernel in the bzImage format the distributions ship, by the x86 boot protocol
// (the kernel's Documentation/arch/x86/boot.rst), and prepares its 64-bit entry:
//  - the setup header is read and checked: boot_flag 0xAA55, "HdrS", protocol 2.12 or later (it
//    has xloadflags) with XLF_KERNEL_64;
//  - the protected-mode kernel (the file past its (setup_sects + 1) sectors of real-mode setup)
//    goes to pref_address, and init_size bytes from there must lie inside guest RAM;
//  - the initrd (the domain's modules, one after another, so several cpio archives make one
//    initramfs) goes as high as initrd_addr_max and the end of RAM allow, page aligned, above the
//    kernel's init_size;
//  - a zeroed boot_params (the "zero page") gets the image's setup header, an e820 map (usable RAM
//    below 636 KiB and from 1 MiB, the BIOS area between reserved: the PC's ACPI tables are there),
//    the command line (with the TSC's rate, tsc_early_khz, when the caller knows it), the initrd's
//    address and size and type_of_loader 0xFF;
//  - the vCPU starts at the 64-bit entry (load address + 0x200) in long mode on the identity page
//    tables of the first 4 GiB, interrupts off, RSI = boot_params.
// The image comes from a boot module and is checked before use: nothing is read past the file.
#pragma once

#include "nestor/virt/guest_loader.hpp"

namespace nestor::virt {

inline constexpr u16 kLinuxMinProtocol = 0x020C;  // 2.12: the first with xloadflags
// The loader's area below 1 MiB: boot_params and the command line (the identity tables are at
// kLongModeTablesGpa, the stack below kLongModeStackTop).
inline constexpr u64 kLinuxBootParamsGpa = 0x7000;
inline constexpr u64 kLinuxCmdlineGpa = 0x20000;
inline constexpr usize kLinuxCmdlineBytes = 0x1000;  // the most the loader copies, NUL included

// Whether the image has a setup header (boot_flag and "HdrS"), of any protocol version: such an
// image is loaded (or refused) as a bzImage, never as an ELF.
bool is_bzimage(const u8* image, usize image_size);

// Loads the kernel, its initrd (`initrd_parts` concatenated; none is no initrd) and its command
// line into `ram`; the result starts in long64 with protocol linux_bzimage. A `tsc_khz` other than
// 0 is the rate of the TSC the guest reads: the command line gets `tsc_early_khz=<tsc_khz>` unless
// it has a tsc_early_khz of its own.
Result<LoadedGuest, LoadError> load_linux_guest(const u8* image, usize image_size, const char* cmdline,
                                                const GuestModule* initrd_parts, usize part_count, GuestRam& ram,
                                                u64 tsc_khz = 0);

}  // namespace nestor::virt
