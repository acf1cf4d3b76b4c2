#include "nestor/pc/pic8259.hpp"

#include "nestor/pc/byte_ports.hpp"

namespace nestor::pc {

namespace {

constexpr u8 bit(u8 irq) { return static_cast<u8>(1u << irq); }
constexpr u8 set_bit(u8 bits, u8 irq, bool on) { return static_cast<u8>(on ? bits | bit(irq) : bits & ~bit(irq)); }

// OCW2 commands (bits 7:5: R, SL, EOI).
enum Ocw2 : u8 {
    kClearRotateInAutoEoi = 0,
    kNonSpecificEoi = 1,
    kNoOperation = 2,
    kSpecificEoi = 3,
    kSetRotateInAutoEoi = 4,
    kRotateOnNonSpecificEoi = 5,
    kSetPriority = 6,
    kRotateOnSpecificEoi = 7,
};

}  // namespace

void Pic8259::reset() {
    u8 input = input_;
    *this = Pic8259(master_, elcr_mask_);
    input_ = input;  // the lines keep their levels; their edges are gone
}

void Pic8259::set_input(u8 irq, bool high) {
    bool was_high = input_ & bit(irq);
    input_ = set_bit(input_, irq, high);
    if (elcr_ & bit(irq))
        irr_ = set_bit(irr_, irq, high);
    else if (high && !was_high)
        irr_ |= bit(irq);
}

u8 Pic8259::priority(u8 mask) const {
    for (u8 level = 0; level < 8; ++level)
        if (mask & bit(irq_of(level))) return level;
    return kNone;
}

u8 Pic8259::pending() const {
    u8 request = priority(static_cast<u8>(irr_ & ~imr_));
    if (request == kNone) return kNone;
    u8 in_service = isr_;
    // Special mask mode: a masked level in service no longer holds back lower ones.
    if (special_mask_) in_service &= static_cast<u8>(~imr_);
    // Special fully nested mode: the slave may interrupt its own requests in service.
    if (special_fully_nested_ && master_) in_service &= static_cast<u8>(~bit(Pic8259Pair::kCascadeIrq));
    if (request >= priority(in_service)) return kNone;
    return irq_of(request);
}

void Pic8259::acknowledge(u8 irq) {
    if (!(elcr_ & bit(irq))) irr_ &= static_cast<u8>(~bit(irq));
    if (!auto_eoi_)
        isr_ |= bit(irq);
    else if (rotate_on_auto_eoi_)
        highest_ = static_cast<u8>((irq + 1) & 7);
}

u8 Pic8259::read(bool a0) {
    if (poll_) {
        poll_ = false;
        return poll();
    }
    if (a0) return imr_;
    return read_isr_ ? isr_ : irr_;
}

// The poll word, and the poll's INTA: the pending request goes in service.
u8 Pic8259::poll() {
    u8 irq = pending();
    if (irq == kNone) return 0;
    acknowledge(irq);
    return static_cast<u8>(kPollPending | irq);
}

void Pic8259::write(bool a0, u8 value) {
    if (a0)
        write_data(value);
    else if (value & kIcw1Select)
        initialize(value);
    else if (value & kOcw3Select)
        operation3(value);
    else
        operation2(value);
}

void Pic8259::write_elcr(u8 value) {
    elcr_ = value & elcr_mask_;
    // A line now level-triggered requests exactly while it is high.
    irr_ = static_cast<u8>((irr_ & ~elcr_) | (input_ & elcr_));
}

// ICW1: the edge latches, IMR, ISR, the rotation and the special mask are cleared, the status
// read selects IRR, and without ICW4 its functions (auto-EOI, special fully nested) are off.
void Pic8259::initialize(u8 icw1) {
    irr_ &= elcr_;
    imr_ = 0;
    isr_ = 0;
    highest_ = 0;
    base_ = 0;
    special_mask_ = false;
    read_isr_ = false;
    poll_ = false;
    rotate_on_auto_eoi_ = false;
    needs_icw4_ = icw1 & kIcw1NeedsIcw4;
    single_ = icw1 & kIcw1Single;
    if (!needs_icw4_) {
        auto_eoi_ = false;
        special_fully_nested_ = false;
    }
    step_ = InitStep::icw2;
}

void Pic8259::write_data(u8 value) {
    InitStep after_icw3 = needs_icw4_ ? InitStep::icw4 : InitStep::ready;
    switch (step_) {
    case InitStep::ready: imr_ = value; break;
    case InitStep::icw2:
        base_ = value & 0xF8;  // the low three bits are the IRQ's
        step_ = single_ ? after_icw3 : InitStep::icw3;
        break;
    case InitStep::icw3: step_ = after_icw3; break;  // the cascade is wired: IR2 to the slave
    case InitStep::icw4:
        auto_eoi_ = value & kIcw4AutoEoi;
        special_fully_nested_ = value & kIcw4SpecialFullyNested;
        step_ = InitStep::ready;
        break;
    }
}

void Pic8259::operation2(u8 ocw2) {
    u8 level = ocw2 & 7;
    switch (ocw2 >> 5) {
    case kClearRotateInAutoEoi: rotate_on_auto_eoi_ = false; break;
    case kSetRotateInAutoEoi: rotate_on_auto_eoi_ = true; break;
    case kNonSpecificEoi:
    case kRotateOnNonSpecificEoi: {
        u8 highest_in_service = priority(isr_);
        if (highest_in_service != kNone)
            end_of_interrupt(irq_of(highest_in_service), (ocw2 >> 5) == kRotateOnNonSpecificEoi);
        break;
    }
    case kSpecificEoi: end_of_interrupt(level, false); break;
    case kRotateOnSpecificEoi: end_of_interrupt(level, true); break;
    case kSetPriority: highest_ = static_cast<u8>((level + 1) & 7); break;  // `level` becomes the lowest
    default: break;  // kNoOperation: the three bits name nothing else
    }
}

void Pic8259::end_of_interrupt(u8 irq, bool rotate) {
    isr_ &= static_cast<u8>(~bit(irq));
    if (rotate) highest_ = static_cast<u8>((irq + 1) & 7);
}

void Pic8259::operation3(u8 ocw3) {
    if (ocw3 & kOcw3Poll) poll_ = true;
    if (ocw3 & kOcw3ReadRegister) read_isr_ = ocw3 & kOcw3ReadIsr;
    if (ocw3 & kOcw3SetSpecialMask) special_mask_ = ocw3 & kOcw3SpecialMask;
}

virt::DeviceOutcome Pic8259Pair::io_read(u16 port, u8 size, u32& value, virt::DeviceHost&) {
    if (size == 0 || size > kMaxPortBytes) return {};
    value = read_bytes(port, size, [this](u16 at) { return read_byte(at); });
    return {};
}

virt::DeviceOutcome Pic8259Pair::io_write(u16 port, u8 size, u32 value, virt::DeviceHost&) {
    if (size == 0 || size > kMaxPortBytes) return {};
    write_bytes(port, size, value, [this](u16 at, u8 byte) { write_byte(at, byte); });
    return {};
}

Pic8259* Pic8259Pair::chip_at(u16 port) {
    if ((port & ~1) == kMasterBase) return &master_;
    if ((port & ~1) == kSlaveBase) return &slave_;
    return nullptr;
}

Pic8259* Pic8259Pair::elcr_owner(u16 port) {
    if (port == kElcrBase) return &master_;
    if (port == kElcrBase + 1) return &slave_;
    return nullptr;
}

u8 Pic8259Pair::read_byte(u16 port) {
    u8 value = 0xFF;
    if (Pic8259* chip = chip_at(port))
        value = chip->read(port & 1);
    else if (Pic8259* chip = elcr_owner(port))
        value = chip->elcr();
    update_cascade();  // a poll acknowledges
    return value;
}

void Pic8259Pair::write_byte(u16 port, u8 value) {
    if (Pic8259* chip = chip_at(port))
        chip->write(port & 1, value);
    else if (Pic8259* chip = elcr_owner(port))
        chip->write_elcr(value);
    update_cascade();
}

void Pic8259Pair::set_level(u8 line, bool high) {
    if (line >= kLines || line == kCascadeIrq) return;
    if (line < 8)
        master_.set_input(line, high);
    else
        slave_.set_input(static_cast<u8>(line - 8), high);
    update_cascade();
}

u8 Pic8259Pair::acknowledge() {
    u8 irq = master_.pending();
    if (irq == Pic8259::kNone) return master_.vector(kSpuriousIrq);
    master_.acknowledge(irq);
    u8 vector = master_.vector(irq);
    if (irq == kCascadeIrq) {
        u8 slave_irq = slave_.pending();
        if (slave_irq == Pic8259::kNone) {
            vector = slave_.vector(kSpuriousIrq);
        } else {
            slave_.acknowledge(slave_irq);
            vector = slave_.vector(slave_irq);
        }
    }
    update_cascade();
    return vector;
}

void Pic8259Pair::reset() {
    master_.reset();
    slave_.reset();
    update_cascade();
}

void Pic8259Pair::update_cascade() { master_.set_input(kCascadeIrq, slave_.pending() != Pic8259::kNone); }

}  // namespace nestor::pc
