// An SMP guest of the PC platform (`vcpus = 4`): the BSP finds its processors in the MADT and
// CPUID, starts each application processor with INIT-SIPI-SIPI into a real-mode trampoline
// (pc_smp_trampoline.S), then pings each with an IPI and waits for its IPI back, timing the round
// trip in TSC ticks. Then INIT-SIPI-SIPI again, into a second copy of the trampoline: to an AP
// asleep with interrupts on, and to one parked with them off (an operating system taking a CPU
// offline and back): each must start again at the new vector and answer a ping there. Ends
// through ACPI S5 while the APs sleep.
#include "nestor/apic.hpp"
#include "nestor/guest.hpp"

using namespace nestor::guest;
using namespace nestor::guest::apic;

extern "C" const u8 pc_smp_trampoline_start[], pc_smp_trampoline_end[];
extern "C" const u32 pc_smp_arrived_offset, pc_smp_pings_offset, pc_smp_parked_offset;

namespace {

constexpr u64 kTrampoline = 0x70000, kSecondTrampoline = 0x71000;
constexpr u8 kStartupVector = kTrampoline >> 12, kSecondStartupVector = kSecondTrampoline >> 12;
constexpr u8 kPingVector = 0x40, kPongVector = 0x41, kParkVector = 0x42;
constexpr u16 kPmControl = 0x604;
constexpr u16 kSleepS5 = (5u << 10) | (1u << 13);

volatile u32 pongs = 0;
u64 tsc_khz = 0;

void on_pong(u8) {
    pongs = pongs + 1;
    wrmsr(kMsrX2apicEoi, 0);
}

volatile u32& shared(u32 offset, u64 page = kTrampoline) { return *reinterpret_cast<volatile u32*>(page + offset); }

void copy_trampoline(u64 to) {
    u8* page = reinterpret_cast<u8*>(to);
    for (const u8* p = pc_smp_trampoline_start; p < pc_smp_trampoline_end; ++p) *page++ = *p;
}

void init_sipi_sipi(u32 apic_id, u8 vector) {
    send_ipi(apic_id, kIcrInit | kIcrAssert);
    send_ipi(apic_id, kIcrStartup | kIcrAssert | vector);
    send_ipi(apic_id, kIcrStartup | kIcrAssert | vector);
}

// Spins (pausing) until `value` reaches `target` or `ms` milliseconds of TSC passed.
bool wait_until(volatile u32& value, u32 target, u64 ms) {
    u64 start = rdtsc();
    while (value < target)
        if (rdtsc() - start > ms * tsc_khz) return false;
    return true;
}

u32 madt_processors() {
    for (u64 a = 0xE0000; a < 0x100000; a += 16) {
        const u8* p = reinterpret_cast<const u8*>(a);
        if (p[0] != 'R' || p[1] != 'S' || p[2] != 'D' || p[3] != ' ') continue;
        const u8* xsdt = reinterpret_cast<const u8*>(*reinterpret_cast<const u64*>(p + 24));
        u32 entries = (*reinterpret_cast<const u32*>(xsdt + 4) - 36) / 8;
        for (u32 i = 0; i < entries; ++i) {
            const u8* t = reinterpret_cast<const u8*>(*reinterpret_cast<const u64*>(xsdt + 36 + u64{8} * i));
            if (t[0] != 'A' || t[1] != 'P' || t[2] != 'I' || t[3] != 'C') continue;
            u32 length = *reinterpret_cast<const u32*>(t + 4), cpus = 0;
            for (u32 at = 44; at + 2 <= length && t[at + 1] != 0; at += t[at + 1])
                if (t[at] == 0 && (t[at + 4] & 1)) ++cpus;
            return cpus;
        }
    }
    return 0;
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    tsc_khz = cpuid(0x40000010).eax;
    u32 cpus = madt_processors();
    println("smp: the MADT lists ", cpus, " processors");
    check(cpus == 4, "MADT: four processors");
    check(((cpuid(1).ebx >> 16) & 0xFF) >= 4, "CPUID: at least four logical processors in the package");
    check(cpuid(0xB, 1).ebx == 4, "CPUID 0xB: four processors at the core level");
    wrmsr(kMsrApicBase, rdmsr(kMsrApicBase) | kApicBaseEnable | kApicBaseX2apic);
    wrmsr(kMsrX2apicSvr, kSvrEnabled);
    check(rdmsr(kMsrX2apicId) == 0, "the BSP is APIC 0");
    set_interrupt_handler(kPongVector, on_pong);

    copy_trampoline(kTrampoline);
    volatile u32& arrived = shared(pc_smp_arrived_offset);
    volatile u32& pings = shared(pc_smp_pings_offset);
    for (u32 ap = 1; ap < 4; ++ap) init_sipi_sipi(ap, kStartupVector);
    bool all = wait_until(arrived, 3, 1000);
    println("smp: ", arrived, " application processors arrived");
    check(all, "INIT-SIPI-SIPI started three application processors");

    enable_interrupts();
    u64 total = 0;
    for (u32 ap = 1; ap < 4; ++ap) {
        u32 before = pongs;
        u64 start = rdtsc();
        send_ipi(ap, kPingVector);
        bool answered = wait_until(pongs, before + 1, 1000);
        total += rdtsc() - start;
        check(answered, "an IPI to an application processor and its IPI back");
    }
    check(pings == 3, "each application processor took one ping");
    println("smp: ping round trips took ", total / 3, " TSC ticks on average");

    // AP 1 sleeps in HLT with interrupts on; AP 2 is parked with them off.
    copy_trampoline(kSecondTrampoline);
    volatile u32& parked = shared(pc_smp_parked_offset);
    send_ipi(2, kParkVector);
    check(wait_until(parked, 1, 1000), "application processor 2 parked with interrupts off");
    volatile u32& arrived_again = shared(pc_smp_arrived_offset, kSecondTrampoline);
    volatile u32& pings_again = shared(pc_smp_pings_offset, kSecondTrampoline);
    init_sipi_sipi(1, kSecondStartupVector);
    init_sipi_sipi(2, kSecondStartupVector);
    bool both = wait_until(arrived_again, 2, 200);
    println("smp: ", arrived_again, " application processors started again");
    check(both, "INIT-SIPI-SIPI started a sleeping and a parked application processor again");
    for (u32 ap = 1; ap < 3; ++ap) {
        u32 before = pongs;
        send_ipi(ap, kPingVector);
        check(wait_until(pongs, before + 1, 1000), "an application processor started again answers a ping");
    }
    check(pings_again == 2, "each application processor started again took its ping in the new trampoline");
    disable_interrupts();
    if (check_summary() != 0) return 1;
    println("powering off through ACPI S5");
    outw(kPmControl, kSleepS5);
    return 2;
}
