// Round trips of the PC platform, timed by a PC domain (`platform = "pc"`, two vCPUs) with rdtsc
// as bench/guests/exit_bench.cpp does: an xAPIC MMIO read (the version register), an x2APIC EOI
// (WRMSR) with nothing in service and one in an interrupt handler (a self-IPI's vector in
// service: the EOI clears it), a TSC-deadline timer's interrupt (from the deadline to the
// handler's first RDTSC, halted meanwhile), and an IPI to the second vCPU and back (both halted
// between). Under QEMU
// -icount a TSC tick is one instruction, so the figures count the hypervisor's instructions (plus
// the guest's few). Prints "bench NAME TICKS" lines for bench/run-benchmarks.
#include "nestor/apic.hpp"
#include "nestor/guest.hpp"

using namespace nestor::guest;
using namespace nestor::guest::apic;

namespace {

constexpr u64 kIterations = 1000;
constexpr u8 kTimerVector = 0x30, kPingVector = 0x31, kPongVector = 0x32, kSelfVector = 0x33;
// Far enough ahead that the guest halts before the deadline: the row is the idle path's.
constexpr u64 kTimerLead = 50000;

template <typename F> u64 ticks_per_iteration(F body) {
    body();  // the first round trip warms what the hypervisor caches
    u64 start = rdtsc();
    for (u64 i = 0; i < kIterations; ++i) body();
    return (rdtsc() - start) / kIterations;
}

void end_of_interrupt() { wrmsr(kMsrX2apicEoi, 0); }

// With interrupts enabled only inside the HLT (STI's shadow covers it), so that an interrupt
// cannot slip in between the test and the halt.
void halt_once() { asm volatile("sti; hlt; cli" ::: "memory"); }

// ---- An EOI with a vector in service ---------------------------------------------------------

volatile u64 eoi_in_service_ticks = 0;
volatile u64 self_interrupts = 0;

void on_self_ipi(u8) {
    u64 start = rdtsc();
    end_of_interrupt();
    eoi_in_service_ticks = eoi_in_service_ticks + (rdtsc() - start);
    self_interrupts = self_interrupts + 1;
}

void self_interrupt() {
    u64 before = self_interrupts;
    wrmsr(kMsrX2apicSelfIpi, kSelfVector);
    while (self_interrupts == before) halt_once();
}

// The EOI alone, timed inside the handler, per interrupt (the first one warms up).
u64 eoi_in_service() {
    self_interrupt();
    eoi_in_service_ticks = 0;
    for (u64 i = 0; i < kIterations; ++i) self_interrupt();
    return eoi_in_service_ticks / kIterations;
}

// ---- The timer -------------------------------------------------------------------------------

volatile u64 timer_handler_tsc = 0;

void on_timer(u8) {
    timer_handler_tsc = rdtsc();
    end_of_interrupt();
}

u64 timer_latency() {
    timer_handler_tsc = 0;
    u64 deadline = rdtsc() + kTimerLead;
    wrmsr(kMsrTscDeadline, deadline);
    while (timer_handler_tsc == 0) halt_once();
    return timer_handler_tsc - deadline;
}

u64 timer_delivery_ticks() {
    set_interrupt_handler(kTimerVector, on_timer);
    wrmsr(kMsrX2apicLvtTimer, kTimerVector | kLvtTimerTscDeadline);
    (void)timer_latency();
    u64 total = 0;
    for (u64 i = 0; i < kIterations; ++i) total += timer_latency();
    return total / kIterations;
}

// ---- The second vCPU -----------------------------------------------------------------------------

// It starts in real mode at 0x10000 (SIPI vector 0x10) and goes straight to long mode with the
// bootstrap processor's paging, then to pc_bench_ap_main on a stack of its own. A macro: the
// trampoline's assembly needs it too.
#define PC_BENCH_TRAMPOLINE 0x10000
#define PC_BENCH_TEXT(x) #x
#define PC_BENCH_STRING(x) PC_BENCH_TEXT(x)
constexpr u64 kTrampolineAddress = PC_BENCH_TRAMPOLINE;
constexpr u8 kStartupVector = kTrampolineAddress >> 12;

struct [[gnu::packed]] TablePointer {
    u16 limit;
    u64 base;
};

// What the trampoline loads, written by the bootstrap processor into its copy (the layout of
// the data at pc_bench_trampoline_data).
struct [[gnu::packed]] TrampolineData {
    u32 cr4;
    u32 cr3;
    u32 efer;
    u32 cr0;
};

}  // namespace

extern "C" {
extern const u8 pc_bench_trampoline[], pc_bench_trampoline_data[], pc_bench_trampoline_end[];
alignas(16) u8 pc_bench_ap_stack[16384];
[[noreturn]] void pc_bench_ap_main();
}

// The trampoline: 16-bit code at CS = 0x1000, its data addressed from DS = CS.
asm(R"(
    .section .text.pc_bench_trampoline, "ax"
    .code16
    .global pc_bench_trampoline, pc_bench_trampoline_data, pc_bench_trampoline_end
pc_bench_trampoline:
    cli
    mov %cs, %ax
    mov %ax, %ds
    lgdtl trampoline_gdt_pointer - pc_bench_trampoline
    movl pc_bench_trampoline_data - pc_bench_trampoline, %eax
    mov %eax, %cr4
    movl pc_bench_trampoline_data + 4 - pc_bench_trampoline, %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx
    movl pc_bench_trampoline_data + 8 - pc_bench_trampoline, %eax
    xor %edx, %edx
    wrmsr
    movl pc_bench_trampoline_data + 12 - pc_bench_trampoline, %eax
    mov %eax, %cr0
    ljmpl *(trampoline_far_jump - pc_bench_trampoline)
    .balign 8
trampoline_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF
    .quad 0x00CF92000000FFFF
trampoline_gdt_pointer:
    .short 3 * 8 - 1
    .long )" PC_BENCH_STRING(PC_BENCH_TRAMPOLINE) R"( + trampoline_gdt - pc_bench_trampoline
trampoline_far_jump:
    .long trampoline_long_mode
    .short 0x08
pc_bench_trampoline_data:
    .skip 16
pc_bench_trampoline_end:

    .code64
trampoline_long_mode:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    lea pc_bench_ap_stack + 16384(%rip), %rsp
    xor %ebp, %ebp
    call pc_bench_ap_main
    .text
)");

namespace {

TablePointer bsp_idt;
volatile bool ap_running = false;
volatile u32 pongs = 0;

void on_ping(u8) {
    send_ipi(0, kPongVector);
    end_of_interrupt();
}

void on_pong(u8) {
    pongs = pongs + 1;
    end_of_interrupt();
}

u64 read_efer() { return rdmsr(0xC0000080); }

void copy_trampoline() {
    u8* to = reinterpret_cast<u8*>(kTrampolineAddress);
    for (const u8* from = pc_bench_trampoline; from < pc_bench_trampoline_end; ++from) *to++ = *from;
    TrampolineData data{static_cast<u32>(read_cr4()), static_cast<u32>(read_cr3()),
                        static_cast<u32>(read_efer() & ~u64{1u << 10}),  // LMA follows paging
                        static_cast<u32>(read_cr0())};
    auto* slot =
        reinterpret_cast<TrampolineData*>(kTrampolineAddress + (pc_bench_trampoline_data - pc_bench_trampoline));
    *slot = data;
}

// INIT, then the startup IPI twice, as the MP specification's sequence has it. It halts until the
// second vCPU says it runs (an IPI), or a second of TSC passed (the timer).
bool start_second_vcpu() {
    asm volatile("sidt %0" : "=m"(bsp_idt));
    copy_trampoline();
    send_ipi(1, kIcrInit | kIcrAssert);
    send_ipi(1, kIcrStartup | kStartupVector);
    send_ipi(1, kIcrStartup | kStartupVector);
    timer_handler_tsc = 0;
    wrmsr(kMsrTscDeadline, rdtsc() + cpuid(0x40000010).eax * u64{1000});
    while (!ap_running && timer_handler_tsc == 0) halt_once();
    wrmsr(kMsrTscDeadline, 0);
    return ap_running;
}

void ipi_roundtrip() {
    u32 before = pongs;
    send_ipi(1, kPingVector);
    while (pongs == before) halt_once();
}

}  // namespace

extern "C" [[noreturn]] void pc_bench_ap_main() {
    asm volatile("lidt %0" ::"m"(bsp_idt));
    enter_x2apic();
    ap_running = true;
    send_ipi(0, kPongVector);
    for (;;) halt_once();
}

namespace {

// bench/profile-pc traces Nestor through one row at a time: "profile-ROW" on the command line runs
// that row alone (its set-up and its 1001 round trips, the warm-up included), and
// "profile-ROW-setup" the set-up alone, so that the difference between the two traces is the
// round trips. ROW is mmio, eoi, eoi-in-service, timer or ipi. True if the command line asked for
// a profile.
bool profile_row(int& status) {
    const BootInfo& boot = boot_info();
    if (boot.cmdline_has("profile-mmio")) {
        (void)ticks_per_iteration([] { (void)*reinterpret_cast<volatile u32*>(kXapicBase + kXapicVersion); });
    } else if (boot.cmdline_has("profile-eoi-in-service") || boot.cmdline_has("profile-eoi-in-service-setup")) {
        // Each round trip is a self-IPI's: its WRMSR, the interrupt's delivery and the handler's EOI.
        enter_x2apic();
        set_interrupt_handler(kSelfVector, on_self_ipi);
        if (boot.cmdline_has("profile-eoi-in-service")) (void)eoi_in_service();
    } else if (boot.cmdline_has("profile-eoi") || boot.cmdline_has("profile-eoi-setup")) {
        enter_x2apic();
        if (boot.cmdline_has("profile-eoi")) (void)ticks_per_iteration([] { end_of_interrupt(); });
    } else if (boot.cmdline_has("profile-timer") || boot.cmdline_has("profile-timer-setup")) {
        enter_x2apic();
        set_interrupt_handler(kTimerVector, on_timer);
        wrmsr(kMsrX2apicLvtTimer, kTimerVector | kLvtTimerTscDeadline);
        if (boot.cmdline_has("profile-timer")) (void)timer_delivery_ticks();
    } else if (boot.cmdline_has("profile-ipi") || boot.cmdline_has("profile-ipi-setup")) {
        enter_x2apic();
        set_interrupt_handler(kTimerVector, on_timer);
        wrmsr(kMsrX2apicLvtTimer, kTimerVector | kLvtTimerTscDeadline);
        set_interrupt_handler(kPingVector, on_ping);
        set_interrupt_handler(kPongVector, on_pong);
        if (!start_second_vcpu()) status = 1;
        if (boot.cmdline_has("profile-ipi")) (void)ticks_per_iteration(ipi_roundtrip);
    } else if (!boot.cmdline_has("profile-mmio-setup")) {
        return false;
    }
    return true;
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    if (int status = 0; profile_row(status)) return status;
    // An xAPIC register read: the MMIO exit, its decode and the local APIC's answer.
    u64 mmio_ticks = ticks_per_iteration([] { (void)*reinterpret_cast<volatile u32*>(kXapicBase + kXapicVersion); });
    enter_x2apic();
    u64 eoi_ticks = ticks_per_iteration([] { end_of_interrupt(); });
    set_interrupt_handler(kSelfVector, on_self_ipi);
    u64 eoi_in_service_ticks_each = eoi_in_service();
    u64 timer_ticks = timer_delivery_ticks();
    println("bench xapic_mmio_read_roundtrip ", mmio_ticks);
    println("bench x2apic_eoi_roundtrip ", eoi_ticks);
    println("bench x2apic_eoi_in_service_roundtrip ", eoi_in_service_ticks_each);
    println("bench timer_interrupt_delivery ", timer_ticks);
    set_interrupt_handler(kPingVector, on_ping);
    set_interrupt_handler(kPongVector, on_pong);
    if (!start_second_vcpu()) {
        println("bench: the second vCPU did not start");
        return 1;
    }
    println("bench ipi_roundtrip ", ticks_per_iteration(ipi_roundtrip));
    return 0;
}
