// A PC domain with more RAM than fits below the PC's hole (kPcLowRamEnd, 3 GiB): its multiboot
// memory map shows RAM up to 3 GiB and the rest from 4 GiB, its CMOS says the same, the RAM above
// 4 GiB holds what is written there, and the I/O APIC and local APIC in the hole still answer.
// The manifest gives it 3 GiB + 64 MiB. Ends through ACPI S5.
#include "nestor/guest.hpp"

using namespace nestor::guest;

namespace {

constexpr u64 kMiB = 1024 * 1024;
constexpr u64 kLowRamEnd = 0xC0000000;
constexpr u64 kHighRamBase = u64{1} << 32;
constexpr u64 kHighRamBytes = 64 * kMiB;
constexpr u64 kIoApicBase = 0xFEC00000, kLocalApicBase = 0xFEE00000;
constexpr u32 kLocalApicVersion = 0x30;
constexpr u16 kCmosIndex = 0x70, kCmosData = 0x71;
constexpr u8 kCmosAbove4g = 0x5B;  // three bytes of 64 KiB units
constexpr u16 kPmControl = 0x604;
constexpr u16 kSleepS5 = (5u << 10) | (1u << 13);  // SLP_TYP 5, SLP_EN
constexpr u64 kLargePageBytes = 2 * kMiB;
constexpr u64 kPresentWritable = 0x3, kLargePage = 0x80;
constexpr u64 kAddressMask = 0x000FFFFFFFFFF000;

// A page directory of 2 MiB pages for the GiB from 4 GiB (the SDK maps the first 4 GiB).
alignas(4096) u64 high_directory[512];

u64 read_cr3() {
    u64 value;
    asm volatile("mov %%cr3, %0" : "=r"(value));
    return value;
}

void map_high_ram() {
    for (u64 i = 0; i < kHighRamBytes / kLargePageBytes; ++i)
        high_directory[i] = (kHighRamBase + i * kLargePageBytes) | kPresentWritable | kLargePage;
    auto* pml4 = reinterpret_cast<u64*>(read_cr3() & kAddressMask);
    auto* pdpt = reinterpret_cast<u64*>(pml4[0] & kAddressMask);
    pdpt[kHighRamBase >> 30] = reinterpret_cast<u64>(high_directory) | kPresentWritable;
    asm volatile("mov %0, %%cr3" ::"r"(read_cr3()) : "memory");
}

const MemoryRange* usable_range_at(u64 base) {
    const BootInfo& boot = boot_info();
    for (u32 i = 0; i < boot.memory_range_count; ++i)
        if (boot.memory_ranges[i].base == base && boot.memory_ranges[i].usable()) return &boot.memory_ranges[i];
    return nullptr;
}

bool hole_has_no_ram() {
    const BootInfo& boot = boot_info();
    for (u32 i = 0; i < boot.memory_range_count; ++i) {
        const MemoryRange& r = boot.memory_ranges[i];
        if (r.usable() && r.base < kHighRamBase && r.base + r.length > kLowRamEnd) return false;
    }
    return true;
}

void check_memory_map() {
    const MemoryRange* low = usable_range_at(0x100000);
    check(low != nullptr && low->base + low->length == kLowRamEnd, "memory map: RAM from 1 MiB to 3 GiB");
    const MemoryRange* high = usable_range_at(kHighRamBase);
    check(high != nullptr && high->length == kHighRamBytes, "memory map: 64 MiB of RAM from 4 GiB");
    check(hole_has_no_ram(), "memory map: no RAM between 3 GiB and 4 GiB");
    u32 above = 0;
    for (u8 i = 0; i < 3; ++i) {
        outb(kCmosIndex, static_cast<u8>(kCmosAbove4g + i));
        above |= u32{inb(kCmosData)} << (8 * i);
    }
    check(above == kHighRamBytes / (64 * 1024), "CMOS: 64 MiB above 4 GiB");
}

// Every 4 KiB page of the RAM above 4 GiB, and the last bytes below 3 GiB, hold what was written.
void check_ram() {
    map_high_ram();
    constexpr u64 kStride = 4096;
    auto pattern = [](u64 address) { return address * 0x9E3779B97F4A7C15ull ^ 0x5A5A5A5A5A5A5A5Aull; };
    for (u64 a = kHighRamBase; a < kHighRamBase + kHighRamBytes; a += kStride)
        *reinterpret_cast<volatile u64*>(a) = pattern(a);
    const u64 last = kHighRamBase + kHighRamBytes - 8;
    *reinterpret_cast<volatile u64*>(last) = pattern(last);
    u64 wrong = 0;
    for (u64 a = kHighRamBase; a < kHighRamBase + kHighRamBytes; a += kStride)
        if (*reinterpret_cast<volatile u64*>(a) != pattern(a)) ++wrong;
    if (*reinterpret_cast<volatile u64*>(last) != pattern(last)) ++wrong;
    check(wrong == 0, "RAM above 4 GiB reads back what was written");
    // Low RAM below the hole is different memory from the high RAM.
    const u64 top = kLowRamEnd - 8;
    *reinterpret_cast<volatile u64*>(top) = pattern(top);
    check(*reinterpret_cast<volatile u64*>(top) == pattern(top) &&
              *reinterpret_cast<volatile u64*>(kHighRamBase) == pattern(kHighRamBase),
          "the last bytes below 3 GiB are RAM of their own");
}

void check_apics() {
    volatile u32* io_apic = reinterpret_cast<volatile u32*>(kIoApicBase);
    io_apic[0] = 1;  // IOREGSEL: the version register
    check((io_apic[4] & 0xFF) == 0x11, "I/O APIC at 0xFEC00000 answers (version 0x11)");
    volatile u32* local_apic = reinterpret_cast<volatile u32*>(kLocalApicBase + kLocalApicVersion);
    check((*local_apic & 0xFF) == 0x14, "local APIC at 0xFEE00000 answers (version 0x14)");
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    check_memory_map();
    check_ram();
    check_apics();
    if (check_summary() != 0) return 1;
    println("powering off through ACPI S5");
    outw(kPmControl, kSleepS5);
    println("still running after S5");
    return 2;
}
