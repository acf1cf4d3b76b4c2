// The task priority of a PC's local APIC (`platform = "pc"`): CR8 is the TPR's priority class,
// in xAPIC mode (the TPR at offset 0x80 of the APIC's page) and in x2APIC mode (MSR 0x808), both
// ways; and an interrupt whose class is not above the TPR's waits in IRR, with interrupts enabled,
// until the guest lowers its TPR below that class (a MOV to CR8, or a TPR write), then arrives at
// once. A MOV to CR8 that leaves the TPR high enough lets nothing through. Ends through ACPI S5.
#include "nestor/apic.hpp"
#include "nestor/guest.hpp"

using namespace nestor::guest;
using namespace nestor::guest::apic;

namespace {

constexpr u16 kPmControl = 0x604;
constexpr u16 kSleepS5 = (5u << 10) | (1u << 13);  // SLP_TYP 5, SLP_EN
// Long enough for a pending interrupt that could be taken to be taken many times over.
constexpr u32 kSpins = 100000;

volatile u32 taken[256];
bool x2apic = false;

volatile u32& xapic(u32 offset) { return *reinterpret_cast<volatile u32*>(kXapicBase + offset); }

void on_interrupt(u8 vector) {
    taken[vector] = taken[vector] + 1;
    if (x2apic)
        wrmsr(kMsrX2apicEoi, 0);
    else
        xapic(kXapicEoi) = 0;
}

// With interrupts enabled around the MOV: what it lets through is taken right after it.
void write_cr8(u64 value) { asm volatile("sti; mov %0, %%cr8; nop; cli" ::"r"(value) : "memory"); }

// A while with interrupts enabled.
void spin_enabled() {
    asm volatile("sti" ::: "memory");
    for (u32 i = 0; i < kSpins; ++i) asm volatile("pause" ::: "memory");
    asm volatile("cli" ::: "memory");
}

bool in_irr(u8 vector) { return (xapic(kXapicIrr + vector / 32 * 16) >> (vector % 32)) & 1; }

void check_xapic() {
    xapic(kXapicSvr) = kSvrEnabled;
    write_cr8(5);
    check(xapic(kXapicTpr) == 0x50, "xAPIC: CR8 5 reads as TPR 0x50");
    xapic(kXapicTpr) = 0x73;
    check(read_cr8() == 7, "xAPIC: TPR 0x73 reads as CR8 7");
    check(xapic(kXapicTpr) == 0x73, "xAPIC: TPR keeps its low bits while CR8 is unchanged");

    write_cr8(4);
    xapic(kXapicIcrLow) = 0x45 | kIcrSelf;  // class 4: not above TPR's
    spin_enabled();
    check(taken[0x45] == 0, "xAPIC: an interrupt of class 4 waits while CR8 is 4");
    check(in_irr(0x45), "xAPIC: it waits in IRR");
    check(xapic(kXapicPpr) == 0x40, "xAPIC: PPR is TPR 0x40");
    write_cr8(6);
    write_cr8(4);
    spin_enabled();
    check(taken[0x45] == 0, "xAPIC: CR8 raised to 6 and back to 4 lets nothing through");
    write_cr8(3);
    check(taken[0x45] == 1, "xAPIC: CR8 lowered to 3, the interrupt arrives at once");
    check(!in_irr(0x45), "xAPIC: IRR empty once it was taken");
}

void check_x2apic() {
    wrmsr(kMsrApicBase, rdmsr(kMsrApicBase) | kApicBaseX2apic);
    x2apic = true;
    write_cr8(6);
    check(rdmsr(kMsrX2apicTpr) == 0x60, "x2APIC: CR8 6 reads as TPR 0x60");
    wrmsr(kMsrX2apicTpr, 0x25);
    check(read_cr8() == 2, "x2APIC: TPR 0x25 reads as CR8 2");
    check(rdmsr(kMsrX2apicTpr) == 0x25, "x2APIC: TPR keeps its low bits while CR8 is unchanged");

    // Held by CR8, let through by a TPR write.
    write_cr8(5);
    wrmsr(kMsrX2apicSelfIpi, 0x52);
    spin_enabled();
    check(taken[0x52] == 0, "x2APIC: an interrupt of class 5 waits while CR8 is 5");
    check(rdmsr(kMsrX2apicPpr) == 0x50, "x2APIC: PPR is TPR 0x50");
    asm volatile("sti" ::: "memory");
    wrmsr(kMsrX2apicTpr, 0x40);
    asm volatile("nop; cli" ::: "memory");
    check(taken[0x52] == 1, "x2APIC: TPR lowered to 0x40, the interrupt arrives at once");

    // Held by a TPR write, let through by CR8.
    wrmsr(kMsrX2apicTpr, 0x70);
    wrmsr(kMsrX2apicSelfIpi, 0x61);
    spin_enabled();
    write_cr8(6);
    spin_enabled();
    check(taken[0x61] == 0, "x2APIC: an interrupt of class 6 waits while CR8 is 7, then 6");
    write_cr8(5);
    check(taken[0x61] == 1, "x2APIC: CR8 lowered to 5, the interrupt arrives at once");
    check(read_cr8() == 5, "x2APIC: CR8 still 5");
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    const u8 vectors[] = {0x45, 0x52, 0x61};
    for (u8 v : vectors) set_interrupt_handler(v, on_interrupt);
    check_xapic();
    check_x2apic();
    if (check_summary() != 0) return 1;
    println("powering off through ACPI S5");
    outw(kPmControl, kSleepS5);
    println("still running after S5");
    return 2;
}
