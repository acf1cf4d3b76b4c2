// The PC platform's I/O APIC, an 82093AA with 24 pins: a redirection entry per pin turns the
// pin's level into an interrupt message on the APIC bus. Reached through two 32-bit registers
// in its MMIO page, IOREGSEL (the index of an indirect register) and IOWIN (its value).
// Behaviour from the 82093AA datasheet; where it is silent, as KVM (arch/x86/kvm/ioapic.c) and
// QEMU (hw/intc/ioapic.c) do: an entry rewritten as edge-triggered drops its remote IRR (Linux
// relies on that to clear a stuck one), and a level entry is re-evaluated after every write.
//
// A pin's level is electrical: a rising edge or a high level asserts an active-high entry, a
// falling edge or a low level an active-low one (polarity, bit 13). Messages are delivered at
// once, so delivery status (bit 12) always reads 0.
#pragma once

#include "nestor/pc/links.hpp"
#include "nestor/virt/device_bus.hpp"

namespace nestor::pc {

class IoApic final : public virt::Device, public EoiListener {
public:
    // The platform registers [kBase, kBase + kSize) on the bus.
    static constexpr u64 kBase = 0xFEC00000;
    static constexpr u64 kSize = 0x1000;
    static constexpr u8 kPins = 24;

    // MMIO offsets from kBase; only 32-bit accesses at these two reach a register.
    static constexpr u64 kRegisterSelect = 0x00;  // IOREGSEL
    static constexpr u64 kWindow = 0x10;          // IOWIN

    // Indirect registers (IOREGSEL values).
    static constexpr u8 kIdRegister = 0x00;
    static constexpr u8 kVersionRegister = 0x01;
    static constexpr u8 kArbitrationRegister = 0x02;
    static constexpr u8 kRedirectionTable = 0x10;  // two per pin: low dword, then high dword

    static constexpr u32 kIdShift = 24;
    static constexpr u32 kIdMask = 0x0F000000;  // bits 27:24; the rest is reserved
    // Version 0x11, maximum redirection entry (bits 23:16) kPins - 1.
    static constexpr u32 kVersion = 0x11 | ((kPins - 1u) << 16);

    // Redirection-entry fields.
    static constexpr u64 kEntryVector = 0xFF;
    static constexpr u32 kEntryModeShift = 8;
    static constexpr u64 kEntryMode = 7u << kEntryModeShift;
    static constexpr u64 kEntryLogical = 1u << 11;
    static constexpr u64 kEntryDeliveryStatus = 1u << 12;  // read-only
    static constexpr u64 kEntryActiveLow = 1u << 13;
    static constexpr u64 kEntryRemoteIrr = 1u << 14;  // read-only
    static constexpr u64 kEntryLevel = 1u << 15;
    static constexpr u64 kEntryMasked = 1u << 16;
    static constexpr u32 kEntryDestinationShift = 56;
    static constexpr u64 kEntryDestination = u64{0xFF} << kEntryDestinationShift;
    // What a write can change: bits 55:17 are reserved and read 0.
    static constexpr u64 kEntryWritable =
        kEntryVector | kEntryMode | kEntryLogical | kEntryActiveLow | kEntryLevel | kEntryMasked | kEntryDestination;
    static constexpr u64 kEntryReset = kEntryMasked;

    IoApic(ApicBus& bus, u8 id);

    // Everything but a 32-bit access at IOREGSEL or IOWIN is ignored: such reads return 0 (as
    // QEMU's do), such writes change nothing. Registers IOREGSEL names that do not exist read 0.
    virt::DeviceOutcome mmio_read(u64 address, u8 size, u64& value, virt::DeviceHost& host) override;
    virt::DeviceOutcome mmio_write(u64 address, u8 size, u64 value, virt::DeviceHost& host) override;

    // The electrical level of an input pin; pins from kPins on are ignored.
    void set_level(u8 pin, bool high);
    // A local APIC's EOI of a level-triggered vector.
    void end_of_interrupt(u8 vector) override;
    // Power-on state: every entry masked, ID as constructed. The pins keep their levels: their
    // sources drive them.
    void reset();

    u8 id() const { return id_; }
    u64 redirection_entry(u8 pin) const { return pin < kPins ? entries_[pin] : 0; }

private:
    u32 read_register(u8 index) const;
    void write_register(u8 index, u32 value);
    void write_entry_half(u8 pin, bool high_half, u32 value);
    bool asserted(u8 pin) const;
    // A level entry sends while its line is asserted, it is unmasked and its remote IRR is clear.
    void service_level(u8 pin);
    void send(u8 pin);

    ApicBus& bus_;
    u8 reset_id_;
    u8 id_;
    u8 select_ = 0;   // IOREGSEL
    u32 levels_ = 0;  // bit per pin: its electrical level
    bool in_eoi_ = false;
    u64 entries_[kPins];
};

}  // namespace nestor::pc
