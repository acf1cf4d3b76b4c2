#include "nestor/pc/serial16550a.hpp"

namespace nestor::pc {

namespace {

constexpr u8 kFcrProgrammable = Serial16550A::kFcrEnable | Serial16550A::kFcrDmaMode | 0xC0;
constexpr u8 kTriggerLevels[4] = {1, 4, 8, 14};

u8 byte_of(u32 value, u8 index) { return static_cast<u8>(value >> (8 * index)); }

}  // namespace

virt::DeviceOutcome Serial16550A::io_read(u16 port, u8 size, u32& value, virt::DeviceHost&) {
    for (u8 i = 0; i < size && i < 4; ++i) {
        u16 offset = static_cast<u16>(port + i - base_);
        u32 byte = offset < kPorts ? read_register(offset) : 0xFF;
        value = (value & ~(0xFFu << (8 * i))) | (byte << (8 * i));
        update_irq();
    }
    return {};
}

virt::DeviceOutcome Serial16550A::io_write(u16 port, u8 size, u32 value, virt::DeviceHost& host) {
    for (u8 i = 0; i < size && i < 4; ++i) {
        u16 offset = static_cast<u16>(port + i - base_);
        if (offset < kPorts) write_register(offset, byte_of(value, i), host);
        update_irq();
    }
    return {};
}

void Serial16550A::flush(virt::DeviceHost& host) { console_.flush(host); }

bool Serial16550A::receive(u8 byte) {
    if (loopback()) return false;
    bool taken = take_received(byte);
    update_irq();
    return taken;
}

usize Serial16550A::receive_space() const { return loopback() ? 0 : receiver_capacity() - receiver_count_; }

u8 Serial16550A::read_register(u16 offset) {
    switch (offset) {
    case kData: return divisor_latch() ? static_cast<u8>(divisor_) : read_data();
    case kInterruptEnable: return divisor_latch() ? static_cast<u8>(divisor_ >> 8) : interrupt_enable_;
    case kInterruptId: return read_interrupt_id();
    case kLineControl: return line_control_;
    case kModemControl: return modem_control_;
    case kLineStatus: return read_line_status();
    case kModemStatus: return read_modem_status();
    case kScratch: return scratch_;
    default: return 0xFF;
    }
}

void Serial16550A::write_register(u16 offset, u8 value, virt::DeviceHost& host) {
    switch (offset) {
    case kData:
        if (divisor_latch())
            divisor_ = static_cast<u16>((divisor_ & 0xFF00) | value);
        else
            write_data(value, host);
        return;
    case kInterruptEnable:
        if (divisor_latch())
            divisor_ = static_cast<u16>((divisor_ & 0x00FF) | (value << 8));
        else
            write_interrupt_enable(value);
        return;
    case kInterruptId: write_fifo_control(value); return;
    case kLineControl: line_control_ = value; return;
    case kModemControl: write_modem_control(value); return;
    case kScratch: scratch_ = value; return;
    default: return;  // LSR and MSR: writing them is the factory's test mode, not modelled
    }
}

u8 Serial16550A::read_data() {
    if (receiver_count_ > 0) {
        last_received_ = receiver_[receiver_head_];
        receiver_head_ = (receiver_head_ + 1) % kFifoSize;
        --receiver_count_;
    }
    return last_received_;
}

// Reading IIR is what acknowledges the THR-empty interrupt, but only when IIR reports it.
u8 Serial16550A::read_interrupt_id() {
    u8 source = pending_interrupt();
    if (source == kIirTransmitEmpty) transmit_empty_pending_ = false;
    return static_cast<u8>(source | (fifos_enabled() ? kIirFifosEnabled : 0));
}

u8 Serial16550A::read_line_status() {
    u8 status = static_cast<u8>(line_errors_ | kLsrTransmitEmpty | kLsrTransmitterIdle);
    if (receiver_count_ > 0) status |= kLsrDataReady;
    line_errors_ = 0;
    return status;
}

u8 Serial16550A::read_modem_status() {
    u8 status = static_cast<u8>(modem_inputs() | modem_deltas_);
    modem_deltas_ = 0;
    return status;
}

// Writing THR acknowledges the THR-empty interrupt; the byte leaves at once, THR is empty again,
// and the interrupt is pending anew.
void Serial16550A::write_data(u8 value, virt::DeviceHost& host) {
    transmit_empty_pending_ = false;
    update_irq();
    if (loopback())
        take_received(value);
    else
        console_.put(value, host);
    transmit_empty_pending_ = interrupt_enable_ & kIerTransmitEmpty;
}

// Enabling the THR-empty interrupt while THR is empty raises it, even after IIR acknowledged it
// (Linux's THRE test and Windows' driver count on that).
void Serial16550A::write_interrupt_enable(u8 value) {
    bool was_enabled = interrupt_enable_ & kIerTransmitEmpty;
    interrupt_enable_ = value & kIerWritable;
    bool enabled = interrupt_enable_ & kIerTransmitEmpty;
    if (!enabled)
        transmit_empty_pending_ = false;
    else if (!was_enabled)
        transmit_empty_pending_ = true;
}

// FCR bit 0 must be set for the other bits to be programmed; turning the FIFOs on or off empties
// them. The transmitter FIFO is always empty: resetting it changes nothing.
void Serial16550A::write_fifo_control(u8 value) {
    bool enable = value & kFcrEnable;
    if (enable != fifos_enabled()) clear_receiver();
    if (!enable) {
        fifo_control_ &= static_cast<u8>(~kFcrEnable);
        return;
    }
    if (value & kFcrClearReceiver) clear_receiver();
    fifo_control_ = value & kFcrProgrammable;
}

void Serial16550A::write_modem_control(u8 value) {
    u8 before = modem_inputs();
    modem_control_ = value & kMcrWritable;
    u8 after = modem_inputs();
    u8 changed = before ^ after;
    if (changed & kMsrCts) modem_deltas_ |= kMsrDeltaCts;
    if (changed & kMsrDsr) modem_deltas_ |= kMsrDeltaDsr;
    if (changed & kMsrDcd) modem_deltas_ |= kMsrDeltaDcd;
    if ((before & kMsrRi) && !(after & kMsrRi)) modem_deltas_ |= kMsrTrailingRi;
}

usize Serial16550A::trigger_level() const { return kTriggerLevels[fifo_control_ >> kFcrTriggerShift]; }

// In loopback mode the modem inputs are wired to the outputs: RTS to CTS, DTR to DSR, OUT1 to RI,
// OUT2 to DCD.
u8 Serial16550A::modem_inputs() const {
    if (!loopback()) return kMsrConnectedPeer;
    u8 inputs = 0;
    if (modem_control_ & kMcrRts) inputs |= kMsrCts;
    if (modem_control_ & kMcrDtr) inputs |= kMsrDsr;
    if (modem_control_ & kMcrOut1) inputs |= kMsrRi;
    if (modem_control_ & kMcrOut2) inputs |= kMsrDcd;
    return inputs;
}

// The enabled interrupt of highest priority, as IIR bits 3:0.
u8 Serial16550A::pending_interrupt() const {
    u8 enabled = interrupt_enable_;
    if ((enabled & kIerLineStatus) && line_errors_) return kIirLineStatus;
    if ((enabled & kIerReceivedData) && receiver_count_ > 0) {
        if (!fifos_enabled() || receiver_count_ >= trigger_level()) return kIirReceivedData;
        return kIirCharacterTimeout;
    }
    if ((enabled & kIerTransmitEmpty) && transmit_empty_pending_) return kIirTransmitEmpty;
    if ((enabled & kIerModemStatus) && modem_deltas_) return kIirModemStatus;
    return kIirNone;
}

// A byte reaching the receiver (from the host, or from the transmitter in loopback mode).
bool Serial16550A::take_received(u8 byte) {
    if (receiver_count_ < receiver_capacity()) {
        receiver_[(receiver_head_ + receiver_count_) % kFifoSize] = byte;
        ++receiver_count_;
        return true;
    }
    line_errors_ |= kLsrOverrun;
    // Without the FIFO the new byte overwrites the unread one; with it, the new one is lost.
    if (!fifos_enabled()) receiver_[receiver_head_] = byte;
    return false;
}

void Serial16550A::clear_receiver() {
    receiver_head_ = 0;
    receiver_count_ = 0;
}

void Serial16550A::update_irq() {
    bool gate_open = (modem_control_ & kMcrOut2) && !loopback();
    bool high = gate_open && pending_interrupt() != kIirNone;
    if (high == line_high_) return;
    line_high_ = high;
    irqs_.set_level(irq_line_, high);
}

}  // namespace nestor::pc
