#include <catch2/catch.hpp>
#include <random>
#include <string>
#include <vector>

#include "nestor/pc/serial16550a.hpp"

using namespace nestor;
using namespace nestor::pc;
using Uart = Serial16550A;

namespace {

constexpr u16 kCom1 = 0x3F8;
constexpr u8 kIrq4 = 4;

class LineRecorder final : public IrqLines {
public:
    void set_level(u8 line, bool high) override {
        changes.push_back({line, high});
        if (high) ++rises;
        level = high;
    }
    struct Change {
        u8 line;
        bool high;
    };
    std::vector<Change> changes;
    usize rises = 0;
    bool level = false;
};

class ConsoleHost final : public virt::DeviceHost {
public:
    void console_line(const char* text, usize length) override { lines.emplace_back(text, length); }
    std::vector<std::string> lines;
};

// A 16550A at COM1 on IRQ 4, with its line and the host's console.
struct Rig {
    LineRecorder irqs;
    ConsoleHost host;
    Uart uart{kCom1, kIrq4, irqs};

    u8 in(u16 offset) {
        u32 value = 0xFFFFFFFF;
        CHECK(uart.io_read(static_cast<u16>(kCom1 + offset), 1, value, host).action ==
              virt::DeviceOutcome::Action::complete);
        CHECK((value & 0xFFFFFF00) == 0xFFFFFF00);  // a byte read leaves the rest floating
        return static_cast<u8>(value);
    }
    void out(u16 offset, u8 value) {
        CHECK(uart.io_write(static_cast<u16>(kCom1 + offset), 1, value, host).action ==
              virt::DeviceOutcome::Action::complete);
    }
    void send(const std::string& text) {
        for (char c : text) out(Uart::kData, static_cast<u8>(c));
    }
};

}  // namespace

TEST_CASE("pc.serial.reset_values") {
    Rig rig;
    CHECK(rig.in(Uart::kData) == 0);
    CHECK(rig.in(Uart::kInterruptEnable) == 0);
    CHECK(rig.in(Uart::kInterruptId) == 0x01);  // nothing pending, FIFOs off
    CHECK(rig.in(Uart::kLineControl) == 0);
    CHECK(rig.in(Uart::kModemControl) == 0);
    CHECK(rig.in(Uart::kLineStatus) == 0x60);   // THR empty, transmitter idle
    CHECK(rig.in(Uart::kModemStatus) == 0xB0);  // a connected peer: DCD, DSR, CTS; no deltas
    CHECK(rig.in(Uart::kScratch) == 0);
    rig.out(Uart::kLineControl, Uart::kLcrDivisorLatch);
    CHECK(rig.in(Uart::kData) == Uart::kResetDivisor);
    CHECK(rig.in(Uart::kInterruptEnable) == 0);
    CHECK(rig.uart.divisor() == 12);
    CHECK(rig.uart.receive_space() == 1);
    CHECK_FALSE(rig.uart.irq_high());
    CHECK(rig.irqs.changes.empty());
    CHECK(rig.host.lines.empty());
}

TEST_CASE("pc.serial.divisor_latch") {
    Rig rig;
    rig.out(Uart::kInterruptEnable, Uart::kIerReceivedData);
    rig.out(Uart::kLineControl, 0x83);  // DLAB, 8 bits
    rig.out(Uart::kData, 0x01);         // DLL: 115200 baud
    rig.out(Uart::kInterruptEnable, 0x02);
    CHECK(rig.uart.divisor() == 0x0201);
    CHECK(rig.in(Uart::kData) == 0x01);
    CHECK(rig.in(Uart::kInterruptEnable) == 0x02);
    CHECK(rig.in(Uart::kLineControl) == 0x83);
    rig.out(Uart::kLineControl, 0x03);
    CHECK(rig.in(Uart::kInterruptEnable) == Uart::kIerReceivedData);  // IER was not touched
    CHECK(rig.uart.divisor() == 0x0201);
    rig.uart.flush(rig.host);
    CHECK(rig.host.lines.empty());  // the divisor's bytes are not text
    // A 16-bit OUT to DLL reaches DLM with its high byte, as the PC's bus splits it.
    rig.out(Uart::kLineControl, 0x83);
    CHECK(rig.uart.io_write(kCom1, 2, 0x0030, rig.host).action == virt::DeviceOutcome::Action::complete);
    CHECK(rig.uart.divisor() == 0x0030);
}

TEST_CASE("pc.serial.scratch") {
    Rig rig;
    for (u8 value : {0xA5, 0x5A, 0xFF, 0x00}) {
        rig.out(Uart::kScratch, value);
        CHECK(rig.in(Uart::kScratch) == value);
    }
    rig.out(Uart::kScratch, 0x3C);
    rig.out(Uart::kLineControl, Uart::kLcrDivisorLatch);
    CHECK(rig.in(Uart::kScratch) == 0x3C);  // DLAB does not reach offset 7
}

TEST_CASE("pc.serial.ier_holds_four_bits") {
    Rig rig;
    rig.out(Uart::kInterruptEnable, 0xFF);
    CHECK(rig.in(Uart::kInterruptEnable) == 0x0F);
    rig.out(Uart::kInterruptEnable, 0x40);  // the XScale's UUE bit is not there
    CHECK(rig.in(Uart::kInterruptEnable) == 0x00);
}

TEST_CASE("pc.serial.iir_priorities") {
    Rig rig;
    rig.out(Uart::kModemControl, Uart::kMcrOut2);
    rig.out(Uart::kInterruptEnable, 0x0F);  // THR empty: pending at once
    CHECK(rig.uart.irq_high());
    // Modem status: loopback drops CTS, DSR and DCD; leaving it brings them back.
    rig.out(Uart::kModemControl, Uart::kMcrLoop);
    rig.out(Uart::kModemControl, Uart::kMcrOut2);
    // Received data, and an overrun without the FIFO.
    CHECK(rig.uart.receive('a'));
    CHECK_FALSE(rig.uart.receive('b'));
    CHECK(rig.uart.irq_high());

    CHECK(rig.in(Uart::kInterruptId) == Uart::kIirLineStatus);
    CHECK(rig.in(Uart::kInterruptId) == Uart::kIirLineStatus);  // reading IIR does not clear it
    CHECK(rig.in(Uart::kLineStatus) == 0x63);                   // DR, OE, THRE, TEMT
    CHECK(rig.in(Uart::kInterruptId) == Uart::kIirReceivedData);
    CHECK(rig.in(Uart::kData) == 'b');  // without the FIFO, the overrun replaced the unread byte
    CHECK(rig.in(Uart::kInterruptId) == Uart::kIirTransmitEmpty);
    CHECK(rig.in(Uart::kInterruptId) == Uart::kIirModemStatus);  // reading IIR acknowledged THRE
    CHECK(rig.uart.irq_high());
    CHECK(rig.in(Uart::kModemStatus) == (0xB0 | Uart::kMsrDeltaCts | Uart::kMsrDeltaDsr | Uart::kMsrDeltaDcd));
    CHECK(rig.in(Uart::kInterruptId) == Uart::kIirNone);
    CHECK_FALSE(rig.uart.irq_high());
    CHECK(rig.irqs.level == false);
    for (const auto& change : rig.irqs.changes) CHECK(change.line == kIrq4);
}

TEST_CASE("pc.serial.disabled_sources_do_not_interrupt") {
    Rig rig;
    rig.out(Uart::kModemControl, Uart::kMcrOut2);
    CHECK(rig.uart.receive('x'));
    CHECK_FALSE(rig.uart.receive('y'));
    rig.out(Uart::kModemControl, Uart::kMcrOut2 | Uart::kMcrLoop);
    rig.out(Uart::kModemControl, Uart::kMcrOut2);
    CHECK(rig.in(Uart::kInterruptId) == Uart::kIirNone);
    CHECK(rig.irqs.changes.empty());
    rig.out(Uart::kInterruptEnable, Uart::kIerModemStatus);
    CHECK(rig.in(Uart::kInterruptId) == Uart::kIirModemStatus);
    CHECK(rig.uart.irq_high());
}

// Linux's 8250 driver: serial8250_do_startup's THRE test and TXEN test, then a transmission as
// serial8250_start_tx, serial8250_handle_irq and serial8250_tx_chars make it.
TEST_CASE("pc.serial.thre_interrupt_as_linux_drives_it") {
    Rig rig;
    constexpr u8 kNoInterrupt = 0x01;
    // The THRE test: a 16550 raises THRE again when ETBEI is enabled again after IIR cleared it.
    rig.out(Uart::kInterruptEnable, Uart::kIerTransmitEmpty);
    u8 iir1 = rig.in(Uart::kInterruptId);
    rig.out(Uart::kInterruptEnable, 0);
    rig.out(Uart::kInterruptEnable, Uart::kIerTransmitEmpty);
    u8 iir = rig.in(Uart::kInterruptId);
    rig.out(Uart::kInterruptEnable, 0);
    CHECK_FALSE(iir1 & kNoInterrupt);
    CHECK_FALSE(iir & kNoInterrupt);  // else UART_BUG_THRE
    // 8 bits, OUT2 (set_mctrl), the FIFOs as set_termios programs them for a 16550A.
    rig.out(Uart::kLineControl, 0x03);
    rig.out(Uart::kModemControl, Uart::kMcrDtr | Uart::kMcrRts | Uart::kMcrOut2);
    CHECK_FALSE(rig.uart.irq_high());
    // The TXEN test: enabling ETBEI with the transmitter idle must show in IIR.
    rig.out(Uart::kInterruptEnable, Uart::kIerTransmitEmpty);
    u8 lsr = rig.in(Uart::kLineStatus);
    iir = rig.in(Uart::kInterruptId);
    rig.out(Uart::kInterruptEnable, 0);
    CHECK_FALSE(((lsr & Uart::kLsrTransmitterIdle) && (iir & kNoInterrupt)));  // else UART_BUG_TXEN
    rig.out(Uart::kInterruptId, Uart::kFcrEnable);
    rig.out(Uart::kInterruptId, 0x81);
    rig.in(Uart::kLineStatus);
    rig.in(Uart::kData);
    rig.in(Uart::kInterruptId);
    rig.in(Uart::kModemStatus);
    CHECK_FALSE(rig.uart.irq_high());

    // start_tx: IER gains THRI beside the receive interrupts; THR is empty, so the line rises.
    usize rises = rig.irqs.rises;
    rig.out(Uart::kInterruptEnable, Uart::kIerLineStatus | Uart::kIerReceivedData | Uart::kIerTransmitEmpty);
    CHECK(rig.uart.irq_high());
    CHECK(rig.irqs.rises == rises + 1);
    // The handler: IIR names THRE (and reading it acknowledges it), LSR shows THRE, tx_chars fills THR.
    CHECK(rig.in(Uart::kInterruptId) == (0xC0 | Uart::kIirTransmitEmpty));
    CHECK_FALSE(rig.uart.irq_high());
    CHECK(rig.in(Uart::kLineStatus)&Uart::kLsrTransmitEmpty);
    rig.send("hello\r\n");
    CHECK(rig.host.lines == std::vector<std::string>{"hello"});
    // Every byte left at once: THRE is pending again, with an edge after each write.
    CHECK(rig.uart.irq_high());
    CHECK(rig.irqs.rises == rises + 1 + 7);
    // The next interrupt: IIR names THRE again; the buffer is empty, so __stop_tx clears THRI.
    CHECK(rig.in(Uart::kInterruptId) == (0xC0 | Uart::kIirTransmitEmpty));
    rig.out(Uart::kInterruptEnable, Uart::kIerLineStatus | Uart::kIerReceivedData);
    CHECK(rig.in(Uart::kInterruptId) == (0xC0 | Uart::kIirNone));
    CHECK_FALSE(rig.uart.irq_high());
    // Writing THR with the interrupt pending acknowledges it, and the byte's departure raises it again.
    rig.out(Uart::kInterruptEnable, Uart::kIerTransmitEmpty);
    usize changes = rig.irqs.changes.size();
    rig.out(Uart::kData, 'x');
    REQUIRE(rig.irqs.changes.size() == changes + 2);
    CHECK_FALSE(rig.irqs.changes[changes].high);
    CHECK(rig.irqs.changes[changes + 1].high);
    // With ETBEI off, a write leaves nothing pending.
    rig.out(Uart::kInterruptEnable, 0);
    rig.out(Uart::kData, 'y');
    CHECK(rig.in(Uart::kInterruptId) == (0xC0 | Uart::kIirNone));
}

TEST_CASE("pc.serial.out2_gates_the_line") {
    Rig rig;
    rig.out(Uart::kInterruptEnable, Uart::kIerTransmitEmpty);
    rig.out(Uart::kModemControl, Uart::kMcrDtr | Uart::kMcrRts);
    CHECK_FALSE(rig.uart.irq_high());
    CHECK(rig.irqs.changes.empty());
    rig.out(Uart::kModemControl, Uart::kMcrOut2);
    CHECK(rig.uart.irq_high());
    CHECK(rig.irqs.level);
    rig.out(Uart::kModemControl, 0);
    CHECK_FALSE(rig.irqs.level);
    // Loopback forces the OUT2 pin inactive: the gate closes though MCR.OUT2 is set.
    rig.out(Uart::kModemControl, Uart::kMcrOut2 | Uart::kMcrLoop);
    CHECK_FALSE(rig.irqs.level);
    rig.out(Uart::kModemControl, Uart::kMcrOut2);
    CHECK(rig.irqs.level);
    // The interrupt stayed pending all along; acknowledging it lowers the line.
    CHECK(rig.in(Uart::kInterruptId) == Uart::kIirTransmitEmpty);
    CHECK_FALSE(rig.irqs.level);
    CHECK(rig.irqs.changes.size() == 4);  // set_level only when the level changes
}

TEST_CASE("pc.serial.fifo_trigger_levels") {
    struct Level {
        u8 fcr;
        usize bytes;
    };
    for (Level level : {Level{0x01, 1}, Level{0x41, 4}, Level{0x81, 8}, Level{0xC1, 14}}) {
        CAPTURE(level.bytes);
        Rig rig;
        rig.out(Uart::kModemControl, Uart::kMcrOut2);
        rig.out(Uart::kInterruptId, level.fcr);
        rig.out(Uart::kInterruptEnable, Uart::kIerReceivedData);
        CHECK(rig.in(Uart::kInterruptId) == 0xC1);
        CHECK(rig.uart.receive_space() == Uart::kFifoSize);
        for (usize i = 0; i + 1 < level.bytes; ++i) {
            CHECK(rig.uart.receive(static_cast<u8>('0' + i)));
            // Below the trigger level: the character timeout, at once.
            CHECK(rig.in(Uart::kInterruptId) == (0xC0 | Uart::kIirCharacterTimeout));
            CHECK(rig.uart.irq_high());
        }
        CHECK(rig.uart.receive('!'));
        CHECK(rig.in(Uart::kInterruptId) == (0xC0 | Uart::kIirReceivedData));
        CHECK(rig.uart.receive_space() == Uart::kFifoSize - level.bytes);
        rig.in(Uart::kData);  // below the trigger again
        CHECK(rig.in(Uart::kInterruptId) == (level.bytes == 1 ? 0xC1 : 0xC0 | Uart::kIirCharacterTimeout));
        while (rig.in(Uart::kLineStatus)&Uart::kLsrDataReady) rig.in(Uart::kData);
        CHECK(rig.in(Uart::kInterruptId) == 0xC1);
        CHECK_FALSE(rig.uart.irq_high());
    }
}

TEST_CASE("pc.serial.fifo_overrun_sets_oe_until_lsr_is_read") {
    Rig rig;
    rig.out(Uart::kInterruptId, 0xC7);  // enable, clear both, trigger 14
    rig.out(Uart::kModemControl, Uart::kMcrOut2);
    rig.out(Uart::kInterruptEnable, Uart::kIerLineStatus);
    for (u8 i = 0; i < Uart::kFifoSize; ++i) CHECK(rig.uart.receive(i));
    CHECK(rig.uart.receive_space() == 0);
    CHECK_FALSE(rig.uart.irq_high());
    CHECK_FALSE(rig.uart.receive(0xEE));
    CHECK(rig.uart.irq_high());
    CHECK(rig.in(Uart::kInterruptId) == (0xC0 | Uart::kIirLineStatus));
    CHECK(rig.in(Uart::kLineStatus) == 0x63);
    CHECK_FALSE(rig.uart.irq_high());
    CHECK(rig.in(Uart::kLineStatus) == 0x61);                                  // OE cleared by the read
    for (u8 i = 0; i < Uart::kFifoSize; ++i) CHECK(rig.in(Uart::kData) == i);  // the overrunning byte was lost
    CHECK(rig.in(Uart::kLineStatus) == 0x60);
    CHECK(rig.in(Uart::kData) == 15);  // an empty receiver reads its last byte again
}

TEST_CASE("pc.serial.fifo_control_resets_and_disables") {
    Rig rig;
    rig.out(Uart::kInterruptId, Uart::kFcrEnable);
    for (u8 i = 0; i < 5; ++i) CHECK(rig.uart.receive(i));
    rig.out(Uart::kInterruptId, Uart::kFcrEnable | Uart::kFcrClearTransmitter);
    CHECK(rig.in(Uart::kLineStatus)&Uart::kLsrDataReady);  // the transmitter's reset spares the receiver
    rig.out(Uart::kInterruptId, Uart::kFcrEnable | Uart::kFcrClearReceiver);
    CHECK_FALSE(rig.in(Uart::kLineStatus)&Uart::kLsrDataReady);
    CHECK(rig.uart.receive(7));
    rig.out(Uart::kInterruptId, 0xC0);  // without bit 0: the FIFOs go off, and empty
    CHECK(rig.in(Uart::kInterruptId) == 0x01);
    CHECK_FALSE(rig.in(Uart::kLineStatus)&Uart::kLsrDataReady);
    CHECK(rig.uart.receive_space() == 1);
    CHECK(rig.uart.receive(8));
    rig.out(Uart::kInterruptId, Uart::kFcrEnable);  // turning them on empties them too
    CHECK_FALSE(rig.in(Uart::kLineStatus)&Uart::kLsrDataReady);
    CHECK(rig.in(Uart::kInterruptId) == 0xC1);
}

TEST_CASE("pc.serial.loopback_data") {
    Rig rig;
    rig.out(Uart::kInterruptId, Uart::kFcrEnable);
    rig.out(Uart::kModemControl, Uart::kMcrLoop);
    CHECK(rig.uart.receive_space() == 0);
    CHECK_FALSE(rig.uart.receive('h'));  // the receiver hears only the transmitter
    rig.send("ab\n");
    rig.uart.flush(rig.host);
    CHECK(rig.host.lines.empty());
    CHECK(rig.in(Uart::kLineStatus) == 0x61);  // DR, no overrun
    CHECK(rig.in(Uart::kData) == 'a');
    CHECK(rig.in(Uart::kData) == 'b');
    CHECK(rig.in(Uart::kData) == '\n');
    CHECK(rig.in(Uart::kLineStatus) == 0x60);
    // Leaving loopback: the console hears THR again.
    rig.out(Uart::kModemControl, 0);
    rig.send("c\n");
    CHECK(rig.host.lines == std::vector<std::string>{"c"});
}

TEST_CASE("pc.serial.loopback_modem_lines") {
    Rig rig;
    rig.out(Uart::kModemControl, Uart::kMcrLoop);
    CHECK(rig.in(Uart::kModemStatus) == (Uart::kMsrDeltaCts | Uart::kMsrDeltaDsr | Uart::kMsrDeltaDcd));
    CHECK(rig.in(Uart::kModemStatus) == 0);  // reading MSR cleared the deltas
    rig.out(Uart::kModemControl, Uart::kMcrLoop | Uart::kMcrDtr);
    CHECK(rig.in(Uart::kModemStatus) == (Uart::kMsrDsr | Uart::kMsrDeltaDsr));
    rig.out(Uart::kModemControl, Uart::kMcrLoop | Uart::kMcrRts);
    CHECK(rig.in(Uart::kModemStatus) == (Uart::kMsrCts | Uart::kMsrDeltaCts | Uart::kMsrDeltaDsr));
    rig.out(Uart::kModemControl, Uart::kMcrLoop | Uart::kMcrOut1);
    CHECK(rig.in(Uart::kModemStatus) == (Uart::kMsrRi | Uart::kMsrDeltaCts));  // RI's rise is no delta
    rig.out(Uart::kModemControl, Uart::kMcrLoop | Uart::kMcrOut2);
    CHECK(rig.in(Uart::kModemStatus) == (Uart::kMsrDcd | Uart::kMsrTrailingRi | Uart::kMsrDeltaDcd));
    CHECK(rig.in(Uart::kModemStatus) == Uart::kMsrDcd);
    // Linux's loop test: RTS and OUT2 come back as CTS and DCD.
    rig.out(Uart::kModemControl, Uart::kMcrLoop | 0x0A);
    CHECK((rig.in(Uart::kModemStatus) & 0xF0) == 0x90);
    CHECK(rig.in(Uart::kModemControl) == (Uart::kMcrLoop | 0x0A));
    // The modem status interrupt follows the deltas, in loopback as outside it.
    rig.out(Uart::kInterruptEnable, Uart::kIerModemStatus);
    CHECK(rig.in(Uart::kInterruptId) == Uart::kIirNone);
    rig.out(Uart::kModemControl, Uart::kMcrLoop | Uart::kMcrDtr);
    CHECK(rig.in(Uart::kInterruptId) == Uart::kIirModemStatus);
    rig.in(Uart::kModemStatus);
    CHECK(rig.in(Uart::kInterruptId) == Uart::kIirNone);
    rig.out(Uart::kModemControl, 0xFF);  // bits 7:5 are not there
    CHECK(rig.in(Uart::kModemControl) == 0x1F);
}

TEST_CASE("pc.serial.console_lines_are_sanitised") {
    Rig rig;
    rig.send("one\r\ntwo\x1b[2J\n");
    CHECK(rig.host.lines == std::vector<std::string>{"one", "two.[2J"});
    rig.out(Uart::kData, 0x00);
    rig.out(Uart::kData, 0xFF);
    rig.out(Uart::kData, 'p');
    CHECK(rig.host.lines.size() == 2);  // a partial line waits
    rig.uart.flush(rig.host);
    CHECK(rig.host.lines.back() == "..p");
    rig.uart.flush(rig.host);  // nothing left: nothing printed
    CHECK(rig.host.lines.size() == 3);
    rig.send(std::string(virt::ConsoleLine::kCapacity + 3, 'x') + "\n");
    REQUIRE(rig.host.lines.size() == 5);
    CHECK(rig.host.lines[3] == std::string(virt::ConsoleLine::kCapacity, 'x'));
    CHECK(rig.host.lines[4] == "xxx");
}

namespace {

// Linux's 8250_port.c autoconfig() of a port at COM1 (UPF_SKIP_TEST clear, no RSA), with the
// probes of autoconfig_16550a() and size_fifo(): the type it finds.
std::string linux_autoconfig(Rig& rig) {
    auto in = [&](u16 offset) { return rig.in(offset); };
    auto out = [&](u16 offset, u8 value) { rig.out(offset, value); };
    constexpr u16 kEfr = 2;
    // The IER test.
    u8 scratch = in(1);
    out(1, 0);
    u8 scratch2 = in(1) & 0x0F;
    out(1, 0x0F);
    u8 scratch3 = in(1) & 0x0F;
    out(1, scratch);
    if (scratch2 != 0 || scratch3 != 0x0F) return "none (IER test)";
    u8 save_mcr = in(4);
    u8 save_lcr = in(3);
    // The loop test.
    out(4, 0x10 | 0x0A);
    u8 status1 = in(6) & 0xF0;
    out(4, save_mcr);
    if (status1 != 0x90) return "none (LOOP test)";
    out(3, 0xBF);
    out(kEfr, 0);
    out(3, 0);
    out(2, 0x01);
    std::string type;
    switch (in(2) >> 6) {
    case 0: {
        // autoconfig_8250: a 16450 has the scratch register.
        u8 saved = in(7);
        out(7, 0xA5);
        u8 s1 = in(7);
        out(7, 0x5A);
        u8 s2 = in(7);
        out(7, saved);
        type = s1 == 0xA5 && s2 == 0x5A ? "16450" : "8250";
        break;
    }
    case 1: type = "unknown"; break;
    case 2: type = "16550"; break;
    default: {  // 3: both FIFO-enabled bits
        type = "16550A";
        out(3, 0x80);
        if (in(kEfr) == 0) return "16650 or FSL64";
        out(3, 0xBF);
        if (in(kEfr) == 0) return "EFRv2";
        out(3, 0);
        u8 mcr = in(4);
        out(3, 0xE0);
        u8 excr1 = in(2);
        if (!((excr1 ^ mcr) & 0x10)) {
            out(3, 0);
            out(4, mcr ^ 0x10);
            out(3, 0xE0);
            excr1 = in(2);
            out(3, 0);
            out(4, mcr);
            if ((excr1 ^ mcr) & 0x10) return "NS16550A";
        }
        out(3, 0);
        out(2, 0x21);
        u8 iir1 = in(2) >> 5;
        out(2, 0x01);
        out(3, 0x80);
        out(2, 0x21);
        u8 iir2 = in(2) >> 5;
        out(2, 0x01);
        out(3, 0);
        if (iir1 == 6 && iir2 == 7) return "16750";
        u8 iersave = in(1);
        out(1, iersave & ~0x40);
        if (!(in(1) & 0x40)) {
            out(1, iersave | 0x40);
            if (in(1) & 0x40) return "XScale";
        }
        out(1, iersave);
        // size_fifo: count what the receiver holds after 256 bytes in loopback.
        u8 old_lcr = in(3);
        out(3, 0);
        u8 old_fcr = in(2);
        u8 old_mcr = in(4);
        out(2, 0x07);
        out(4, 0x10);
        out(3, 0x80);
        u8 old_dll = in(0);
        u8 old_dlm = in(1);
        out(0, 0x01);
        out(1, 0x00);
        out(3, 0x03);
        for (int i = 0; i < 256; ++i) out(0, static_cast<u8>(i));
        int count = 0;
        for (; (in(5) & 0x01) && count < 256; ++count) in(0);
        out(2, old_fcr);
        out(4, old_mcr);
        out(3, 0x80);
        out(0, old_dll);
        out(1, old_dlm);
        out(3, old_lcr);
        CHECK(count == 16);
        if (count == 64) return "U6_16550A";
        break;
    }
    }
    out(3, save_lcr);
    // Reset the UART: MCR back, clear the FIFOs, read RX, IER off.
    out(4, save_mcr);
    out(2, 0x01);
    out(2, 0x07);
    out(2, 0x00);
    in(0);
    out(1, 0);
    return type;
}

}  // namespace

TEST_CASE("pc.serial.linux_autoconfig_finds_a_16550a") {
    Rig rig;
    rig.out(Uart::kLineControl, 0x03);
    rig.out(Uart::kModemControl, Uart::kMcrDtr | Uart::kMcrRts);
    rig.out(Uart::kLineControl, 0x83);
    rig.out(Uart::kData, 0x01);
    rig.out(Uart::kLineControl, 0x03);
    CHECK(linux_autoconfig(rig) == "16550A");
    // What the probe restored.
    CHECK(rig.in(Uart::kLineControl) == 0x03);
    CHECK(rig.in(Uart::kModemControl) == (Uart::kMcrDtr | Uart::kMcrRts));
    CHECK(rig.in(Uart::kInterruptEnable) == 0);
    CHECK(rig.in(Uart::kInterruptId) == 0x01);
    CHECK(rig.in(Uart::kLineStatus) == 0x60);
    CHECK(rig.uart.divisor() == 0x0001);
    rig.uart.flush(rig.host);
    CHECK(rig.host.lines.empty());  // the loopback bytes never reached the console
    // FCR 0xE7 (enable, reset both, 64-byte mode, trigger 14) reads back as a 16550A's FIFOs:
    // bits 7:6 set, no 64-byte FIFO in bit 5.
    rig.out(Uart::kInterruptId, 0xE7);
    CHECK((rig.in(Uart::kInterruptId) & 0xE0) == 0xC0);
}

TEST_CASE("pc.serial.linux_irq_probe_sees_the_line") {
    Rig rig;
    // autoconfig_irq: OUT2 with every interrupt enabled, the status registers read, a byte sent.
    rig.out(Uart::kModemControl, Uart::kMcrOut1 | Uart::kMcrOut2);
    usize rises = rig.irqs.rises;
    rig.out(Uart::kModemControl, 0);
    rig.out(Uart::kModemControl, Uart::kMcrDtr | Uart::kMcrRts | Uart::kMcrOut2);
    rig.out(Uart::kInterruptEnable, 0x0F);
    rig.in(Uart::kLineStatus);
    rig.in(Uart::kData);
    rig.in(Uart::kInterruptId);
    rig.in(Uart::kModemStatus);
    rig.out(Uart::kData, 0xFF);
    CHECK(rig.irqs.rises > rises);
    CHECK(rig.irqs.level);
    REQUIRE_FALSE(rig.irqs.changes.empty());
    CHECK(rig.irqs.changes.back().line == kIrq4);
}

TEST_CASE("pc.serial.wide_accesses_split_into_bytes") {
    Rig rig;
    rig.out(Uart::kScratch, 0x5A);
    u32 value = 0xFFFFFFFF;
    rig.uart.io_read(kCom1 + 4, 4, value, rig.host);  // MCR, LSR, MSR, SCR
    CHECK(value == 0x5AB06000);
    value = 0xFFFFFFFF;
    rig.uart.io_read(kCom1 + 7, 2, value, rig.host);  // SCR, then a port beyond the UART
    CHECK(value == 0xFFFFFF5A);
    value = 0;
    rig.uart.io_read(kCom1 + 8, 1, value, rig.host);  // not the UART's: floats high
    CHECK(value == 0xFF);
    rig.uart.io_write(kCom1 + 6, 4, 0x11223344, rig.host);  // MSR (ignored), SCR, then nothing
    CHECK(rig.in(Uart::kScratch) == 0x33);
    CHECK(rig.in(Uart::kModemStatus) == 0xB0);
}

TEST_CASE("pc.serial.hostile_accesses_never_crash") {
    Rig rig;
    std::mt19937 random(1655);
    for (int i = 0; i < 200000; ++i) {
        u16 port = static_cast<u16>(kCom1 - 4 + random() % 16);
        u8 size = static_cast<u8>(random() % 9);
        u32 value = static_cast<u32>(random());
        switch (random() % 8) {
        case 0:
        case 1:
        case 2: rig.uart.io_write(port, size, value, rig.host); break;
        case 3: rig.uart.receive(static_cast<u8>(value)); break;
        case 4: rig.uart.flush(rig.host); break;
        default: rig.uart.io_read(port, size, value, rig.host); break;
        }
        REQUIRE(rig.uart.receive_space() <= Uart::kFifoSize);
        REQUIRE(rig.uart.irq_high() == rig.irqs.level);
    }
    // Whatever the guest did, the registers keep their shape.
    rig.out(Uart::kLineControl, 0x03);
    CHECK((rig.in(Uart::kLineStatus) & 0x60) == 0x60);
    CHECK((rig.in(Uart::kInterruptEnable) & 0xF0) == 0);
    CHECK((rig.in(Uart::kInterruptId) & 0x30) == 0);
    CHECK((rig.in(Uart::kModemControl) & 0xE0) == 0);
    for (const auto& change : rig.irqs.changes) CHECK(change.line == kIrq4);
    for (const std::string& line : rig.host.lines) {
        CHECK(line.size() <= virt::ConsoleLine::kCapacity);
        for (char c : line) CHECK((c >= 0x20 && c < 0x7F));
    }
    CHECK_FALSE(rig.host.lines.empty());
}
