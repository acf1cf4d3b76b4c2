// Console output on the 16550 at COM1, number formatting, and the check() counters.
#include "runtime.hpp"

namespace nestor::guest {
namespace {

constexpr u16 kCom1 = 0x3F8;
constexpr u16 kLineStatus = kCom1 + 5;
constexpr u8 kTransmitterEmpty = 0x20;
// A UART that never drains (none behind the port) must not hang the guest.
constexpr u32 kTransmitSpinLimit = 100000;

u32 checks_passed = 0;
u32 checks_failed = 0;

void uart_put(char c) {
    for (u32 i = 0; i < kTransmitSpinLimit && !(inb(kLineStatus) & kTransmitterEmpty); ++i) pause();
    outb(kCom1, static_cast<u8>(c));
}

}  // namespace

namespace detail {

void console_init() {
    outb(kCom1 + 1, 0x00);  // no interrupts
    outb(kCom1 + 3, 0x80);  // divisor latch
    outb(kCom1 + 0, 0x01);  // 115200 baud
    outb(kCom1 + 1, 0x00);
    outb(kCom1 + 3, 0x03);  // 8N1
    outb(kCom1 + 2, 0xC7);  // FIFOs on and cleared
    outb(kCom1 + 4, 0x03);  // DTR, RTS
}

}  // namespace detail

void print(char c) {
    // Terminals want CR LF; the hypervisor and the test harness drop the CR.
    if (c == '\n') uart_put('\r');
    uart_put(c);
}

void print(const char* text) {
    if (!text) text = "(null)";
    while (*text) print(*text++);
}

void print(bool value) { print(value ? "true" : "false"); }

void print_hex(u64 value, u8 digits) {
    char buffer[16];
    int length = 0;
    do {
        buffer[length++] = "0123456789abcdef"[value & 0xF];
        value >>= 4;
    } while (value && length < 16);
    print("0x");
    for (int i = length; i < digits && i < 16; ++i) print('0');
    while (length > 0) print(buffer[--length]);
}

void print(Hex value) { print_hex(value.value, value.digits); }

void print_dec(u64 value) {
    char buffer[20];
    int length = 0;
    do {
        buffer[length++] = static_cast<char>('0' + value % 10);
        value /= 10;
    } while (value);
    while (length > 0) print(buffer[--length]);
}

void print_signed(i64 value) {
    if (value < 0) {
        print('-');
        print_dec(~static_cast<u64>(value) + 1);  // also right for the most negative value
    } else {
        print_dec(static_cast<u64>(value));
    }
}

bool check(bool cond, const char* what) {
    if (cond) {
        ++checks_passed;
        println("ok: ", what);
    } else {
        ++checks_failed;
        println("FAIL: ", what);
    }
    return cond;
}

u32 check_failures() { return checks_failed; }

int check_summary() {
    println("checks: ", checks_passed, " passed, ", checks_failed, " failed");
    return checks_failed ? 1 : 0;
}

u64 string_length(const char* s) {
    u64 n = 0;
    while (s[n]) ++n;
    return n;
}

bool string_equal(const char* a, const char* b) {
    while (*a && *a == *b) ++a, ++b;
    return *a == *b;
}

}  // namespace nestor::guest
