// The PC's serial port: a National/TI PC16550D (a "16550A") with its 16-byte receive FIFO,
// register by register as its datasheet describes them and Linux's 8250 driver probes them.
//
// Transmission takes no time: a byte written to THR goes at once to the host's console (a line at
// a time, through ConsoleLine), or, in loopback mode, to the receiver. So THR and the transmitter
// are always empty (LSR.THRE and LSR.TEMT always read 1), and the THR-empty interrupt, which the
// write cleared, is pending again as soon as the write completes: the IRQ line drops and rises
// again, the edge a PC's 8259A needs to see the next interrupt. The host hands in received bytes
// with receive(); the receiver's character timeout has no time to wait for, so it is indicated as
// soon as the FIFO holds fewer bytes than its trigger level.
//
// On a PC the 16550's interrupt output reaches its IRQ line through a gate that the OUT2 pin
// opens (MCR.OUT2), and loopback mode forces the OUT2 pin inactive: the line is high only while
// an enabled interrupt is pending, MCR.OUT2 is set and MCR.LOOP is clear.
#pragma once

#include "nestor/pc/links.hpp"
#include "nestor/virt/device_bus.hpp"
#include "nestor/virt/devices/console_line.hpp"

namespace nestor::pc {

class Serial16550A final : public virt::Device {
public:
    static constexpr u16 kPorts = 8;
    static constexpr usize kFifoSize = 16;

    // Register offsets from the base port. With LCR.DLAB set, offsets 0 and 1 are the divisor latch.
    static constexpr u16 kData = 0;             // RBR (read) / THR (write); DLL with DLAB
    static constexpr u16 kInterruptEnable = 1;  // IER; DLM with DLAB
    static constexpr u16 kInterruptId = 2;      // IIR (read) / FCR (write)
    static constexpr u16 kLineControl = 3;      // LCR
    static constexpr u16 kModemControl = 4;     // MCR
    static constexpr u16 kLineStatus = 5;       // LSR
    static constexpr u16 kModemStatus = 6;      // MSR
    static constexpr u16 kScratch = 7;          // SCR

    // IER
    static constexpr u8 kIerReceivedData = 0x01;   // ERBFI: data available (and character timeout)
    static constexpr u8 kIerTransmitEmpty = 0x02;  // ETBEI: THR empty
    static constexpr u8 kIerLineStatus = 0x04;     // ELSI: receiver line status
    static constexpr u8 kIerModemStatus = 0x08;    // EDSSI: modem status
    static constexpr u8 kIerWritable = 0x0F;
    // IIR: bit 0 clear while an interrupt is pending, bits 3:1 its source, bits 7:6 set with the FIFOs on.
    static constexpr u8 kIirNone = 0x01;
    static constexpr u8 kIirLineStatus = 0x06;
    static constexpr u8 kIirReceivedData = 0x04;
    static constexpr u8 kIirCharacterTimeout = 0x0C;
    static constexpr u8 kIirTransmitEmpty = 0x02;
    static constexpr u8 kIirModemStatus = 0x00;
    static constexpr u8 kIirFifosEnabled = 0xC0;
    // FCR
    static constexpr u8 kFcrEnable = 0x01;
    static constexpr u8 kFcrClearReceiver = 0x02;
    static constexpr u8 kFcrClearTransmitter = 0x04;
    static constexpr u8 kFcrDmaMode = 0x08;
    static constexpr u8 kFcrTriggerShift = 6;  // bits 7:6: 1, 4, 8 or 14 bytes
    // LCR
    static constexpr u8 kLcrDivisorLatch = 0x80;  // DLAB
    // MCR
    static constexpr u8 kMcrDtr = 0x01;
    static constexpr u8 kMcrRts = 0x02;
    static constexpr u8 kMcrOut1 = 0x04;
    static constexpr u8 kMcrOut2 = 0x08;
    static constexpr u8 kMcrLoop = 0x10;
    static constexpr u8 kMcrWritable = 0x1F;
    // LSR
    static constexpr u8 kLsrDataReady = 0x01;
    static constexpr u8 kLsrOverrun = 0x02;
    static constexpr u8 kLsrTransmitEmpty = 0x20;    // THRE
    static constexpr u8 kLsrTransmitterIdle = 0x40;  // TEMT
    // MSR: bits 3:0 are the deltas of the inputs in bits 7:4 since MSR was last read.
    static constexpr u8 kMsrDeltaCts = 0x01;
    static constexpr u8 kMsrDeltaDsr = 0x02;
    static constexpr u8 kMsrTrailingRi = 0x04;  // RI went from on to off
    static constexpr u8 kMsrDeltaDcd = 0x08;
    static constexpr u8 kMsrCts = 0x10;
    static constexpr u8 kMsrDsr = 0x20;
    static constexpr u8 kMsrRi = 0x40;
    static constexpr u8 kMsrDcd = 0x80;
    // Outside loopback the host's console is a connected, ready peer: CTS, DSR and DCD on.
    static constexpr u8 kMsrConnectedPeer = kMsrCts | kMsrDsr | kMsrDcd;
    // The divisor after reset: 9600 baud from the PC's 1.8432 MHz clock.
    static constexpr u16 kResetDivisor = 12;

    Serial16550A(u16 base, u8 irq_line, IrqLines& irqs) : base_(base), irq_line_(irq_line), irqs_(irqs) {}
    Serial16550A(const Serial16550A&) = delete;
    Serial16550A& operator=(const Serial16550A&) = delete;

    u16 base() const { return base_; }
    u8 irq_line() const { return irq_line_; }
    u16 divisor() const { return divisor_; }
    bool irq_high() const { return line_high_; }

    // A 2- or 4-byte access is split into byte accesses at consecutive ports, as the PC's bus
    // does for an 8-bit device; a byte beyond the UART's 8 ports reads all-ones.
    virt::DeviceOutcome io_read(u16 port, u8 size, u32& value, virt::DeviceHost& host) override;
    virt::DeviceOutcome io_write(u16 port, u8 size, u32 value, virt::DeviceHost& host) override;
    // Prints the partial line.
    void flush(virt::DeviceHost& host) override;
    // Prints the partial line as the start of a line that further output continues: for the
    // console a user types into, whose prompt and echo should show before the line ends.
    void flush_part(virt::DeviceHost& host) { console_.flush_part(host); }

    // One byte from the host's side of the line. False when the receiver overruns (LSR.OE set):
    // with the FIFO on, the new byte is lost (the FIFO is full); without it, the unread byte is
    // replaced. Also false, and the byte lost without an overrun, in loopback mode, where the
    // receiver hears only the transmitter.
    bool receive(u8 byte);
    // How many bytes receive() takes now without an overrun (0 in loopback mode).
    usize receive_space() const;

private:
    u8 read_register(u16 offset);
    void write_register(u16 offset, u8 value, virt::DeviceHost& host);
    u8 read_data();
    u8 read_interrupt_id();
    u8 read_line_status();
    u8 read_modem_status();
    void write_data(u8 value, virt::DeviceHost& host);
    void write_interrupt_enable(u8 value);
    void write_fifo_control(u8 value);
    void write_modem_control(u8 value);

    bool divisor_latch() const { return line_control_ & kLcrDivisorLatch; }
    bool loopback() const { return modem_control_ & kMcrLoop; }
    bool fifos_enabled() const { return fifo_control_ & kFcrEnable; }
    usize receiver_capacity() const { return fifos_enabled() ? kFifoSize : 1; }
    usize trigger_level() const;
    u8 modem_inputs() const;
    u8 pending_interrupt() const;
    bool take_received(u8 byte);
    void clear_receiver();
    void update_irq();

    u16 base_;
    u8 irq_line_;
    IrqLines& irqs_;
    u16 divisor_ = kResetDivisor;
    u8 interrupt_enable_ = 0;
    u8 fifo_control_ = 0;
    u8 line_control_ = 0;
    u8 modem_control_ = 0;
    u8 line_errors_ = 0;   // LSR.OE until LSR is read
    u8 modem_deltas_ = 0;  // MSR bits 3:0 until MSR is read
    u8 scratch_ = 0;
    bool transmit_empty_pending_ = false;  // the THR-empty interrupt, until IIR reports it or THR is written
    bool line_high_ = false;
    u8 last_received_ = 0;  // what RBR reads once the receiver is empty
    u8 receiver_[kFifoSize] = {};
    usize receiver_head_ = 0;
    usize receiver_count_ = 0;
    virt::ConsoleLine console_;
};

}  // namespace nestor::pc
