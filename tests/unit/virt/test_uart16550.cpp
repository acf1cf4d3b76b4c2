#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "nestor/virt/devices/uart16550.hpp"

using namespace nestor;
using namespace nestor::virt;

namespace {

class LineHost final : public DeviceHost {
public:
    void console_line(const char* text, usize length) override { lines.emplace_back(text, length); }
    std::vector<std::string> lines;
};

constexpr u16 kBase = 0x2F8;  // any base: the registers are offsets from it

u32 read(Uart16550& uart, u16 offset, LineHost& host) {
    u32 value = 0xFFFFFFFF;
    CHECK(uart.io_read(static_cast<u16>(kBase + offset), 1, value, host).action == DeviceOutcome::Action::complete);
    return value;
}

void write(Uart16550& uart, u16 offset, u32 value, LineHost& host) {
    CHECK(uart.io_write(static_cast<u16>(kBase + offset), 1, value, host).action == DeviceOutcome::Action::complete);
}

}  // namespace

TEST_CASE("uart.registers_read_as_an_idle_transmitter") {
    Uart16550 uart(kBase);
    LineHost host;
    CHECK(read(uart, Uart16550::kLineStatus, host) == Uart16550::kLsrIdle);
    CHECK(read(uart, Uart16550::kData, host) == 0xFFFFFFFF);  // nothing is ever received
    for (u16 offset : {1, 2, 4, 6, 7}) CHECK(read(uart, offset, host) == 0);
    write(uart, Uart16550::kLineControl, 0x9B, host);
    CHECK(read(uart, Uart16550::kLineControl, host) == 0x9B);
    CHECK(uart.line_control() == 0x9B);
    CHECK(host.lines.empty());
}

TEST_CASE("uart.lines_are_printed_whole_and_sanitised") {
    Uart16550 uart(kBase);
    LineHost host;
    for (char c : std::string("one\r\ntwo\x1b[2J\n")) write(uart, Uart16550::kData, static_cast<u8>(c), host);
    CHECK(host.lines == std::vector<std::string>{"one", "two.[2J"});
    write(uart, Uart16550::kData, 'p', host);
    CHECK(host.lines.size() == 2);  // a partial line waits
    uart.flush(host);
    CHECK(host.lines.back() == "p");
    uart.flush(host);  // nothing left: nothing printed
    CHECK(host.lines.size() == 3);
}

TEST_CASE("uart.divisor_latch_bytes_are_not_text") {
    Uart16550 uart(kBase);
    LineHost host;
    write(uart, Uart16550::kLineControl, Uart16550::kLcrDivisorLatch, host);
    write(uart, Uart16550::kData, 0x01, host);      // divisor low byte
    write(uart, Uart16550::kData + 1, 0x00, host);  // divisor high byte
    write(uart, Uart16550::kLineControl, 0x03, host);
    write(uart, Uart16550::kData, 'k', host);
    uart.flush(host);
    CHECK(host.lines == std::vector<std::string>{"k"});
}

TEST_CASE("uart.long_lines_are_split_at_capacity") {
    Uart16550 uart(kBase);
    LineHost host;
    for (usize i = 0; i < Uart16550::kLineCapacity + 5; ++i) uart.put('x', host);
    REQUIRE(host.lines.size() == 1);
    CHECK(host.lines[0] == std::string(Uart16550::kLineCapacity, 'x'));
    uart.put('\n', host);
    CHECK(host.lines.back() == "xxxxx");
}
