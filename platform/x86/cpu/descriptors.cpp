#include "nestor/x86/descriptors.hpp"

#include "nestor/x86/local_apic.hpp"

namespace nestor::x86 {
namespace {

struct [[gnu::packed]] TaskStateSegment {
    u32 reserved0;
    u64 rsp[3];
    u64 reserved1;
    u64 ist[7];
    u64 reserved2;
    u16 reserved3;
    u16 io_map_base;
};
static_assert(sizeof(TaskStateSegment) == 104);

struct [[gnu::packed]] IdtEntry {
    u16 offset_low;
    u16 selector;
    u8 ist;
    u8 type_attributes;
    u16 offset_mid;
    u32 offset_high;
    u32 reserved;
};
static_assert(sizeof(IdtEntry) == 16);

struct [[gnu::packed]] DescriptorPointer {
    u16 limit;
    u64 base;
};

constexpr usize kEmergencyStackBytes = 8192;
alignas(16) u8 emergency_stack[kEmergencyStackBytes];
TaskStateSegment tss;
u64 gdt[5];
IdtEntry idt[256];

constexpr u64 kCode64 = 0x00AF9A000000FFFF;  // present, ring 0, code, long mode
constexpr u64 kData = 0x00CF92000000FFFF;    // present, ring 0, data, writable

void fill_tss_descriptor() {
    u64 base = reinterpret_cast<uptr>(&tss);
    u64 limit = sizeof(tss) - 1;
    gdt[3] = (limit & 0xFFFF) | ((base & 0xFFFFFF) << 16) | (0x89ull << 40) | (((limit >> 16) & 0xF) << 48) |
             (((base >> 24) & 0xFF) << 56);
    gdt[4] = base >> 32;
}

void set_gate(u8 vector, uptr handler, u8 ist) {
    IdtEntry& e = idt[vector];
    e.offset_low = static_cast<u16>(handler);
    e.selector = kKernelCode;
    e.ist = ist;
    e.type_attributes = 0x8E;  // present, ring 0, 64-bit interrupt gate
    e.offset_mid = static_cast<u16>(handler >> 16);
    e.offset_high = static_cast<u32>(handler >> 32);
    e.reserved = 0;
}

}  // namespace

extern "C" const uptr x86_exception_stubs[32];
extern "C" char x86_timer_interrupt_stub[], x86_spurious_interrupt_stub[];

void load_descriptors() {
    gdt[0] = 0;
    gdt[1] = kCode64;
    gdt[2] = kData;
    tss.ist[kEmergencyStackIst - 1] = reinterpret_cast<uptr>(emergency_stack + kEmergencyStackBytes);
    tss.io_map_base = sizeof(tss);  // no I/O permission bitmap
    fill_tss_descriptor();

    DescriptorPointer gdtr{sizeof(gdt) - 1, reinterpret_cast<uptr>(gdt)};
    asm volatile(
        "lgdt %0\n"
        "pushq %1\n"
        "leaq 1f(%%rip), %%rax\n"
        "pushq %%rax\n"
        "lretq\n"
        "1:\n"
        "mov %2, %%ds\n"
        "mov %2, %%es\n"
        "mov %2, %%ss\n"
        :
        : "m"(gdtr), "i"(kKernelCode), "r"(static_cast<u32>(kKernelData))
        : "rax", "memory");
    asm volatile("ltr %0" ::"r"(kTss));

    for (u8 vector = 0; vector < 32; ++vector) {
        bool emergency = vector == 2 || vector == 8;  // NMI, double fault
        set_gate(vector, x86_exception_stubs[vector], emergency ? kEmergencyStackIst : 0);
    }
    set_gate(lapic::kTimerVector, reinterpret_cast<uptr>(x86_timer_interrupt_stub), 0);
    set_gate(lapic::kSpuriousVector, reinterpret_cast<uptr>(x86_spurious_interrupt_stub), 0);
    DescriptorPointer idtr{sizeof(idt) - 1, reinterpret_cast<uptr>(idt)};
    asm volatile("lidt %0" ::"m"(idtr));
}

}  // namespace nestor::x86
