// A guest of the PC platform (`platform = "pc"`) that drives each device as an operating system
// would and checks what it sees: the timing leaf, the local APIC's registers and its timer in
// periodic and TSC-deadline modes, x2APIC and a self IPI, the PIT (a calibration against the
// timing leaf, and its IRQ 0 through the I/O APIC), the 16550A's transmit interrupt on an edge-
// and on a level-triggered pin, the RTC, the ACPI tables, PCI configuration space with no device,
// an unknown MSR, and ACPI S5 to end.
#include "nestor/apic.hpp"
#include "nestor/guest.hpp"

using namespace nestor::guest;
using namespace nestor::guest::apic;

namespace {

constexpr u8 kTimerVector = 0x30, kSelfIpiVector = 0x31, kDeadlineVector = 0x32, kPitVector = 0x33,
             kSerialVector = 0x34, kLevelVector = 0x35;
constexpr u16 kPmControl = 0x604;
constexpr u16 kSleepS5 = (5u << 10) | (1u << 13);  // SLP_TYP 5, SLP_EN

volatile u32 counts[256];
volatile u64 last_tsc[256];
bool x2apic = false;

volatile u32& xapic(u32 offset) { return *reinterpret_cast<volatile u32*>(kXapicBase + offset); }

void end_of_interrupt() {
    if (x2apic)
        wrmsr(kMsrX2apicEoi, 0);
    else
        xapic(kXapicEoi) = 0;
}

void on_interrupt(u8 vector) {
    counts[vector] = counts[vector] + 1;
    last_tsc[vector] = rdtsc();
    end_of_interrupt();
}

// Sleeps in HLT until `vector` has been taken `count` times, or `tsc_limit` ticks passed.
bool wait_for(u8 vector, u32 count, u64 tsc_limit) {
    u64 start = rdtsc();
    while (counts[vector] < count) {
        if (rdtsc() - start > tsc_limit) return false;
        asm volatile("sti; hlt; cli" ::: "memory");
    }
    return true;
}

volatile u32* io_apic_select() { return reinterpret_cast<volatile u32*>(kIoApicBase); }
volatile u32* io_apic_window() { return reinterpret_cast<volatile u32*>(kIoApicBase + kIoApicWindow); }

// Fixed, physical, active high, to APIC 0; edge-triggered unless `level`.
void io_apic_route(u32 pin, u8 vector, bool masked, bool level = false) {
    *io_apic_select() = kIoApicRedirectionTable + 2 * pin + 1;
    *io_apic_window() = 0;
    *io_apic_select() = kIoApicRedirectionTable + 2 * pin;
    *io_apic_window() = vector | (masked ? kEntryMasked : 0) | (level ? kEntryLevel : 0);
}

u32 io_apic_entry(u32 pin) {
    *io_apic_select() = kIoApicRedirectionTable + 2 * pin;
    return *io_apic_window();
}

u64 tsc_khz = 0;

void check_timing_leaf() {
    CpuidResult max = cpuid(0x40000000);
    check(max.eax >= 0x40000010, "hypervisor leaves reach the timing leaf 0x40000010");
    CpuidResult timing = cpuid(0x40000010);
    tsc_khz = timing.eax;
    check(timing.eax != 0, "timing leaf: TSC kHz");
    check(timing.ebx == 1000000, "timing leaf: APIC timer at 1 GHz");
    check((cpuid(0x80000007).edx & (1u << 8)) != 0, "invariant TSC");
    check((cpuid(1).ecx & (1u << 21)) != 0, "CPUID offers x2APIC");
}

void check_xapic_timer() {
    check(xapic(kXapicId) >> 24 == 0, "xAPIC ID 0");
    check((xapic(kXapicVersion) & 0xFF) == 0x14, "xAPIC version 0x14");
    xapic(kXapicSvr) = kSvrEnabled;
    xapic(kXapicDivide) = 0xB;  // divide by 1
    xapic(kXapicLvtTimer) = kTimerVector | kLvtTimerPeriodic;
    xapic(kXapicInitialCount) = 1000000;  // 1 ms at 1 GHz
    u64 start = rdtsc();
    bool taken = wait_for(kTimerVector, 10, tsc_khz * 1000);
    u64 elapsed_us = (last_tsc[kTimerVector] - start) * 1000 / tsc_khz;
    xapic(kXapicLvtTimer) = kLvtMasked;
    check(taken, "periodic timer: 10 interrupts");
    println("periodic timer: 10 interrupts in ", elapsed_us / 1000, " ms");
    // Never faster than its period; slower only by what a loaded host's descheduling adds.
    check(elapsed_us >= 9000 && elapsed_us < 500000, "periodic timer: at its period, not faster");
}

void check_x2apic() {
    wrmsr(kMsrApicBase, rdmsr(kMsrApicBase) | kApicBaseX2apic);
    x2apic = true;
    check(rdmsr(kMsrX2apicId) == 0, "x2APIC ID 0");
    wrmsr(kMsrX2apicSelfIpi, kSelfIpiVector);
    check(wait_for(kSelfIpiVector, 1, tsc_khz * 100), "x2APIC self IPI taken");
    wrmsr(kMsrX2apicLvtTimer, kDeadlineVector | kLvtTimerTscDeadline);
    u64 deadline = rdtsc() + tsc_khz;  // 1 ms
    wrmsr(kMsrTscDeadline, deadline);
    check(wait_for(kDeadlineVector, 1, tsc_khz * 1000), "TSC-deadline timer fired");
    check(last_tsc[kDeadlineVector] >= deadline, "TSC-deadline timer not before its deadline");
}

// One calibration: TSC ticks over 10 ms of the PIT, from midpoint to midpoint of the TSC reads
// that bound the count's start and the rise of OUT, and how far apart those reads are (a host
// that deschedules the emulator at either instant spreads them).
struct Calibration {
    u64 khz;
    u64 spread;
};

Calibration pit_calibration() {
    constexpr u16 kCount = 11932;  // 10 ms
    u8 control = inb(0x61);
    outb(0x61, static_cast<u8>((control & ~0x02) | 0x01));
    outb(0x43, 0xB0);  // channel 2, lobyte/hibyte, mode 0
    outb(0x42, kCount & 0xFF);
    u64 start_before = rdtsc();
    outb(0x42, kCount >> 8);  // the count starts with its high byte
    u64 start_after = rdtsc();
    u64 low_read = start_after, read_begin = 0, read_end = 0;
    for (;;) {
        read_begin = rdtsc();
        bool out = (inb(0x61) & 0x20) != 0;
        read_end = rdtsc();
        if (out) break;
        low_read = read_begin;
    }
    outb(0x61, control);
    u64 elapsed = (low_read + read_end) / 2 - (start_before + start_after) / 2;
    return {elapsed * 1193182 / (u64{kCount} * 1000), (start_after - start_before) + (read_end - low_read)};
}

// The tightest of up to eight calibrations, done once one's reads lie within 0.4% of it.
u64 pit_calibrated_khz() {
    Calibration best{0, ~u64{0}};
    for (int i = 0; i < 8; ++i) {
        Calibration c = pit_calibration();
        if (c.spread < best.spread) best = c;
        if ((best.spread << 8) < best.khz * 10) break;  // 10 ms of ticks at khz
    }
    return best.khz;
}

void check_pit() {
    u64 khz = pit_calibrated_khz();
    u64 difference = khz > tsc_khz ? khz - tsc_khz : tsc_khz - khz;
    println("pit: calibrated ", khz * 100 / tsc_khz, "% of the timing leaf");
    check(difference * 50 < tsc_khz, "PIT calibration agrees with the timing leaf within 2%");
    io_apic_route(2, kPitVector, false);
    outb(0x43, 0x34);  // channel 0, lobyte/hibyte, mode 2
    outb(0x40, 1193 & 0xFF);
    outb(0x40, 1193 >> 8);  // 1 kHz
    check(wait_for(kPitVector, 5, tsc_khz * 1000), "PIT IRQ 0 through I/O APIC pin 2");
    io_apic_route(2, kPitVector, true);
}

void check_serial_interrupt() {
    io_apic_route(4, kSerialVector, false);
    outb(0x3F8 + 4, 0x08);  // MCR: OUT2 lets the UART's interrupt out
    outb(0x3F8 + 1, 0x02);  // IER: transmitter empty
    check(wait_for(kSerialVector, 1, tsc_khz * 100), "16550A transmitter-empty interrupt on IRQ 4");
    outb(0x3F8 + 1, 0x00);
    io_apic_route(4, kSerialVector, true);
}

// A level-triggered pin: the UART's IRQ 4 line stays high while its transmitter is empty and
// that interrupt enabled. The handler sees the pin's remote IRR set (the I/O APIC waits for the
// EOI); its first EOI (x2APIC) leaves the line high, so the interrupt comes again; the second
// handler takes the cause away first, and after its EOI nothing comes and remote IRR is clear.
volatile u32 level_interrupts = 0;
volatile u32 remote_irr_in_handler = 0;

void on_level_interrupt(u8) {
    level_interrupts = level_interrupts + 1;
    if (io_apic_entry(4) & kEntryRemoteIrr) remote_irr_in_handler = remote_irr_in_handler + 1;
    if (level_interrupts >= 2) outb(0x3F8 + 1, 0x00);  // IER: the cause goes
    wrmsr(kMsrX2apicEoi, 0);
}

void check_level_triggered() {
    set_interrupt_handler(kLevelVector, on_level_interrupt);
    io_apic_route(4, kLevelVector, false, true);
    outb(0x3F8 + 4, 0x08);  // MCR: OUT2
    outb(0x3F8 + 1, 0x02);  // IER: transmitter empty
    u64 start = rdtsc();
    while (level_interrupts < 2 && rdtsc() - start < tsc_khz * 100) asm volatile("sti; nop; cli" ::: "memory");
    const u32 taken = counts[kDeadlineVector];
    wrmsr(kMsrTscDeadline, rdtsc() + tsc_khz);  // 1 ms for a third that must not come
    (void)wait_for(kDeadlineVector, taken + 1, tsc_khz * 1000);
    check(level_interrupts == 2, "level-triggered IRQ 4: again after an EOI while high, not after");
    check(remote_irr_in_handler == 2, "level-triggered IRQ 4: remote IRR set until the EOI");
    check((io_apic_entry(4) & kEntryRemoteIrr) == 0, "level-triggered IRQ 4: remote IRR clear after it");
    io_apic_route(4, kLevelVector, true);
}

u8 cmos(u8 index) {
    outb(0x70, index);
    return inb(0x71);
}

void check_rtc() {
    while (cmos(0x0A) & 0x80) {
    }
    u8 year = cmos(9), month = cmos(8), day = cmos(7), century = cmos(0x32);
    auto decimal = [](u8 bcd) { return u64{(bcd >> 4) * 10u + (bcd & 0xFu)}; };
    println("rtc: ", decimal(century) * 100 + decimal(year), "-", decimal(month), "-", decimal(day));
    auto bcd = [](u8 v, u8 low, u8 high) { return (v & 0xF) < 10 && (v >> 4) < 10 && v >= low && v <= high; };
    check(century == 0x20 && bcd(year, 0, 0x99) && bcd(month, 1, 0x12) && bcd(day, 1, 0x31),
          "RTC date in BCD, 21st century");
    check(cmos(0x0D) == 0x80, "RTC status D: valid RAM and time");
}

bool checksum_ok(const u8* bytes, u64 length) {
    u8 sum = 0;
    for (u64 i = 0; i < length; ++i) sum = static_cast<u8>(sum + bytes[i]);
    return sum == 0;
}

bool signature_is(const u8* bytes, const char* signature) {
    for (int i = 0; signature[i]; ++i)
        if (bytes[i] != static_cast<u8>(signature[i])) return false;
    return true;
}

u32 read32(const u8* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<u32>(p[3]) << 24); }
u64 read64(const u8* p) { return read32(p) | (static_cast<u64>(read32(p + 4)) << 32); }

void check_acpi() {
    const u8* rsdp = nullptr;
    for (u64 a = 0xE0000; a < 0x100000; a += 16) {
        const u8* p = reinterpret_cast<const u8*>(a);
        if (signature_is(p, "RSD PTR ") && checksum_ok(p, 20)) {
            rsdp = p;
            break;
        }
    }
    if (!check(rsdp != nullptr, "ACPI RSDP in the BIOS area")) return;
    const u8* xsdt = reinterpret_cast<const u8*>(read64(rsdp + 24));
    check(signature_is(xsdt, "XSDT") && checksum_ok(xsdt, read32(xsdt + 4)), "ACPI XSDT");
    u32 entries = (read32(xsdt + 4) - 36) / 8;
    bool madt = false, fadt = false;
    for (u32 i = 0; i < entries; ++i) {
        const u8* table = reinterpret_cast<const u8*>(read64(xsdt + 36 + u64{8} * i));
        if (!checksum_ok(table, read32(table + 4))) continue;
        if (signature_is(table, "FACP")) fadt = true;
        if (!signature_is(table, "APIC")) continue;
        u32 cpus = 0;
        for (u32 at = 44; at + 2 <= read32(table + 4); at += table[at + 1]) {
            if (table[at + 1] == 0) break;
            if (table[at] == 0 && (table[at + 4] & 1)) ++cpus;
        }
        println("acpi: the MADT lists ", cpus, " processor(s)");
        madt = cpus == 1;
    }
    check(madt, "ACPI MADT: one local APIC");
    check(fadt, "ACPI FADT");
}

void check_no_pci_device() {
    outl(0xCF8, 0x80000000);
    check(inl(0xCFC) == 0xFFFFFFFF, "PCI configuration space: no device at 00:00.0");
}

void check_unknown_msr() {
    ExceptionRecord r = try_run([] { (void)rdmsr(0xC0DE0001); });
    check(r.raised && r.vector == kVectorGP, "an unknown MSR raises #GP");
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    const u8 vectors[] = {kTimerVector, kSelfIpiVector, kDeadlineVector, kPitVector, kSerialVector};
    for (u8 v : vectors) set_interrupt_handler(v, on_interrupt);
    check_timing_leaf();
    if (tsc_khz == 0) return check_summary();
    check_xapic_timer();
    check_pit();
    check_serial_interrupt();
    check_x2apic();
    check_level_triggered();
    check_rtc();
    check_acpi();
    check_no_pci_device();
    check_unknown_msr();
    if (check_summary() != 0) return 1;
    println("powering off through ACPI S5");
    outw(kPmControl, kSleepS5);
    println("still running after S5");
    return 2;
}
