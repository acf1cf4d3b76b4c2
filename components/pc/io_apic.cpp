#include "nestor/pc/io_apic.hpp"

namespace nestor::pc {

namespace {

constexpr u8 kDwordAccess = 4;

DeliveryMode mode_of(u64 entry) {
    return static_cast<DeliveryMode>((entry & IoApic::kEntryMode) >> IoApic::kEntryModeShift);
}

// The 82093AA treats NMI, INIT, SMI and ExtINT as edge-triggered whatever the trigger bit says:
// only fixed and lowest-priority entries are level-triggered, hold a remote IRR and need an EOI.
bool level_triggered(u64 entry) {
    DeliveryMode mode = mode_of(entry);
    return (entry & IoApic::kEntryLevel) && (mode == DeliveryMode::fixed || mode == DeliveryMode::lowest_priority);
}

// Modes 3 and 6 are reserved in a redirection entry: such an entry sends nothing.
bool sendable(u64 entry) {
    u64 mode = (entry & IoApic::kEntryMode) >> IoApic::kEntryModeShift;
    return mode != 3 && mode != 6;
}

}  // namespace

IoApic::IoApic(ApicBus& bus, u8 id) : bus_(bus), reset_id_(static_cast<u8>(id & 0xF)), id_(reset_id_) { reset(); }

void IoApic::reset() {
    id_ = reset_id_;
    select_ = 0;
    for (u64& entry : entries_) entry = kEntryReset;
}

virt::DeviceOutcome IoApic::mmio_read(u64 address, u8 size, u64& value, virt::DeviceHost&) {
    u64 offset = address - kBase;
    value = 0;
    if (size != kDwordAccess) return {};
    if (offset == kRegisterSelect)
        value = select_;
    else if (offset == kWindow)
        value = read_register(select_);
    return {};
}

virt::DeviceOutcome IoApic::mmio_write(u64 address, u8 size, u64 value, virt::DeviceHost&) {
    u64 offset = address - kBase;
    if (size != kDwordAccess) return {};
    if (offset == kRegisterSelect)
        select_ = static_cast<u8>(value);
    else if (offset == kWindow)
        write_register(select_, static_cast<u32>(value));
    return {};
}

u32 IoApic::read_register(u8 index) const {
    switch (index) {
    case kIdRegister: return u32{id_} << kIdShift;
    case kVersionRegister: return kVersion;
    // The arbitration ID is loaded from the APIC ID (KVM reads it the same way).
    case kArbitrationRegister: return u32{id_} << kIdShift;
    default: break;
    }
    if (index < kRedirectionTable || index >= kRedirectionTable + 2 * kPins) return 0;
    u8 pin = static_cast<u8>((index - kRedirectionTable) / 2);
    bool high_half = (index & 1) != 0;
    return static_cast<u32>(high_half ? entries_[pin] >> 32 : entries_[pin]);
}

void IoApic::write_register(u8 index, u32 value) {
    if (index == kIdRegister) {
        id_ = static_cast<u8>((value & kIdMask) >> kIdShift);
        return;
    }
    // Version and arbitration are read-only; other indices name nothing.
    if (index < kRedirectionTable || index >= kRedirectionTable + 2 * kPins) return;
    write_entry_half(static_cast<u8>((index - kRedirectionTable) / 2), (index & 1) != 0, value);
}

void IoApic::write_entry_half(u8 pin, bool high_half, u32 value) {
    u64 half = high_half ? u64{0xFFFFFFFF} << 32 : u64{0xFFFFFFFF};
    u64 shifted = high_half ? u64{value} << 32 : u64{value};
    u64 writable = kEntryWritable & half;
    u64& entry = entries_[pin];
    entry = (entry & ~writable) | (shifted & writable);
    // Rewriting an entry as edge-triggered clears a remote IRR left behind (as KVM and QEMU do).
    if (!(entry & kEntryLevel)) entry &= ~kEntryRemoteIrr;
    // Unmasking (or otherwise reprogramming) a level entry whose line is asserted sends it.
    service_level(pin);
}

bool IoApic::asserted(u8 pin) const {
    bool high = (levels_ >> pin) & 1;
    return high != ((entries_[pin] & kEntryActiveLow) != 0);
}

void IoApic::set_level(u8 pin, bool high) {
    if (pin >= kPins) return;
    bool was_asserted = asserted(pin);
    u32 bit = u32{1} << pin;
    levels_ = high ? levels_ | bit : levels_ & ~bit;
    if (level_triggered(entries_[pin])) {
        service_level(pin);
        return;
    }
    // An edge entry sends on the asserting edge if it is unmasked then; a masked edge is lost.
    if (!was_asserted && asserted(pin) && !(entries_[pin] & kEntryMasked)) send(pin);
}

void IoApic::service_level(u8 pin) {
    u64 entry = entries_[pin];
    if (!level_triggered(entry) || (entry & (kEntryMasked | kEntryRemoteIrr)) || !asserted(pin)) return;
    // Remote IRR is set before the message goes out, so a delivery that reaches back into this
    // model already sees the interrupt in flight.
    entries_[pin] |= kEntryRemoteIrr;
    send(pin);
}

void IoApic::end_of_interrupt(u8 vector) {
    // An EOI that arrives while an EOI's re-send is being delivered (a bus that accepts and
    // completes a vector at once) only clears remote IRR: re-sending from there could go round
    // forever. So an EOI sends at most once per entry.
    bool resend = !in_eoi_;
    in_eoi_ = true;
    for (u8 pin = 0; pin < kPins; ++pin) {
        u64 entry = entries_[pin];
        if (!(entry & kEntryRemoteIrr) || (entry & kEntryVector) != vector) continue;
        entries_[pin] &= ~kEntryRemoteIrr;
        if (resend) service_level(pin);
    }
    if (resend) in_eoi_ = false;
}

void IoApic::send(u8 pin) {
    u64 entry = entries_[pin];
    if (!sendable(entry)) return;
    ApicMessage message{};
    message.destination = static_cast<u32>(entry >> kEntryDestinationShift);
    message.vector = static_cast<u8>(entry & kEntryVector);
    message.mode = mode_of(entry);
    message.logical = (entry & kEntryLogical) != 0;
    message.level_triggered = level_triggered(entry);
    message.assert = true;
    bus_.deliver(message);
}

}  // namespace nestor::pc
