// Hostile guests of the PC platform (tests/boot/pc_hostile.cmake), one case per domain, named by
// a word of its command line:
//   fuzz        seeded random values ("seed=N") to every port, every offset of the local APIC and
//               I/O APIC pages and every MSR of the platform, then a report and exit 0;
//   ipistorm    self IPIs and IPIs to all but itself in tight loops, interrupts enabled;
//   timerstorm  a periodic local APIC timer at its shortest period (count 1, divide 1) for a
//               fixed TSC window, with a handler that EOIs;
//   noeoi       the timer's interrupt taken and never EOIed, then HLT with interrupts on: only an
//               interrupt of a higher priority class may arrive until the EOI;
//   initstorm   INIT-SIPI-SIPI to its application processor (`vcpus = 2`) again and again, each
//               start waited for (pc_init_storm_trampoline.S).
// The kernel must survive each, and the healthy domain beside it must finish.
#include "hostile.hpp"
#include "nestor/apic.hpp"

using namespace nestor::guest;
using namespace nestor::guest::apic;

namespace {

constexpr u64 kPageBytes = 4096;

volatile u32 taken[256];
bool x2apic = false;

volatile u32& xapic(u32 offset) { return *reinterpret_cast<volatile u32*>(kXapicBase + offset); }

void end_of_interrupt() {
    if (x2apic)
        wrmsr(kMsrX2apicEoi, 0);
    else
        xapic(kXapicEoi) = 0;
}

void count_and_eoi(u8 vector) {
    taken[vector] = taken[vector] + 1;
    end_of_interrupt();
}

void switch_to_x2apic() {
    wrmsr(kMsrApicBase, rdmsr(kMsrApicBase) | kApicBaseX2apic);
    x2apic = true;
}

u64 tsc_khz() { return cpuid(0x40000010).eax; }

void send_xapic(u32 icr_low) {
    xapic(kXapicIcrHigh) = 0;
    xapic(kXapicIcrLow) = icr_low;
}

bool vector_set(u32 bank, u8 vector) { return (xapic(bank + 0x10 * (vector / 32)) >> (vector % 32)) & 1; }

const char* yes_no(bool value) { return value ? "yes" : "no"; }

// ---- fuzz -------------------------------------------------------------------------------------

// splitmix64: one seed printed in the log reproduces the whole run.
class Random {
public:
    explicit Random(u64 seed) : state_(seed) {}

    u64 next() {
        u64 z = (state_ += 0x9E3779B97F4A7C15);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
        return z ^ (z >> 31);
    }

    // Uniform values rarely hit a register's meaningful encodings; a mix of shapes does: all
    // bits random, a byte, a few bits, one bit, all ones, zero.
    u64 value() {
        u64 r = next();
        switch (next() % 8) {
        case 0: return r & 0xFF;
        case 1: return r & next() & next();
        case 2: return u64{1} << (r % 64);
        case 3: return ~u64{0};
        case 4: return 0;
        default: return r;
        }
    }

private:
    u64 state_;
};

struct PortRange {
    u16 first;
    u16 count;
};

// Every port of the PC platform (docs/platform.md).
constexpr PortRange kPorts[] = {{0x20, 2}, {0x40, 4}, {0x60, 1},  {0x61, 1},  {0x64, 1},   {0x70, 2}, {0x80, 1},
                                {0x92, 1}, {0xA0, 2}, {0x3F8, 8}, {0x4D0, 2}, {0x600, 12}, {0xCF8, 8}};
constexpr u32 kPortRounds = 16;

struct MsrRange {
    u32 first;
    u32 count;
};

// Every MSR of the PC platform: the local APIC's and the MSR file's ranges (docs/msrs.md).
constexpr MsrRange kMsrs[] = {{kMsrApicBase, 1}, {kMsrTscDeadline, 1}, {kMsrX2apicFirst, kMsrX2apicCount},
                              {0x10, 8},         {0x3B, 0x174 - 0x3B}, {0x179, 0x277 - 0x179},
                              {0x2FF, 1},        {0x400, 0x80},        {0xC0010010, 0x11},
                              {0xC0010140, 2},   {0xC0011022, 0xB}};
constexpr u32 kMsrWrites = 4;

// Values that would end or freeze this guest rather than test the platform are avoided. A reset
// (0x64 pulse commands with bit 0 clear, 0x92 bit 0, a byte to 0xCF9 with bit 2), ACPI S5 (SLP_EN
// with SLP_TYP 5 in PM1a_CNT's high byte at 0x605) and INIT to itself (delivery mode 5 in the ICR;
// the bootstrap processor would restart at the reset vector, where there is no firmware) are
// drawn again. An I/O APIC entry asking for INIT or NMI is made a fixed one: a periodic source
// (the PIT) routed as NMI could take every cycle the guest has. NMIs from the ICR are counted.
bool port_byte_ends_guest(u16 port, u8 byte) {
    switch (port) {
    case 0x64: return (byte & 0xF0) == 0xF0 && (byte & 1) == 0;
    case 0x92: return (byte & 1) != 0;
    case 0x605: return (byte & 0x20) != 0 && ((byte >> 2) & 7) == 5;
    default: return false;
    }
}

bool port_write_ends_guest(u16 port, u8 size, u32 value) {
    if (port == 0xCF9 && size == 1 && (value & 0x04)) return true;
    for (u8 i = 0; i < size; ++i)
        if (port_byte_ends_guest(static_cast<u16>(port + i), static_cast<u8>(value >> (8 * i)))) return true;
    return false;
}

bool mode_is(u64 low_word, u32 mode) { return ((low_word & kIcrMode) >> kIcrModeShift) == mode; }

// An xAPIC write whose bytes cover the ICR's delivery mode (bits 10:8 of offset 0x300).
bool apic_write_sends_init(u32 offset, u8 size, u64 value) {
    constexpr u32 kModeByte = kXapicIcrLow + 1;
    if (offset > kModeByte || offset + size <= kModeByte) return false;
    return mode_is(value >> (8 * (kModeByte - offset)), kModeInit);
}

// A value for IOWIN: whatever register it reaches, never an entry that sends INIT or NMI.
u64 io_apic_window_value(u64 value) {
    if (mode_is(value, kModeInit) || mode_is(value, kModeNmi)) value &= ~u64{kIcrMode};
    return value;
}

void port_write(u16 port, u8 size, u32 value) {
    if (size == 1) outb(port, static_cast<u8>(value));
    if (size == 2) outw(port, static_cast<u16>(value));
    if (size == 4) outl(port, value);
}

void port_read(u16 port, u8 size) {
    if (size == 1) (void)inb(port);
    if (size == 2) (void)inw(port);
    if (size == 4) (void)inl(port);
}

void mmio_write(u64 address, u8 size, u64 value) {
    switch (size) {
    case 1: *reinterpret_cast<volatile u8*>(address) = static_cast<u8>(value); break;
    case 2: *reinterpret_cast<volatile u16*>(address) = static_cast<u16>(value); break;
    case 4: *reinterpret_cast<volatile u32*>(address) = static_cast<u32>(value); break;
    default: *reinterpret_cast<volatile u64*>(address) = value; break;
    }
}

void mmio_read(u64 address, u8 size) {
    switch (size) {
    case 1: (void)*reinterpret_cast<volatile u8*>(address); break;
    case 2: (void)*reinterpret_cast<volatile u16*>(address); break;
    case 4: (void)*reinterpret_cast<volatile u32*>(address); break;
    default: (void)*reinterpret_cast<volatile u64*>(address); break;
    }
}

constexpr u8 kPortSizes[] = {1, 2, 4};
constexpr u8 kMmioSizes[] = {1, 2, 4, 8};

struct Fuzzer {
    Random random;
    u32 unexpected = 0;

    u32 port_value(u16 port, u8 size) {
        u32 value;
        do value = static_cast<u32>(random.value());
        while (port_write_ends_guest(port, size, value));
        return value;
    }

    u64 ports() {
        u64 writes = 0;
        for (const PortRange& range : kPorts)
            for (u16 port = range.first; port < range.first + range.count; ++port)
                for (u8 size : kPortSizes)
                    for (u32 round = 0; round < kPortRounds; ++round, ++writes) {
                        port_write(port, size, port_value(port, size));
                        port_read(port, size);
                    }
        return writes;
    }

    u64 apic_value(u32 offset, u8 size) {
        u64 value;
        do value = random.value();
        while (apic_write_sends_init(offset, size, value));
        return value;
    }

    // Every offset with every size, as far as the access stays inside the page.
    u64 apic_page() {
        u64 writes = 0;
        for (u8 size : kMmioSizes)
            for (u32 offset = 0; offset + size <= kPageBytes; ++offset, ++writes) {
                mmio_write(kXapicBase + offset, size, apic_value(offset, size));
                mmio_read(kXapicBase + offset, size);
            }
        return writes;
    }

    // The registers themselves take many values each (the page sweep gives each one).
    void apic_registers(u32 rounds) {
        for (u32 round = 0; round < rounds; ++round)
            for (u32 offset = 0; offset < 0x400; offset += 0x10) {
                xapic(offset) = static_cast<u32>(apic_value(offset, 4));
                (void)xapic(offset);
            }
    }

    u64 io_apic_page() {
        u64 writes = 0;
        for (u8 size : kMmioSizes)
            for (u32 offset = 0; offset + size <= kPageBytes; ++offset, ++writes) {
                u64 value = random.value();
                if (offset == kIoApicWindow) value = io_apic_window_value(value);
                mmio_write(kIoApicBase + offset, size, value);
                mmio_read(kIoApicBase + offset, size);
            }
        return writes;
    }

    // Through the index and data window: every index, several values each.
    void io_apic_registers(u32 rounds) {
        volatile u32& select = *reinterpret_cast<volatile u32*>(kIoApicBase);
        volatile u32& window = *reinterpret_cast<volatile u32*>(kIoApicBase + kIoApicWindow);
        for (u32 round = 0; round < rounds; ++round)
            for (u32 index = 0; index < 256; ++index) {
                select = index;
                (void)window;
                window = static_cast<u32>(io_apic_window_value(random.value()));
                (void)window;
            }
    }

    u64 msr_value(u32 index) {
        u64 value;
        do value = random.value();
        while (index == kMsrX2apicIcr && mode_is(value, kModeInit));
        return value;
    }

    // One read, then writes of random values each followed by a read; returns the #GPs.
    u64 msr(u32 index) {
        u64 faults = 0;
        auto count = [&](const ExceptionRecord& r) {
            if (!r.raised) return;
            if (r.vector == kVectorGP)
                ++faults;
            else
                ++unexpected;
        };
        count(try_run([&] { (void)rdmsr(index); }));
        for (u32 i = 0; i < kMsrWrites; ++i) {
            u64 value = msr_value(index);
            count(try_run([&] { wrmsr(index, value); }));
            count(try_run([&] { (void)rdmsr(index); }));
        }
        return faults;
    }

    u64 msrs(u32& tried) {
        u64 faults = 0;
        for (const MsrRange& range : kMsrs)
            for (u32 index = range.first; index - range.first < range.count; ++index, ++tried) faults += msr(index);
        return faults;
    }

    // From whatever the random writes left to x2APIC mode: disabled -> xAPIC -> x2APIC.
    bool force_x2apic() {
        ExceptionRecord r = try_run([] {
            u64 base = kXapicBase | kApicBaseBsp;
            if (!(rdmsr(kMsrApicBase) & kApicBaseX2apic)) wrmsr(kMsrApicBase, base | kApicBaseEnable);
            wrmsr(kMsrApicBase, base | kApicBaseEnable | kApicBaseX2apic);
        });
        return !r.raised;
    }

    u64 x2apic_msrs() {
        u64 faults = 0;
        for (u32 index = kMsrX2apicFirst; index < kMsrX2apicFirst + kMsrX2apicCount; ++index) faults += msr(index);
        return faults;
    }
};

// NMIs (ICR writes may send them) are counted instead of ending the guest: the NMI gate becomes a
// copy of the gate of an interrupt vector whose handler counts (interrupts stay disabled, so that
// vector itself never arrives).
constexpr u8 kNmiCountingVector = 0xFE;
volatile u32 nmis_taken = 0;

void count_nmi(u8) { nmis_taken = nmis_taken + 1; }

struct [[gnu::packed]] TablePointer {
    u16 limit;
    u64 base;
};

struct Gate {
    u64 low, high;
};

void count_nmis() {
    set_interrupt_handler(kNmiCountingVector, count_nmi);
    TablePointer idtr{};
    asm volatile("sidt %0" : "=m"(idtr));
    Gate* gates = reinterpret_cast<Gate*>(idtr.base);
    gates[2] = gates[kNmiCountingVector];
}

// The 16550A as the SDK set it up (sdk/guest/src/console.cpp), so that the report gets out.
void restore_console() {
    outb(0x3F9, 0x00);
    outb(0x3FB, 0x80);
    outb(0x3F8, 0x01);
    outb(0x3F9, 0x00);
    outb(0x3FB, 0x03);
    outb(0x3FA, 0xC7);
    outb(0x3FC, 0x03);
    print('\n');  // ends whatever line the random bytes to THR left open
}

int fuzz() {
    u64 seed = hostile::number_option("seed", 0x5EED);
    println("fuzz: seed ", hex(seed));
    count_nmis();
    disable_interrupts();
    send_xapic(kModeNmi << kIcrModeShift);  // physical destination 0: itself
    println("fuzz: an NMI to itself through the ICR: taken ", nmis_taken);
    Fuzzer f{Random(seed)};
    u64 port_writes = f.ports();
    restore_console();
    println("fuzz: ports: ", port_writes, " random writes, each followed by a read");
    println("fuzz: local APIC page: ", f.apic_page(), " writes at every offset, sizes 1, 2, 4 and 8");
    f.apic_registers(16);
    println("fuzz: local APIC registers: 16 values each");
    println("fuzz: I/O APIC page: ", f.io_apic_page(), " writes at every offset, sizes 1, 2, 4 and 8");
    f.io_apic_registers(8);
    println("fuzz: I/O APIC registers: 256 indices, 8 values each");
    u32 tried = 0;
    u64 faults = f.msrs(tried);
    println("fuzz: msrs: ", tried, " MSRs, ", tried * (1 + 2 * kMsrWrites), " accesses, ", faults, " #GP");
    bool x2 = f.force_x2apic();
    println("fuzz: x2APIC mode entered: ", yes_no(x2));
    u64 x2_faults = f.x2apic_msrs();
    println("fuzz: x2APIC msrs: ", kMsrX2apicCount, " MSRs, ", x2_faults, " #GP");
    println("fuzz: NMIs taken in all: ", nmis_taken);
    println("fuzz: exceptions other than #GP: ", f.unexpected);
    println("fuzz: still alive");
    return f.unexpected == 0 && x2 ? 0 : 1;
}

// ---- ipistorm ---------------------------------------------------------------------------------

constexpr u32 kStormIpis = 2000;
constexpr u8 kSelfVector = 0x40, kOthersVector = 0x41, kX2SelfVector = 0x42, kX2OthersVector = 0x43;

int ipi_storm() {
    const u8 vectors[] = {kSelfVector, kOthersVector, kX2SelfVector, kX2OthersVector};
    for (u8 v : vectors) set_interrupt_handler(v, count_and_eoi);
    xapic(kXapicSvr) = kSvrEnabled;
    enable_interrupts();
    for (u32 i = 0; i < kStormIpis; ++i) {
        send_xapic(kIcrSelf | kSelfVector);
        send_xapic(kIcrAllExcludingSelf | kOthersVector);
    }
    disable_interrupts();
    println("ipistorm: xAPIC: ", kStormIpis, " self IPIs, ", taken[kSelfVector], " taken, ", kStormIpis,
            " to all excluding self, ", taken[kOthersVector], " taken");
    switch_to_x2apic();
    enable_interrupts();
    for (u32 i = 0; i < kStormIpis; ++i) {
        wrmsr(kMsrX2apicSelfIpi, kX2SelfVector);
        wrmsr(kMsrX2apicIcr, kIcrAllExcludingSelf | kX2OthersVector);
    }
    disable_interrupts();
    println("ipistorm: x2APIC: ", kStormIpis, " self IPIs, ", taken[kX2SelfVector], " taken, ", kStormIpis,
            " to all excluding self, ", taken[kX2OthersVector], " taken");
    println("ipistorm: done");
    return 0;
}

// ---- timerstorm -------------------------------------------------------------------------------

constexpr u64 kStormMs = 100;
constexpr u8 kStormVector = 0x50;

int timer_storm() {
    set_interrupt_handler(kStormVector, count_and_eoi);
    xapic(kXapicSvr) = kSvrEnabled;
    xapic(kXapicDivide) = kDivideBy1;
    xapic(kXapicLvtTimer) = kStormVector | kLvtTimerPeriodic;
    u64 window = tsc_khz() * kStormMs;
    println("timerstorm: periodic timer, initial count 1, divide 1, for ", kStormMs, " ms of TSC");
    u64 loops = 0;
    u64 start = rdtsc();
    xapic(kXapicInitialCount) = 1;
    enable_interrupts();
    while (rdtsc() - start < window) {
        ++loops;
        pause();
    }
    disable_interrupts();
    xapic(kXapicLvtTimer) = kLvtMasked;
    xapic(kXapicInitialCount) = 0;
    u32 count = taken[kStormVector];
    println("timerstorm: ", count, " interrupts, ", loops, " turns of its own loop");
    println("timerstorm: interrupts taken: ", yes_no(count > 0), ", its own loop ran: ", yes_no(loops > 0));
    println("timerstorm: done");
    return 0;
}

// ---- noeoi --------------------------------------------------------------------------------------

constexpr u8 kHeldVector = 0x80, kLowVector = 0x40, kSameClassVector = 0x7F, kWakeVector = 0x90;
constexpr u32 kWakeUps = 5;
bool held_eoi_allowed = false;

void take_held(u8 vector) {
    taken[vector] = taken[vector] + 1;
    if (held_eoi_allowed) end_of_interrupt();
}

// Sleeps in HLT until `vector` has been taken `count` times, or a second of TSC passed.
bool halt_until(u8 vector, u32 count) {
    u64 start = rdtsc();
    while (taken[vector] < count) {
        if (rdtsc() - start > tsc_khz() * 1000) return false;
        asm volatile("sti; hlt; cli" ::: "memory");
    }
    return true;
}

// I/O APIC pin 2 (IRQ 0, the PIT) to `vector`, fixed, edge, APIC 0.
void route_pit(u8 vector, bool masked) {
    volatile u32& select = *reinterpret_cast<volatile u32*>(kIoApicBase);
    volatile u32& window = *reinterpret_cast<volatile u32*>(kIoApicBase + kIoApicWindow);
    select = kIoApicRedirectionTable + 2 * 2 + 1;
    window = 0;
    select = kIoApicRedirectionTable + 2 * 2;
    window = vector | (masked ? kEntryMasked : 0);
}

void start_pit_10ms() {
    constexpr u16 kCount = 11932;  // 10 ms at 1.193182 MHz
    outb(0x43, 0x34);              // channel 0, lobyte/hibyte, mode 2
    outb(0x40, kCount & 0xFF);
    outb(0x40, kCount >> 8);
}

int no_eoi() {
    set_interrupt_handler(kHeldVector, take_held);
    const u8 vectors[] = {kLowVector, kSameClassVector, kWakeVector};
    for (u8 v : vectors) set_interrupt_handler(v, count_and_eoi);
    xapic(kXapicSvr) = kSvrEnabled;
    xapic(kXapicDivide) = kDivideBy1;
    xapic(kXapicLvtTimer) = kHeldVector;  // one-shot
    xapic(kXapicInitialCount) = 100000;   // 100 us
    bool once = halt_until(kHeldVector, 1);
    println("noeoi: timer vector 0x80 taken once, not EOIed: ", yes_no(once),
            ", in service: ", yes_no(vector_set(kXapicIsr, kHeldVector)), ", PPR ", hex(xapic(kXapicPpr)));
    // What must now wait: the timer again (periodic, 1 ms), a self IPI in a lower class, one in
    // the class below 0x80's; the PIT's interrupt, in a higher class, wakes the guest.
    xapic(kXapicLvtTimer) = kHeldVector | kLvtTimerPeriodic;
    xapic(kXapicInitialCount) = 1000000;
    send_xapic(kIcrSelf | kLowVector);
    send_xapic(kIcrSelf | kSameClassVector);
    route_pit(kWakeVector, false);
    start_pit_10ms();
    bool woken = halt_until(kWakeVector, kWakeUps);
    route_pit(kWakeVector, true);
    xapic(kXapicLvtTimer) = kLvtMasked;
    xapic(kXapicInitialCount) = 0;
    println("noeoi: halted with interrupts on: woken ", kWakeUps, " times by 0x90 from the PIT: ", yes_no(woken));
    println("noeoi: while 0x80 was in service: 0x40 taken ", taken[kLowVector], ", 0x7f taken ",
            taken[kSameClassVector], ", 0x80 taken again ", taken[kHeldVector] - 1);
    println("noeoi: pending: 0x40 ", yes_no(vector_set(kXapicIrr, kLowVector)), ", 0x7f ",
            yes_no(vector_set(kXapicIrr, kSameClassVector)), ", 0x80 ", yes_no(vector_set(kXapicIrr, kHeldVector)));
    held_eoi_allowed = true;
    end_of_interrupt();
    enable_interrupts();
    for (u64 start = rdtsc(); !taken[kLowVector] && rdtsc() - start < tsc_khz() * 100;) pause();
    disable_interrupts();
    println("noeoi: after its EOI: 0x80 taken ", taken[kHeldVector], ", 0x7f taken ", taken[kSameClassVector],
            ", 0x40 taken ", taken[kLowVector], ", PPR ", hex(xapic(kXapicPpr)), ", TPR ", hex(xapic(kXapicTpr)));
    println("noeoi: done");
    return 0;
}

// ---- initstorm -------------------------------------------------------------------------------

extern "C" const u8 pc_init_storm_trampoline_start[], pc_init_storm_trampoline_end[];
extern "C" const u32 pc_init_storm_arrived_offset;

constexpr u32 kInitStormCycles = 300;
constexpr u64 kInitStormTrampoline = 0x70000;
constexpr u8 kArrivedVector = 0x51;

int init_storm() {
    set_interrupt_handler(kArrivedVector, count_and_eoi);
    xapic(kXapicSvr) = kSvrEnabled;
    u8* page = reinterpret_cast<u8*>(kInitStormTrampoline);
    for (const u8* p = pc_init_storm_trampoline_start; p < pc_init_storm_trampoline_end; ++p) *page++ = *p;
    const volatile u32& arrived =
        *reinterpret_cast<const volatile u32*>(kInitStormTrampoline + pc_init_storm_arrived_offset);
    const u32 startup = kIcrStartup | kIcrAssert | (kInitStormTrampoline >> 12);
    u32 cycles = 0;
    for (; cycles < kInitStormCycles; ++cycles) {
        xapic(kXapicIcrHigh) = 1u << 24;  // APIC 1
        xapic(kXapicIcrLow) = kIcrInit | kIcrAssert;
        xapic(kXapicIcrLow) = startup;
        xapic(kXapicIcrLow) = startup;
        if (!halt_until(kArrivedVector, cycles + 1)) break;
    }
    println("initstorm: ", cycles, " INIT-SIPI-SIPI cycles, ", arrived, " starts of application processor 1");
    println("initstorm: done");
    return 0;
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot* boot) {
    if (boot->cmdline_has("fuzz")) return fuzz();
    if (boot->cmdline_has("ipistorm")) return ipi_storm();
    if (boot->cmdline_has("timerstorm")) return timer_storm();
    if (boot->cmdline_has("noeoi")) return no_eoi();
    if (boot->cmdline_has("initstorm")) return init_storm();
    println("pc_hostile: no case on the command line");
    return 1;
}
