// Two vCPUs of a PC sharing one physical CPU, as an SMP kernel brings up its second processor
// (`vcpus = 2`): the application processor spins on a flag in memory without an exit
// (pc_short_tick_ap.S) while the BSP, with a TSC-deadline tick much shorter than the scheduler's
// time slice (a kernel's 4 ms tick on a slow TSC), has work to finish before it sets that flag.
// Each tick's handler arms the next one, an exit: the BSP's own code must run between its ticks,
// not only its timer interrupts, so both vCPUs progress. Ends through ACPI S5.
#include "nestor/apic.hpp"
#include "nestor/guest.hpp"

using namespace nestor::guest;
using namespace nestor::guest::apic;

extern "C" const u8 pc_short_tick_ap_start[], pc_short_tick_ap_end[];
extern "C" const u32 pc_short_tick_arrived_offset, pc_short_tick_go_offset, pc_short_tick_done_offset;

namespace {

constexpr u64 kTrampoline = 0x70000;
constexpr u8 kStartupVector = kTrampoline >> 12;
constexpr u32 kCpuid1TscDeadline = 1u << 24;
constexpr u8 kTickVector = 0x30;
// A fifth of the kernel's default time slice (5'000'000 TSC ticks): a 4 ms tick at 1.25 GHz.
constexpr u64 kTickPeriod = 1'000'000;
// The BSP's work: this many iterations of its own code, over at least this many ticks.
constexpr u64 kWorkIterations = 1'000'000;
constexpr u32 kWorkTicks = 5;
constexpr u16 kPmControl = 0x604;
constexpr u16 kSleepS5 = (5u << 10) | (1u << 13);

volatile u32 ticks = 0;
u64 tsc_khz = 0;

void on_tick(u8) {
    ticks = ticks + 1;
    wrmsr(kMsrX2apicEoi, 0);
    wrmsr(kMsrTscDeadline, rdtsc() + kTickPeriod);
}

volatile u32& shared(u32 offset) { return *reinterpret_cast<volatile u32*>(kTrampoline + offset); }

// Spins until `value` is non-zero or `ms` milliseconds of TSC passed.
bool wait_for(volatile u32& value, u64 ms) {
    u64 start = rdtsc();
    while (value == 0)
        if (rdtsc() - start > ms * tsc_khz) return false;
    return true;
}

// The BSP's own work, interrupted by its ticks: iterations of plain code (no exits), until both
// enough of them and enough ticks have passed.
u64 work() {
    volatile u64 done = 0;
    while (done < kWorkIterations || ticks < kWorkTicks) done = done + 1;
    return done;
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    tsc_khz = cpuid(0x40000010).eax;
    check((cpuid(1).ecx & kCpuid1TscDeadline) != 0, "CPUID: TSC-deadline timer");
    wrmsr(kMsrApicBase, rdmsr(kMsrApicBase) | kApicBaseEnable | kApicBaseX2apic);
    wrmsr(kMsrX2apicSvr, kSvrEnabled);
    set_interrupt_handler(kTickVector, on_tick);

    u8* trampoline = reinterpret_cast<u8*>(kTrampoline);
    for (const u8* p = pc_short_tick_ap_start; p < pc_short_tick_ap_end; ++p) *trampoline++ = *p;
    send_ipi(1, kIcrInit | kIcrAssert);
    send_ipi(1, kIcrStartup | kIcrAssert | kStartupVector);
    send_ipi(1, kIcrStartup | kIcrAssert | kStartupVector);
    check(wait_for(shared(pc_short_tick_arrived_offset), 1000), "the application processor started and spins");

    wrmsr(kMsrX2apicLvtTimer, kLvtTimerTscDeadline | kTickVector);
    wrmsr(kMsrTscDeadline, rdtsc() + kTickPeriod);
    enable_interrupts();
    u64 start = rdtsc();
    u64 iterations = work();
    u64 took = rdtsc() - start;
    disable_interrupts();
    wrmsr(kMsrX2apicLvtTimer, kLvtMasked | kTickVector);
    println("tick: the BSP ran ", iterations, " iterations in ", took / 1000, "k TSC ticks, through ", ticks, " ticks");
    check(ticks >= kWorkTicks, "the BSP's tick interrupted its work");

    shared(pc_short_tick_go_offset) = 1;
    check(wait_for(shared(pc_short_tick_done_offset), 1000), "the spinning application processor saw the flag");
    if (check_summary() != 0) return 1;
    println("powering off through ACPI S5");
    outw(kPmControl, kSleepS5);
    return 2;
}
