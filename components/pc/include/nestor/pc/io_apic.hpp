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

#include "nestor/arch/apic_regs.hpp"
#include "nestor/pc/links.hpp"
#include "nestor/virt/device_bus.hpp"

namespace nestor::pc {

class IoApic final : public virt::Device, public EoiListener {
public:
    // The platform registers [kBase, kBase + kSize) on the bus.
    static constexpr u64 kBase = apic_regs::kIoApicBase;
    static constexpr u64 kSize = apic_regs::kIoApicPageSize;
    static constexpr u8 kPins = 24;

    // MMIO offsets from kBase; only 32-bit accesses at these two reach a register.
    static constexpr u64 kRegisterSelect = apic_regs::kIoApicRegisterSelect;  // IOREGSEL
    static constexpr u64 kWindow = apic_regs::kIoApicWindow;                  // IOWIN

    // Indirect registers (IOREGSEL values).
    static constexpr u8 kIdRegister = apic_regs::kIoApicId;
    static constexpr u8 kVersionRegister = apic_regs::kIoApicVersion;
    static constexpr u8 kArbitrationRegister = apic_regs::kIoApicArbitration;
    static constexpr u8 kRedirectionTable = apic_regs::kIoApicRedirectionTable;

    static constexpr u32 kIdShift = apic_regs::kIoApicIdShift;
    static constexpr u32 kIdMask = 0x0F000000;  // bits 27:24; the rest is reserved
    // Version 0x11, maximum redirection entry (bits 23:16) kPins - 1.
    static constexpr u32 kVersion = 0x11 | ((kPins - 1u) << 16);

    // Redirection-entry fields.
    static constexpr u64 kEntryVector = apic_regs::kEntryVector;
    static constexpr u32 kEntryModeShift = apic_regs::kEntryModeShift;
    static constexpr u64 kEntryMode = apic_regs::kEntryMode;
    static constexpr u64 kEntryLogical = apic_regs::kEntryLogical;
    static constexpr u64 kEntryDeliveryStatus = apic_regs::kEntryDeliveryStatus;  // read-only
    static constexpr u64 kEntryActiveLow = apic_regs::kEntryActiveLow;
    static constexpr u64 kEntryRemoteIrr = apic_regs::kEntryRemoteIrr;  // read-only
    static constexpr u64 kEntryLevel = apic_regs::kEntryLevel;
    static constexpr u64 kEntryMasked = apic_regs::kEntryMasked;
    static constexpr u32 kEntryDestinationShift = apic_regs::kEntryDestinationShift;
    static constexpr u64 kEntryDestination = apic_regs::kEntryDestination;
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
