// Nestor's Linux-on-KVM loader: a static, freestanding Linux program (raw system calls, no libc)
// that the linux_kvm appliance runs in its L1 Linux to boot a whole Linux as L2 through /dev/kvm:
// three levels, Nestor (L0), Linux KVM (L1), Linux (L2).
//
//   kvm-boot-linux BZIMAGE INITRAMFS [CMDLINE]
//
// It makes the least of a PC that Linux boots on: one vCPU, kL2MemoryBytes of RAM at 0, KVM's
// in-kernel local APIC, I/O APIC, PICs and PIT (Linux's timers), the CPUID KVM supports, a 16550A
// UART at COM1 emulated here, whose output goes to this program's standard output one line at a
// time behind kL2LinePrefix, and a stopped CMOS clock. Linux starts at its 64-bit entry (the x86
// boot protocol: boot_params with the image's setup header, an e820 map, the command line and the
// initramfs; identity page tables and a flat GDT). Any other port reads all ones and takes writes,
// as an empty ISA bus would. L2 ends when it shuts down (a triple fault: `reboot=t` on its command
// line; or a reset through the keyboard controller); the program then prints the exits it handled
// and KVM's counts, and `KVM-BOOT-LINUX: PASS l2_linux ...` with the times to L2's ready line and
// to its end, or a `KVM-BOOT-LINUX: FAIL` line; its exit status says which.
#include "kvm_api.hpp"
#include "linux_syscalls.hpp"
#include "program_start.hpp"

// Where a signal handler returns to: rt_sigreturn (the kernel's sigaction needs SA_RESTORER).
extern "C" void kvm_boot_linux_restorer();
asm(".globl kvm_boot_linux_restorer\n"
    "kvm_boot_linux_restorer:\n"
    "  mov $15, %eax\n"
    "  syscall\n");

namespace {

using namespace kvm_client;

constexpr u64 kL2MemoryBytes = 128ul << 20;
constexpr u64 kTimeLimitMs = 600000;  // L2 has not ended by then: the program gives up
// While L2 runs, a line this often says where it is (its RIP, the exits so far): how far a boot
// that never ends got.
constexpr unsigned kProgressSeconds = 30;
constexpr const char* kL2LinePrefix = "[L2] ";
// What L2's init prints once it runs (appliances/linux/init): the line the time to ready is taken at.
constexpr const char* kL2ReadyLine = "NESTOR-LINUX-READY:";
// Linux's console on the UART, without ACPI or PCI, which this PC lacks; messages up to warnings
// (`loglevel=5`: a warning in L2 shows in the log, the rest stays out, every byte of the console
// being two exits to this program; `mitigations=off` for the emulated CPU's missing microcode); a
// triple fault to end (`reboot=t`), which KVM reports as KVM_EXIT_SHUTDOWN; `nestor.then=reboot`
// makes the linux appliance's init show its interrupts and reboot at once. A periodic tick
// (`nohz=off highres=off`): in one-shot mode every tick reprograms the PIT, OUTs that each cost
// L2 a round trip through L0 and its L1, and under an emulator a tick's own exits then take so
// much of the tick that a CPU-bound step of the boot (the X.509 check) may never get through,
// depending on the phase of the exits' costs (seen with Nestor's VMX exits 18% cheaper).
constexpr const char* kDefaultCmdline =
    "console=ttyS0 loglevel=5 mitigations=off acpi=off pci=off reboot=t panic=-1 io_delay=none nohz=off "
    "highres=off 8250.nr_uarts=1 nestor.then=reboot";

// Where this program puts what Linux's 64-bit entry needs, in L2's physical memory.
constexpr u64 kGdtAddress = 0x500;
constexpr u64 kBootParamsAddress = 0x7000;
constexpr u64 kPml4Address = 0x9000;
constexpr u64 kPdptAddress = 0xA000;
constexpr u64 kPageDirectoryAddress = 0xB000;
constexpr u64 kCmdlineAddress = 0x20000;
constexpr u64 kCmdlineMaxBytes = 0x800;  // stays below the ISA hole with room to spare

// The PC's memory map: conventional memory, the ISA hole (BIOS data, VGA, ROMs), and the rest.
constexpr u64 kLowMemoryEnd = 0x9FC00;
constexpr u64 kHighMemoryStart = 0x100000;

// Where KVM on Intel keeps its real-mode TSS (three pages just under the BIOS); unused on AMD.
constexpr u64 kIntelRealModeTssAddress = 0xFFFBD000;

constexpr u64 kPageBytes = 0x1000;
constexpr u64 kLargePageBytes = 2ul << 20;
constexpr u64 kPagePresentWritable = 0x3;
constexpr u64 kPageLarge = 0x80;

// The boot protocol's fields (Documentation/arch/x86/boot.rst), at their offsets in the image and
// in boot_params alike.
namespace boot {
constexpr u64 e820_entries = 0x1E8;
constexpr u64 setup_sects = 0x1F1;
constexpr u64 boot_flag = 0x1FE;
constexpr u64 jump = 0x200;  // a short jump; its second byte is the header's length past 0x202
constexpr u64 header_magic = 0x202;
constexpr u64 version = 0x206;
constexpr u64 type_of_loader = 0x210;
constexpr u64 ramdisk_image = 0x218;
constexpr u64 ramdisk_size = 0x21C;
constexpr u64 cmd_line_ptr = 0x228;
constexpr u64 initrd_addr_max = 0x22C;
constexpr u64 xloadflags = 0x236;
constexpr u64 cmdline_size = 0x238;
constexpr u64 pref_address = 0x258;
constexpr u64 init_size = 0x260;
constexpr u64 header_limit = 0x290;  // the header ends before the field that follows it
constexpr u64 e820_table = 0x2D0;
constexpr u64 e820_entry_bytes = 20;

constexpr u16 kBootFlag = 0xAA55;
constexpr u32 kHeaderMagic = 0x53726448;  // "HdrS"
constexpr u16 kMinVersion = 0x20C;        // 2.12: xloadflags, and so the 64-bit entry
constexpr u16 kXlfKernel64 = 1;
constexpr u8 kLoaderUndefined = 0xFF;
constexpr u64 kSectorBytes = 512;
constexpr u64 kDefaultSetupSects = 4;  // what setup_sects 0 means
constexpr u64 kEntry64Offset = 0x200;  // from the protected-mode kernel's start
constexpr u32 kE820Ram = 1, kE820Reserved = 2;
}  // namespace boot

// The boot protocol's flat segments: __BOOT_CS and __BOOT_DS are GDT entries 2 and 3.
constexpr u16 kBootCodeSelector = 0x10;
constexpr u16 kBootDataSelector = 0x18;
constexpr u64 kGdt[] = {0, 0, 0x00af9a000000ffff, 0x00cf92000000ffff};

constexpr u64 kCr0ProtectedMode = 1ul << 0;
constexpr u64 kCr0ExtensionType = 1ul << 4;
constexpr u64 kCr0Paging = 1ul << 31;
constexpr u64 kCr4Pae = 1ul << 5;
constexpr u64 kEferLongModeEnable = 1ul << 8;
constexpr u64 kEferLongModeActive = 1ul << 10;
constexpr u64 kRflagsFixed = 1ul << 1;
constexpr u32 kCpuidFeatures = 1;
constexpr u32 kCpuidEcxHypervisor = 1u << 31;
constexpr u32 kCpuidXsave = 0xD;

// COM1: its ports and its interrupt line (ISA IRQ 4, to KVM's PIC and I/O APIC).
constexpr u16 kComPort = 0x3F8;
constexpr u16 kComPorts = 8;
constexpr u32 kComIrq = 4;
// The 16550's registers (offsets from kComPort) and bits.
namespace uart {
constexpr u16 data = 0;              // THR / RBR; DLL while LCR.DLAB
constexpr u16 interrupt_enable = 1;  // IER; DLM while LCR.DLAB
constexpr u16 interrupt_id = 2;      // IIR on reads, FCR on writes
constexpr u16 line_control = 3;
constexpr u16 line_status = 5;
constexpr u16 modem_status = 6;
// The rest (LCR's neighbours MCR at 4 and the scratch register at 7) keep what is written.

constexpr u8 kLcrDivisorLatch = 0x80;
constexpr u8 kIerTransmitterEmpty = 0x02;
constexpr u8 kFcrEnableFifo = 0x01;
constexpr u8 kIirNoInterrupt = 0x01;
constexpr u8 kIirTransmitterEmpty = 0x02;
constexpr u8 kIirFifosEnabled = 0xC0;
constexpr u8 kLsrTransmitterIdle = 0x60;  // THRE and TEMT: every byte leaves at once
constexpr u8 kMsrCarrierDsrCts = 0xB0;
}  // namespace uart

// The RTC's CMOS: an index port, then its data port. Linux reads the time from it (and polls its
// update-in-progress flag, which reading all ones from an absent RTC would leave set for a
// second of reads), so a stopped clock answers: a fixed date, in BCD, 24-hour, never updating.
constexpr u16 kCmosIndexPort = 0x70;
constexpr u16 kCmosDataPort = 0x71;
constexpr u8 kCmosIndexMask = 0x7F;  // bit 7 of the index port masks NMIs
struct CmosDefault {
    u8 index, value;
};
constexpr CmosDefault kCmosDefaults[] = {
    {0x00, 0x00}, {0x02, 0x00}, {0x04, 0x12},                // seconds, minutes, hours: 12:00:00
    {0x06, 0x01}, {0x07, 0x01}, {0x08, 0x01}, {0x09, 0x24},  // weekday, day, month, year: 2024-01-01
    {0x0A, 0x26},                                            // register A: no update in progress
    {0x0B, 0x02},                                            // register B: BCD, 24-hour
    {0x0D, 0x80},                                            // register D: the time is valid
    {0x32, 0x20},                                            // the century
};

// The keyboard controller's command port and its reset command, the other way a PC resets.
constexpr u16 kKeyboardCommandPort = 0x64;
constexpr u8 kKeyboardPulseReset = 0xFE;

volatile bool progress_due = false;
void on_alarm(int) { progress_due = true; }

void fail(const char* why, u64 value) {
    print("KVM-BOOT-LINUX: FAIL ");
    print(why);
    print(" ");
    print_hex(value);
    print("\n");
}

u64 now_ms() {
    Timespec now{};
    sys_clock_gettime(kClockMonotonic, now);
    return static_cast<u64>(now.seconds) * 1000 + static_cast<u64>(now.nanoseconds) / 1000000;
}

u64 read_le(const u8* at, usize width) {
    u64 value = 0;
    for (usize i = 0; i < width; ++i) value |= static_cast<u64>(at[i]) << (8 * i);
    return value;
}

void write_le(u8* at, u64 value, usize width) {
    for (usize i = 0; i < width; ++i) at[i] = static_cast<u8>(value >> (8 * i));
}

void copy(u8* to, const u8* from, usize bytes) {
    for (usize i = 0; i < bytes; ++i) to[i] = from[i];
}

usize length_of(const char* text) {
    usize length = 0;
    while (text[length]) ++length;
    return length;
}

bool starts_with(const char* text, usize length, const char* prefix) {
    usize prefix_length = length_of(prefix);
    if (length < prefix_length) return false;
    for (usize i = 0; i < prefix_length; ++i)
        if (text[i] != prefix[i]) return false;
    return true;
}

// A whole file, mapped read-only.
struct File {
    const u8* bytes = nullptr;
    u64 size = 0;
};

bool map_file(const char* path, File& out) {
    int fd = sys_open(path, kOpenReadOnly | kOpenCloseOnExec);
    if (fd < 0) return print("KVM-BOOT-LINUX: cannot open "), print(path), print("\n"), false;
    long size = sys_lseek(fd, 0, kSeekEnd);
    long mapped = size > 0 ? sys_mmap(nullptr, static_cast<u64>(size), kProtRead, kMapPrivate, fd, 0) : -1;
    sys_close(fd);
    if (mapped < 0) return print("KVM-BOOT-LINUX: cannot map "), print(path), print("\n"), false;
    out.bytes = reinterpret_cast<const u8*>(mapped);
    out.size = static_cast<u64>(size);
    return true;
}

// L2: its VM, vCPU, memory and kvm_run.
struct Machine {
    int vm = -1;
    int vcpu = -1;
    u8* memory = nullptr;
    KvmRun* run = nullptr;
};

bool create_machine(int kvm, Machine& m) {
    m.vm = sys_ioctl(kvm, KVM_CREATE_VM, 0);
    if (m.vm < 0) return fail("KVM_CREATE_VM returned", static_cast<u64>(m.vm)), false;
    if (long r = sys_ioctl(m.vm, KVM_SET_TSS_ADDR, kIntelRealModeTssAddress); r < 0)
        return fail("KVM_SET_TSS_ADDR returned", static_cast<u64>(r)), false;
    if (long r = sys_ioctl(m.vm, KVM_CREATE_IRQCHIP, 0); r < 0)
        return fail("KVM_CREATE_IRQCHIP returned", static_cast<u64>(r)), false;
    KvmPitConfig pit{};
    pit.flags = KVM_PIT_SPEAKER_DUMMY;
    if (long r = sys_ioctl(m.vm, KVM_CREATE_PIT2, reinterpret_cast<u64>(&pit)); r < 0)
        return fail("KVM_CREATE_PIT2 returned", static_cast<u64>(r)), false;
    // Ticks L2 could not take in time are dropped, not made up for. L2's tick is the PIT's through
    // the 8259 PIC (Debian's cloud kernel parses no MP table and this PC has no ACPI, so Linux
    // leaves its local APIC unused), each tick five exits of L2 (its delivery and the PIC's four
    // port accesses): made-up ticks of a slow L2 make it slower still.
    KvmReinjectControl no_reinjection{};
    if (long r = sys_ioctl(m.vm, KVM_REINJECT_CONTROL, reinterpret_cast<u64>(&no_reinjection)); r < 0)
        return fail("KVM_REINJECT_CONTROL returned", static_cast<u64>(r)), false;
    long mapped = sys_mmap(nullptr, kL2MemoryBytes, kProtRead | kProtWrite, kMapPrivate | kMapAnonymous, -1, 0);
    if (mapped < 0) return fail("mmap of L2's memory returned", static_cast<u64>(mapped)), false;
    m.memory = reinterpret_cast<u8*>(mapped);
    KvmUserspaceMemoryRegion region{0, 0, 0, kL2MemoryBytes, static_cast<u64>(mapped)};
    if (long r = sys_ioctl(m.vm, KVM_SET_USER_MEMORY_REGION, reinterpret_cast<u64>(&region)); r < 0)
        return fail("KVM_SET_USER_MEMORY_REGION returned", static_cast<u64>(r)), false;
    m.vcpu = sys_ioctl(m.vm, KVM_CREATE_VCPU, 0);
    if (m.vcpu < 0) return fail("KVM_CREATE_VCPU returned", static_cast<u64>(m.vcpu)), false;
    long run_size = sys_ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (run_size <= 0) return fail("KVM_GET_VCPU_MMAP_SIZE returned", static_cast<u64>(run_size)), false;
    long run = sys_mmap(nullptr, static_cast<u64>(run_size), kProtRead | kProtWrite, kMapShared, m.vcpu, 0);
    if (run < 0) return fail("mmap of kvm_run returned", static_cast<u64>(run)), false;
    m.run = reinterpret_cast<KvmRun*>(run);
    return true;
}

// L2 sees what KVM can give it, with the hypervisor bit that KVM leaves to its user: without it
// Linux looks for no hypervisor, so neither finds KVM's paravirtual leaves (kvm-clock, which tells
// it the TSC's rate) and calibrates the TSC against the PIT, which fails this slow.
//
// XCR0 starts as every XSAVE feature the table offers: KVM computes the XSAVE area's size in the
// table (CPUID 0xD.0 EBX) from XCR0 when the table is set and does not redo it when Linux enables
// AVX, so a table set under the reset XCR0 (x87 only) tells Linux too small a size, a warning at
// its boot.
bool set_cpuid(int kvm, const Machine& m) {
    static KvmCpuid2<128> table;
    table.nent = 128;
    if (long r = sys_ioctl(kvm, KVM_GET_SUPPORTED_CPUID, reinterpret_cast<u64>(&table)); r < 0)
        return fail("KVM_GET_SUPPORTED_CPUID returned", static_cast<u64>(r)), false;
    u64 xsave_features = 0;
    for (u32 i = 0; i < table.nent; ++i) {
        KvmCpuidEntry2& entry = table.entries[i];
        if (entry.function == kCpuidFeatures) entry.ecx |= kCpuidEcxHypervisor;
        if (entry.function == kCpuidXsave && entry.index == 0) xsave_features = u64{entry.edx} << 32 | entry.eax;
    }
    if (long r = sys_ioctl(m.vcpu, KVM_SET_CPUID2, reinterpret_cast<u64>(&table)); r < 0)
        return fail("KVM_SET_CPUID2 returned", static_cast<u64>(r)), false;
    if (!xsave_features) return true;
    KvmXcrs xcrs{};
    xcrs.count = 1;
    xcrs.xcrs[0].value = xsave_features;
    if (long r = sys_ioctl(m.vcpu, KVM_SET_XCRS, reinterpret_cast<u64>(&xcrs)); r < 0)
        return fail("KVM_SET_XCRS returned", static_cast<u64>(r)), false;
    if (long r = sys_ioctl(m.vcpu, KVM_SET_CPUID2, reinterpret_cast<u64>(&table)); r < 0)
        return fail("KVM_SET_CPUID2 after KVM_SET_XCRS returned", static_cast<u64>(r)), false;
    return true;
}

// The bzImage and the initramfs in L2's memory, and boot_params telling Linux where they are.
// Returns the 64-bit entry point, or 0 (reported) if the image is not one this can boot.
u64 load_linux(const Machine& m, const File& image, const File& initrd, const char* cmdline) {
    const u8* header = image.bytes;
    if (image.size < boot::header_limit || read_le(header + boot::boot_flag, 2) != boot::kBootFlag ||
        read_le(header + boot::header_magic, 4) != boot::kHeaderMagic)
        return fail("not a bzImage: its size is", image.size), 0;
    if (u64 version = read_le(header + boot::version, 2); version < boot::kMinVersion)
        return fail("boot protocol older than 2.12:", version), 0;
    if (!(read_le(header + boot::xloadflags, 2) & boot::kXlfKernel64))
        return fail("no 64-bit entry point: xloadflags", read_le(header + boot::xloadflags, 2)), 0;
    u64 setup_sects = header[boot::setup_sects] ? header[boot::setup_sects] : boot::kDefaultSetupSects;
    u64 kernel_offset = (setup_sects + 1) * boot::kSectorBytes;
    u64 header_end = boot::header_magic + header[boot::jump + 1];
    if (kernel_offset >= image.size || header_end > boot::header_limit)
        return fail("a setup header out of bounds, setup_sects", setup_sects), 0;

    u64 load = read_le(header + boot::pref_address, 8);
    u64 kernel_size = image.size - kernel_offset;
    u64 init_size = read_le(header + boot::init_size, 4);
    u64 kernel_end = load + (init_size > kernel_size ? init_size : kernel_size);
    u64 initrd_top = read_le(header + boot::initrd_addr_max, 4) + 1;
    if (initrd_top > kL2MemoryBytes) initrd_top = kL2MemoryBytes;
    u64 initrd_at = (initrd_top - initrd.size) & ~(kPageBytes - 1);
    if (load < kHighMemoryStart || initrd.size > initrd_top || initrd_at < kernel_end)
        return fail("the kernel and initramfs do not fit in L2's memory; kernel end", kernel_end), 0;
    copy(m.memory + load, image.bytes + kernel_offset, kernel_size);
    copy(m.memory + initrd_at, initrd.bytes, initrd.size);

    u64 cmdline_limit = read_le(header + boot::cmdline_size, 4);
    if (cmdline_limit > kCmdlineMaxBytes - 1) cmdline_limit = kCmdlineMaxBytes - 1;
    usize cmdline_length = length_of(cmdline);
    if (cmdline_length > cmdline_limit) return fail("the command line is longer than", cmdline_limit), 0;
    copy(m.memory + kCmdlineAddress, reinterpret_cast<const u8*>(cmdline), cmdline_length + 1);

    u8* params = m.memory + kBootParamsAddress;
    copy(params + boot::setup_sects, header + boot::setup_sects, header_end - boot::setup_sects);
    params[boot::type_of_loader] = boot::kLoaderUndefined;
    write_le(params + boot::ramdisk_image, initrd_at, 4);
    write_le(params + boot::ramdisk_size, initrd.size, 4);
    write_le(params + boot::cmd_line_ptr, kCmdlineAddress, 4);
    struct E820Entry {
        u64 base, length;
        u32 type;
    };
    const E820Entry map[] = {{0, kLowMemoryEnd, boot::kE820Ram},
                             {kLowMemoryEnd, kHighMemoryStart - kLowMemoryEnd, boot::kE820Reserved},
                             {kHighMemoryStart, kL2MemoryBytes - kHighMemoryStart, boot::kE820Ram}};
    for (usize i = 0; i < sizeof(map) / sizeof(map[0]); ++i) {
        u8* entry = params + boot::e820_table + i * boot::e820_entry_bytes;
        write_le(entry, map[i].base, 8);
        write_le(entry + 8, map[i].length, 8);
        write_le(entry + 16, map[i].type, 4);
    }
    params[boot::e820_entries] = sizeof(map) / sizeof(map[0]);
    return load + boot::kEntry64Offset;
}

// Long mode as the 64-bit entry wants it: the first GiB mapped one to one (2 MiB pages), the flat
// boot segments, interrupts off, RSI at boot_params.
bool enter_long_mode(const Machine& m, u64 entry) {
    write_le(m.memory + kPml4Address, kPdptAddress | kPagePresentWritable, 8);
    write_le(m.memory + kPdptAddress, kPageDirectoryAddress | kPagePresentWritable, 8);
    for (u64 i = 0; i < 512; ++i)
        write_le(m.memory + kPageDirectoryAddress + i * 8, i * kLargePageBytes | kPagePresentWritable | kPageLarge, 8);
    for (usize i = 0; i < sizeof(kGdt) / sizeof(kGdt[0]); ++i) write_le(m.memory + kGdtAddress + i * 8, kGdt[i], 8);

    KvmSregs sregs{};
    if (long r = sys_ioctl(m.vcpu, KVM_GET_SREGS, reinterpret_cast<u64>(&sregs)); r < 0)
        return fail("KVM_GET_SREGS returned", static_cast<u64>(r)), false;
    KvmSegment code{0, 0xFFFFFFFF, kBootCodeSelector, 11, 1, 0, 0, 1, 1, 1, 0, 0, 0};
    KvmSegment data{0, 0xFFFFFFFF, kBootDataSelector, 3, 1, 0, 1, 1, 0, 1, 0, 0, 0};
    sregs.cs = code;
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
    sregs.gdt.base = kGdtAddress;
    sregs.gdt.limit = sizeof(kGdt) - 1;
    sregs.cr3 = kPml4Address;
    sregs.cr4 = kCr4Pae;
    sregs.cr0 = kCr0ProtectedMode | kCr0ExtensionType | kCr0Paging;
    sregs.efer = kEferLongModeEnable | kEferLongModeActive;
    if (long r = sys_ioctl(m.vcpu, KVM_SET_SREGS, reinterpret_cast<u64>(&sregs)); r < 0)
        return fail("KVM_SET_SREGS returned", static_cast<u64>(r)), false;
    KvmRegs regs{};
    regs.rip = entry;
    regs.rsi = kBootParamsAddress;
    regs.rflags = kRflagsFixed;
    if (long r = sys_ioctl(m.vcpu, KVM_SET_REGS, reinterpret_cast<u64>(&regs)); r < 0)
        return fail("KVM_SET_REGS returned", static_cast<u64>(r)), false;
    return true;
}

// L2's console: lines of its serial output, each printed behind kL2LinePrefix.
struct Console {
    char line[256];
    usize length = 0;
    u64 ready_ms = 0;  // when L2's ready line came; 0: not yet
    u64 start_ms = 0;

    void flush() {
        if (!length) return;
        if (!ready_ms && starts_with(line, length, kL2ReadyLine)) ready_ms = now_ms();
        print(kL2LinePrefix);
        sys_write(1, line, length);
        print("\n");
        length = 0;
    }
    void put(u8 byte) {
        if (byte == '\r') return;
        if (byte == '\n') return flush();
        line[length++] = static_cast<char>(byte);
        if (length == sizeof(line)) flush();
    }
};

// A 16550A with its FIFOs, as far as Linux's 8250 driver looks: it takes every byte at once (the
// transmitter is always empty) and raises its interrupt while the transmitter-empty interrupt is
// enabled and not yet acknowledged by a read of IIR, as the chip does.
struct Uart {
    u8 registers[kComPorts] = {};
    u8 divisor_high = 0;
    u8 divisor_low = 0;
    bool transmitter_empty_pending = false;
    bool line_raised = false;
    u64 bytes = 0;
    u64 interrupts = 0;

    bool divisor_latch() const { return registers[uart::line_control] & uart::kLcrDivisorLatch; }
    bool interrupt_pending() const {
        return (registers[uart::interrupt_enable] & uart::kIerTransmitterEmpty) && transmitter_empty_pending;
    }

    u8 read(u16 offset) {
        switch (offset) {
        case uart::data: return divisor_latch() ? divisor_low : 0;
        case uart::interrupt_enable: return divisor_latch() ? divisor_high : registers[offset];
        case uart::interrupt_id: {
            u8 fifos = (registers[uart::interrupt_id] & uart::kFcrEnableFifo) ? uart::kIirFifosEnabled : 0;
            if (!interrupt_pending()) return fifos | uart::kIirNoInterrupt;
            transmitter_empty_pending = false;
            return fifos | uart::kIirTransmitterEmpty;
        }
        case uart::line_status: return uart::kLsrTransmitterIdle;
        case uart::modem_status: return uart::kMsrCarrierDsrCts;
        default: return registers[offset];
        }
    }

    void write(u16 offset, u8 value, Console& console) {
        if (offset == uart::data && divisor_latch()) {
            divisor_low = value;
        } else if (offset == uart::data) {
            console.put(value);
            ++bytes;
            transmitter_empty_pending = true;
        } else if (offset == uart::interrupt_enable && divisor_latch()) {
            divisor_high = value;
        } else {
            if (offset == uart::interrupt_enable && (value & uart::kIerTransmitterEmpty))
                transmitter_empty_pending = true;
            registers[offset] = value;
        }
    }

    // The interrupt line follows interrupt_pending(); KVM's PIC and I/O APIC take its edges.
    bool update_line(int vm) {
        bool level = interrupt_pending();
        if (level == line_raised) return true;
        KvmIrqLevel irq{kComIrq, level ? 1u : 0u};
        if (long r = sys_ioctl(vm, KVM_IRQ_LINE, reinterpret_cast<u64>(&irq)); r < 0)
            return fail("KVM_IRQ_LINE returned", static_cast<u64>(r)), false;
        line_raised = level;
        interrupts += level ? 1 : 0;
        return true;
    }
};

struct Cmos {
    u8 registers[kCmosIndexMask + 1] = {};
    u8 index = 0;
    Cmos() {
        for (const auto& d : kCmosDefaults) registers[d.index] = d.value;
    }
};

// How many exits came to this program, in all and by port (the first few ports seen).
struct ExitCounts {
    static constexpr usize kPortSlots = 12;
    u64 total = 0;
    u64 mmio = 0;
    u16 ports[kPortSlots] = {};
    u64 port_exits[kPortSlots] = {};
    usize ports_seen = 0;
    u64 other_ports = 0;

    void count_port(u16 port) {
        for (usize i = 0; i < ports_seen; ++i)
            if (ports[i] == port) return void(++port_exits[i]);
        if (ports_seen == kPortSlots) return void(++other_ports);
        ports[ports_seen] = port;
        port_exits[ports_seen++] = 1;
    }
    void print_summary() const {
        print("KVM-BOOT-LINUX: exits to the client: ");
        print_decimal(total);
        print(" (MMIO ");
        print_decimal(mmio);
        for (usize i = 0; i < ports_seen; ++i) {
            print(", port ");
            print_hex(ports[i]);
            print(" ");
            print_decimal(port_exits[i]);
        }
        if (other_ports) print(", other ports "), print_decimal(other_ports);
        print(")\n");
    }
};

enum class Ending { running, shutdown, keyboard_reset, failed };

Ending handle_io(const Machine& m, Uart& uart, Cmos& cmos, Console& console) {
    const auto& io = m.run->io;
    u8* data = reinterpret_cast<u8*>(m.run) + io.data_offset;
    for (u32 i = 0; i < io.count; ++i, data += io.size) {
        bool com = io.port >= kComPort && io.port < kComPort + kComPorts;
        if (io.direction == KVM_EXIT_IO_OUT) {
            if (com) uart.write(static_cast<u16>(io.port - kComPort), data[0], console);
            if (io.port == kCmosIndexPort) cmos.index = data[0] & kCmosIndexMask;
            if (io.port == kKeyboardCommandPort && data[0] == kKeyboardPulseReset) return Ending::keyboard_reset;
        } else {
            for (u8 b = 0; b < io.size; ++b) data[b] = 0xFF;
            if (com) data[0] = uart.read(static_cast<u16>(io.port - kComPort));
            if (io.port == kCmosDataPort) data[0] = cmos.registers[cmos.index];
        }
    }
    return uart.update_line(m.vm) ? Ending::running : Ending::failed;
}

// KVM's own counts of L2's exits, those it handles in L1's kernel included (its statistics in
// debugfs, which the init mounts; the sums over every VM, and this is the only one).
constexpr const char* kKvmStatistics[] = {"exits",          "io_exits", "irq_exits", "halt_exits",
                                          "irq_injections", "pf_fixed", "pages_4k",  "pages_2m"};

void print_kvm_statistics() {
    print("KVM-BOOT-LINUX: KVM's counts:");
    for (const char* name : kKvmStatistics) {
        char path[64] = "/sys/kernel/debug/kvm/";
        usize at = length_of(path);
        for (usize i = 0; name[i] && at + 1 < sizeof(path); ++i) path[at++] = name[i];
        path[at] = 0;
        int fd = sys_open(path, kOpenReadOnly | kOpenCloseOnExec);
        char value[24];
        long bytes = fd < 0 ? fd : sys_read(fd, value, sizeof(value));  // debugfs cannot pread
        if (fd >= 0) sys_close(fd);
        if (bytes <= 1) {
            print(" ");
            print(name);
            print(" unreadable ");
            print_hex(static_cast<u64>(bytes));
            continue;
        }
        print(" ");
        print(name);
        print(" ");
        sys_write(1, value, static_cast<usize>(bytes - 1));  // without its newline
    }
    print("\n");
}

void print_progress(const Machine& m, u64 elapsed_ms, const Uart& uart, const ExitCounts& exits) {
    KvmRegs regs{};
    sys_ioctl(m.vcpu, KVM_GET_REGS, reinterpret_cast<u64>(&regs));
    print("KVM-BOOT-LINUX: L2 runs for ");
    print_decimal(elapsed_ms / 1000);
    print(" s: RIP ");
    print_hex(regs.rip);
    print(", ");
    print_decimal(exits.total);
    print(" exits to the client, ");
    print_decimal(uart.bytes);
    print(" serial bytes\n");
    exits.print_summary();
    print_kvm_statistics();
}

// Runs L2 until it ends, fails or runs out of time.
Ending run_l2(const Machine& m, Console& console, Uart& uart, Cmos& cmos, ExitCounts& exits) {
    for (;;) {
        long r = sys_ioctl(m.vcpu, KVM_RUN, 0);
        if (progress_due) {
            progress_due = false;
            u64 elapsed_ms = now_ms() - console.start_ms;
            if (elapsed_ms >= kTimeLimitMs) return fail("L2 did not end within ms:", kTimeLimitMs), Ending::failed;
            print_progress(m, elapsed_ms, uart, exits);
            sys_alarm(kProgressSeconds);
        }
        if (r == kErrorInterrupted) continue;
        if (r < 0) return fail("KVM_RUN returned", static_cast<u64>(r)), Ending::failed;
        ++exits.total;
        switch (m.run->exit_reason) {
        case KVM_EXIT_IO: {
            exits.count_port(m.run->io.port);
            Ending ending = handle_io(m, uart, cmos, console);
            if (ending != Ending::running) return ending;
            break;
        }
        case KVM_EXIT_MMIO:
            ++exits.mmio;
            if (!m.run->mmio.is_write)
                for (u8& byte : m.run->mmio.data) byte = 0xFF;
            break;
        case KVM_EXIT_SHUTDOWN: return Ending::shutdown;
        case KVM_EXIT_INTR: break;
        case KVM_EXIT_FAIL_ENTRY:
            return fail("KVM_EXIT_FAIL_ENTRY, reason", m.run->fail_entry.hardware_entry_failure_reason), Ending::failed;
        case KVM_EXIT_INTERNAL_ERROR:
            return fail("KVM_EXIT_INTERNAL_ERROR, suberror", m.run->internal.suberror), Ending::failed;
        default: return fail("unexpected exit reason", m.run->exit_reason), Ending::failed;
        }
    }
}

int boot_linux(const char* kernel_path, const char* initrd_path, const char* cmdline) {
    File image, initrd;
    if (!map_file(kernel_path, image) || !map_file(initrd_path, initrd)) return 1;
    int kvm = sys_open("/dev/kvm", kOpenReadWrite | kOpenCloseOnExec);
    if (kvm < 0) return fail("open /dev/kvm returned", static_cast<u64>(kvm)), 1;
    Machine m;
    if (!create_machine(kvm, m) || !set_cpuid(kvm, m)) return 1;
    u64 entry = load_linux(m, image, initrd, cmdline);
    if (!entry || !enter_long_mode(m, entry)) return 1;
    KernelSigaction action{on_alarm, kSaRestorer, kvm_boot_linux_restorer, 0};
    if (long r = sys_rt_sigaction(kSigAlarm, &action); r < 0)
        return fail("rt_sigaction returned", static_cast<u64>(r)), 1;
    print("KVM-BOOT-LINUX: booting ");
    print(kernel_path);
    print(" as L2 (");
    print_decimal(kL2MemoryBytes >> 20);
    print(" MiB, entry ");
    print_hex(entry);
    print("), its command line:\n");
    print(cmdline);
    print("\n");

    Console console;
    Uart uart;
    Cmos cmos;
    ExitCounts exits;
    console.start_ms = now_ms();
    sys_alarm(kProgressSeconds);
    Ending ending = run_l2(m, console, uart, cmos, exits);
    sys_alarm(0);
    u64 end_ms = now_ms();
    console.flush();
    exits.print_summary();
    print_kvm_statistics();
    print("KVM-BOOT-LINUX: serial: ");
    print_decimal(uart.bytes);
    print(" bytes, ");
    print_decimal(uart.interrupts);
    print(" interrupts\n");
    if (ending == Ending::failed) return 1;
    if (!console.ready_ms) return fail("L2 ended before its ready line, after ms:", end_ms - console.start_ms), 1;
    print("KVM-BOOT-LINUX: PASS l2_linux: ready after ");
    print_decimal(console.ready_ms - console.start_ms);
    print(" ms, ended (");
    print(ending == Ending::shutdown ? "shutdown" : "keyboard controller reset");
    print(") after ");
    print_decimal(end_ms - console.start_ms);
    print(" ms\n");
    return 0;
}

int run(int argc, char** argv) {
    if (argc < 3 || argc > 4) {
        print("usage: kvm-boot-linux BZIMAGE INITRAMFS [CMDLINE]\n");
        return 2;
    }
    return boot_linux(argv[1], argv[2], argc == 4 ? argv[3] : kDefaultCmdline);
}

}  // namespace

int program_main(int argc, char** argv) { return run(argc, argv); }
