// A guest of the PC platform that takes the host's console input (`console = "input"`): it reads
// what a user types at its 16550A as an operating system's serial driver does, by the receive
// interrupt on IRQ 4 through the I/O APIC, and echoes it after a prompt that does not end its
// line (the host must show both at once). The second line is typed while the guest is not
// reading: the host must hold back what the UART's 16-byte FIFO cannot take, so that nothing is
// lost (no overrun) however much is typed. Last the operator presses the NMI button (Ctrl-] n on
// the console): the NMI comes in through LINT1, with IOCHK# as its reason in port 0x61.
#include "nestor/apic.hpp"
#include "nestor/guest.hpp"

using namespace nestor::guest;
using namespace nestor::guest::apic;

namespace {

constexpr u32 kLvtNmi = kModeNmi << kLvtModeShift;  // unmasked
constexpr u16 kSystemControl = 0x61, kCmosIndex = 0x70;
constexpr u8 kSpeakerBits = 0x03;  // port 0x61 bits kept; 0 in bits 2-3 enables SERR# and IOCHK# NMIs
constexpr u8 kIochk = 0x40;        // port 0x61: IOCHK# was asserted
constexpr u8 kCmosStatusD = 0x0D;  // an index with bit 7 (NMI mask) clear
constexpr u16 kCom1 = 0x3F8;
constexpr u16 kData = kCom1, kInterruptEnable = kCom1 + 1, kFifoControl = kCom1 + 2, kModemControl = kCom1 + 4,
              kLineStatus = kCom1 + 5;
constexpr u8 kIerReceivedData = 0x01, kLsrDataReady = 0x01, kLsrOverrun = 0x02;
constexpr u8 kSerialVector = 0x34;
constexpr u16 kPmControl = 0x604;
constexpr u16 kSleepS5 = (5u << 10) | (1u << 13);  // SLP_TYP 5, SLP_EN
constexpr u32 kLineCapacity = 80;

volatile u32 serial_interrupts = 0;
volatile u8 line_status_seen = 0;
char line[kLineCapacity + 1];
volatile u32 line_length = 0;
volatile bool line_done = false;
bool echo = true;

volatile u32& xapic(u32 offset) { return *reinterpret_cast<volatile u32*>(kXapicBase + offset); }

// The receive interrupt: drain the FIFO into the line until Enter.
void on_serial(u8) {
    serial_interrupts = serial_interrupts + 1;
    for (;;) {
        u8 status = inb(kLineStatus);
        line_status_seen = static_cast<u8>(line_status_seen | status);
        if (!(status & kLsrDataReady)) break;
        char c = static_cast<char>(inb(kData));
        if (line_done) continue;
        if (c == '\r' || c == '\n') {
            line_done = true;
            if (echo) print('\n');
        } else if (line_length < kLineCapacity) {
            line[line_length] = c;
            line_length = line_length + 1;
            if (echo) print(c);
        }
    }
    xapic(kXapicEoi) = 0;
}

void io_apic_route(u32 pin, u8 vector) {
    volatile u32* select = reinterpret_cast<volatile u32*>(kIoApicBase);
    volatile u32* window = reinterpret_cast<volatile u32*>(kIoApicBase + kIoApicWindow);
    *select = kIoApicRedirectionTable + 2 * pin + 1;
    *window = 0;  // destination: APIC 0
    *select = kIoApicRedirectionTable + 2 * pin;
    *window = vector;  // fixed, physical, edge, active high, unmasked
}

void start_line() {
    line_length = 0;
    line_done = false;
}

// Sleeps in HLT with interrupts on until a whole line has arrived.
void wait_for_line() {
    while (!line_done) asm volatile("sti; hlt; cli" ::: "memory");
    line[line_length] = '\0';
}

bool equal(const char* a, const char* b) {
    while (*a && *a == *b) ++a, ++b;
    return *a == *b;
}

void read_typed_line() {
    start_line();
    print("type a line: ");
    outb(kInterruptEnable, kIerReceivedData);
    wait_for_line();
    println("got \"", static_cast<const char*>(line), "\"");
    check(equal(line, "hello nestor"), "a typed line arrives by receive interrupts, echoed after its prompt");
}

// The user types more than the FIFO holds while the guest looks away (interrupts off, the
// receive interrupt disabled): it must all be there when the guest reads.
void read_line_typed_ahead() {
    start_line();
    echo = false;
    outb(kInterruptEnable, 0);
    println("not reading for a while");
    // The first byte shows the user has started typing; then look away while the rest comes.
    while (!(inb(kLineStatus) & kLsrDataReady)) asm volatile("pause");
    u64 start = rdtsc();
    u64 khz = cpuid(0x40000010).eax;
    while (rdtsc() - start < khz * 100) asm volatile("pause");
    outb(kInterruptEnable, kIerReceivedData);
    wait_for_line();
    println("got \"", static_cast<const char*>(line), "\"");
    check(equal(line, "0123456789abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJ"), "48 bytes typed ahead arrive whole");
    check(!(line_status_seen & kLsrOverrun), "no receiver overrun");
}

// The operator's NMI button: wait in HLT (interrupts off: only an NMI ends it) until the NMI
// arrives; the probe takes it as the exception it is.
void take_nmi_button() {
    xapic(kXapicLvtLint1) = kLvtNmi;
    outb(kSystemControl, static_cast<u8>(inb(kSystemControl) & kSpeakerBits));
    outb(kCmosIndex, kCmosStatusD);
    println("press the NMI button");
    ExceptionRecord taken = probe([] {
        for (;;) asm volatile("cli; hlt" ::: "memory");
    });
    check(taken.vector == kVectorNMI, "the NMI button's NMI arrives through LINT1");
    check((inb(kSystemControl) & kIochk) != 0, "port 0x61 shows IOCHK# as its reason");
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    set_interrupt_handler(kSerialVector, on_serial);
    xapic(kXapicSvr) = kSvrEnabled;
    io_apic_route(4, kSerialVector);
    outb(kFifoControl, 0xC7);   // FIFOs on and cleared, trigger level 14
    outb(kModemControl, 0x0B);  // DTR, RTS, OUT2 (lets the interrupt out)
    read_typed_line();
    read_line_typed_ahead();
    check(serial_interrupts >= 2, "receive interrupts taken");
    take_nmi_button();
    if (check_summary() != 0) return 1;
    println("powering off through ACPI S5");
    outw(kPmControl, kSleepS5);
    return 2;
}
