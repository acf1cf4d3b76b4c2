// Edits its own (SDK-built) page tables to reach outside its memory. It can only ever name
// guest-physical addresses: an alias of 0x100000 (where the host kernel sits) shows this guest's
// own image, an alias of 0xb8000 (the host's VGA text buffer) this guest's own RAM; then an alias
// of cmdline "target=0x..." (default the host's local APIC, 0xfee00000), read or written
// ("access=read|write"), must stop the domain with a report naming that guest-physical address.
// "cr3=0x..." instead points CR3 itself at that address.
#include "hostile.hpp"

using namespace nestor::guest;

namespace {

constexpr u64 kPresentWritable = 0x3;
constexpr u64 kAddressMask = 0x000FFFFFFFFFF000;
constexpr u64 kAliasBase = 0x100000000;  // 4 GiB: PDPT entry 4, which the SDK leaves empty

alignas(4096) u64 alias_directory[512];
alignas(4096) u64 alias_table[512];

// Linear kAliasBase + slot * 4 KiB now maps guest-physical `gpa` (4 KiB page).
volatile u8* alias(u32 slot, u64 gpa) {
    alias_table[slot] = (gpa & kAddressMask) | kPresentWritable;
    u64 linear = kAliasBase + u64{slot} * 4096;
    asm volatile("invlpg (%0)" ::"r"(linear) : "memory");
    return reinterpret_cast<volatile u8*>(linear + (gpa & 0xFFF));
}

void install_alias_tables() {
    u64* pml4 = reinterpret_cast<u64*>(read_cr3() & kAddressMask);
    u64* pdpt = reinterpret_cast<u64*>(pml4[0] & kAddressMask);
    alias_directory[0] = reinterpret_cast<u64>(alias_table) | kPresentWritable;
    pdpt[4] = reinterpret_cast<u64>(alias_directory) | kPresentWritable;
    asm volatile("mov %%cr3, %%rax; mov %%rax, %%cr3" ::: "rax", "memory");
}

u32 read32(volatile u8* p) { return *reinterpret_cast<volatile u32*>(p); }

}  // namespace

extern "C" int guest_main(const nestor_guest_boot* boot) {
    u64 cr3_target = hostile::number_option("cr3", 0);
    if (cr3_target) {
        println("pagetables: loading CR3 with guest-physical ", hex(cr3_target));
        asm volatile("mov %0, %%cr3" ::"r"(cr3_target) : "memory");
        println("pagetables: still running with CR3 outside its memory");
        return 1;
    }
    install_alias_tables();

    // 0x100000: the host kernel's load address, and this guest's own image.
    volatile u8* image = alias(0, 0x100000);
    u32 own = *reinterpret_cast<volatile u32*>(0x100000);
    println("pagetables: linear ", hex(reinterpret_cast<u64>(image)), " -> 0x100000 reads ", hex(read32(image), 8),
            own == read32(image) ? ", this guest's own image" : ", NOT this guest's image");

    // 0xb8000: the VGA text buffer on the host, plain RAM of this guest here.
    auto* direct = reinterpret_cast<volatile u32*>(0xb8000);
    *direct = 0x6e657374;
    volatile u8* vga = alias(1, 0xb8000);
    println("pagetables: linear ", hex(reinterpret_cast<u64>(vga)), " -> 0xb8000 reads ", hex(read32(vga), 8),
            read32(vga) == 0x6e657374 ? ", this guest's own RAM" : ", NOT this guest's RAM");

    u64 target = hostile::number_option("target", 0xfee00000);
    char access[16];
    const char* what = boot->cmdline_value("access", access, sizeof(access));
    if (!what) what = "read";
    volatile u8* wild = alias(2, target);
    println("pagetables: ", what, " of linear ", hex(reinterpret_cast<u64>(wild)), " -> guest-physical ", hex(target));
    if (string_equal(what, "write")) {
        *reinterpret_cast<volatile u32*>(wild) = 0xdeadbeef;
        println("pagetables: the write went through");
    } else {
        println("pagetables: read ", hex(read32(wild), 8));
    }
    println("pagetables: still running: the access was not stopped");
    return 1;
}
