#include <catch2/catch.hpp>
#include <random>
#include <vector>

#include "nestor/pc/io_apic.hpp"
#include "pc_fakes.hpp"

using namespace nestor;
using namespace nestor::pc;
using namespace nestor::pc::testing;

namespace {

class RecordingBus final : public ApicBus {
public:
    void deliver(const ApicMessage& message) override { messages.push_back(message); }
    std::vector<ApicMessage> messages;
};

constexpr u8 kId = 9;

class Fixture {
public:
    RecordingBus bus;
    IoApic io_apic{bus, kId};
    NullHost host;

    u32 read(u64 offset, u8 size = 4) {
        u64 value = ~u64{0};
        CHECK(io_apic.mmio_read(IoApic::kBase + offset, size, value, host).action ==
              virt::DeviceOutcome::Action::complete);
        return static_cast<u32>(value);
    }
    void write(u64 offset, u64 value, u8 size = 4) {
        CHECK(io_apic.mmio_write(IoApic::kBase + offset, size, value, host).action ==
              virt::DeviceOutcome::Action::complete);
    }
    u32 read_register(u8 index) {
        write(IoApic::kRegisterSelect, index);
        return read(IoApic::kWindow);
    }
    void write_register(u8 index, u32 value) {
        write(IoApic::kRegisterSelect, index);
        write(IoApic::kWindow, value);
    }
    static u8 low(u8 pin) { return static_cast<u8>(IoApic::kRedirectionTable + 2 * pin); }
    static u8 high(u8 pin) { return static_cast<u8>(IoApic::kRedirectionTable + 2 * pin + 1); }
    void program(u8 pin, u64 entry) {
        write_register(high(pin), static_cast<u32>(entry >> 32));
        write_register(low(pin), static_cast<u32>(entry));
    }
    usize sent() const { return bus.messages.size(); }
};

constexpr u64 kLevel = IoApic::kEntryLevel;
constexpr u64 kMasked = IoApic::kEntryMasked;
constexpr u64 kActiveLow = IoApic::kEntryActiveLow;
constexpr u64 kRemoteIrr = IoApic::kEntryRemoteIrr;

constexpr u64 entry(u8 vector, DeliveryMode mode = DeliveryMode::fixed, u8 destination = 0, u64 flags = 0) {
    return vector | (u64{static_cast<u8>(mode)} << IoApic::kEntryModeShift) |
           (u64{destination} << IoApic::kEntryDestinationShift) | flags;
}

}  // namespace

TEST_CASE("pc.ioapic.reset_values") {
    Fixture f;
    CHECK(f.read(IoApic::kRegisterSelect) == 0);
    CHECK(f.read_register(IoApic::kIdRegister) == u32{kId} << 24);
    CHECK(f.read_register(IoApic::kVersionRegister) == 0x00170011);
    CHECK(f.read_register(IoApic::kArbitrationRegister) == u32{kId} << 24);
    for (u8 pin = 0; pin < IoApic::kPins; ++pin) {
        CHECK(f.read_register(Fixture::low(pin)) == 0x00010000);  // masked
        CHECK(f.read_register(Fixture::high(pin)) == 0);
    }
    CHECK(f.io_apic.id() == kId);
}

TEST_CASE("pc.ioapic.registers_keep_only_their_writable_bits") {
    Fixture f;
    f.write(IoApic::kRegisterSelect, 0xFFFFFFFF);
    CHECK(f.read(IoApic::kRegisterSelect) == 0xFF);  // IOREGSEL is 8 bits

    f.write_register(IoApic::kIdRegister, 0xFFFFFFFF);
    CHECK(f.read_register(IoApic::kIdRegister) == 0x0F000000);
    CHECK(f.io_apic.id() == 0xF);
    CHECK(f.read_register(IoApic::kArbitrationRegister) == 0x0F000000);  // follows the ID
    f.write_register(IoApic::kIdRegister, 0x03000000);
    CHECK(f.read_register(IoApic::kIdRegister) == 0x03000000);

    f.write_register(IoApic::kVersionRegister, 0);
    CHECK(f.read_register(IoApic::kVersionRegister) == IoApic::kVersion);
    f.write_register(IoApic::kArbitrationRegister, 0);
    CHECK(f.read_register(IoApic::kArbitrationRegister) == 0x03000000);

    for (u8 pin = 0; pin < IoApic::kPins; ++pin) {
        f.write_register(Fixture::high(pin), 0xFFFFFFFF);
        f.write_register(Fixture::low(pin), 0xFFFFFFFF);
        // Delivery status (12), remote IRR (14) and bits 55:17 are not writable.
        CHECK(f.read_register(Fixture::low(pin)) == 0x0001AFFF);
        CHECK(f.read_register(Fixture::high(pin)) == 0xFF000000);
        CHECK(f.io_apic.redirection_entry(pin) == IoApic::kEntryWritable);
        f.write_register(Fixture::low(pin), 0);
        f.write_register(Fixture::high(pin), 0);
        CHECK(f.io_apic.redirection_entry(pin) == 0);
    }
    CHECK(f.sent() == 0);  // no line is high

    // Indices that name no register read 0 and keep nothing.
    for (u32 index = 0; index < 256; ++index) {
        bool exists = index <= IoApic::kArbitrationRegister ||
                      (index >= IoApic::kRedirectionTable && index < IoApic::kRedirectionTable + 2u * IoApic::kPins);
        if (exists) continue;
        f.write_register(static_cast<u8>(index), 0xFFFFFFFF);
        CHECK(f.read_register(static_cast<u8>(index)) == 0);
    }
    CHECK(f.read_register(IoApic::kIdRegister) == 0x03000000);
}

TEST_CASE("pc.ioapic.only_dword_accesses_at_ioregsel_and_iowin_count") {
    Fixture f;
    f.write(IoApic::kRegisterSelect, IoApic::kVersionRegister);
    for (u8 size : {1, 2, 8}) {
        CHECK(f.read(IoApic::kRegisterSelect, size) == 0);
        CHECK(f.read(IoApic::kWindow, size) == 0);
        f.write(IoApic::kRegisterSelect, IoApic::kIdRegister, size);  // ignored
    }
    CHECK(f.read(IoApic::kRegisterSelect) == IoApic::kVersionRegister);
    CHECK(f.read(IoApic::kWindow) == IoApic::kVersion);
    // Other offsets in the page, and beside them, read 0.
    CHECK(f.read(0x04) == 0);
    CHECK(f.read(0x14) == 0);
    CHECK(f.read(0x20) == 0);
    CHECK(f.read(0x40) == 0);
    CHECK(f.read(0x110) == 0);  // no alias of IOWIN
    f.write(0x100, IoApic::kIdRegister);
    CHECK(f.read(IoApic::kRegisterSelect) == IoApic::kVersionRegister);
}

TEST_CASE("pc.ioapic.edge_entry_sends_on_rising_edge") {
    Fixture f;
    f.program(4, entry(0x34, DeliveryMode::fixed, 1));
    f.io_apic.set_level(4, true);
    REQUIRE(f.sent() == 1);
    const ApicMessage& message = f.bus.messages[0];
    CHECK(message.vector == 0x34);
    CHECK(message.destination == 1);
    CHECK(message.mode == DeliveryMode::fixed);
    CHECK_FALSE(message.logical);
    CHECK_FALSE(message.level_triggered);
    CHECK(message.assert);
    CHECK(message.shorthand == Shorthand::none);

    f.io_apic.set_level(4, true);  // no edge
    CHECK(f.sent() == 1);
    f.io_apic.set_level(4, false);
    CHECK(f.sent() == 1);
    f.io_apic.set_level(4, true);
    CHECK(f.sent() == 2);
    CHECK((f.io_apic.redirection_entry(4) & kRemoteIrr) == 0);  // edge entries hold no remote IRR
}

TEST_CASE("pc.ioapic.masked_edge_is_lost") {
    Fixture f;
    f.program(5, entry(0x35, DeliveryMode::fixed, 0, kMasked));
    f.io_apic.set_level(5, true);
    CHECK(f.sent() == 0);
    f.program(5, entry(0x35));  // unmasked with the line high: no edge, nothing sent
    CHECK(f.sent() == 0);
    f.io_apic.set_level(5, false);
    f.io_apic.set_level(5, true);
    CHECK(f.sent() == 1);
}

TEST_CASE("pc.ioapic.logical_destination_and_lowest_priority") {
    Fixture f;
    f.program(7, entry(0x47, DeliveryMode::lowest_priority, 0x0F, IoApic::kEntryLogical));
    f.io_apic.set_level(7, true);
    REQUIRE(f.sent() == 1);
    CHECK(f.bus.messages[0].logical);
    CHECK(f.bus.messages[0].destination == 0x0F);
    CHECK(f.bus.messages[0].mode == DeliveryMode::lowest_priority);
    CHECK(f.bus.messages[0].vector == 0x47);
}

TEST_CASE("pc.ioapic.level_entry_holds_remote_irr_until_eoi") {
    Fixture f;
    f.program(10, entry(0x5A, DeliveryMode::fixed, 2, kLevel));
    f.io_apic.set_level(10, true);
    REQUIRE(f.sent() == 1);
    CHECK(f.bus.messages[0].level_triggered);
    CHECK(f.bus.messages[0].destination == 2);
    CHECK(f.read_register(Fixture::low(10)) & kRemoteIrr);

    f.io_apic.set_level(10, true);  // still asserted, remote IRR set: nothing new
    f.io_apic.set_level(10, false);
    f.io_apic.set_level(10, true);
    CHECK(f.sent() == 1);

    f.io_apic.end_of_interrupt(0x5B);  // another vector
    CHECK(f.sent() == 1);
    CHECK(f.read_register(Fixture::low(10)) & kRemoteIrr);

    f.io_apic.end_of_interrupt(0x5A);  // the line is still high: sent again
    CHECK(f.sent() == 2);
    CHECK(f.read_register(Fixture::low(10)) & kRemoteIrr);

    f.io_apic.set_level(10, false);
    f.io_apic.end_of_interrupt(0x5A);
    CHECK(f.sent() == 2);
    CHECK_FALSE(f.read_register(Fixture::low(10)) & kRemoteIrr);

    // A remote IRR can only be set by the I/O APIC.
    f.write_register(Fixture::low(10), static_cast<u32>(entry(0x5A, DeliveryMode::fixed, 0, kLevel | kRemoteIrr)));
    CHECK_FALSE(f.read_register(Fixture::low(10)) & kRemoteIrr);
}

TEST_CASE("pc.ioapic.unmasking_level_entry_with_line_high_sends") {
    Fixture f;
    f.program(11, entry(0x5B, DeliveryMode::fixed, 0, kLevel | kMasked));
    f.io_apic.set_level(11, true);
    CHECK(f.sent() == 0);
    CHECK_FALSE(f.read_register(Fixture::low(11)) & kRemoteIrr);
    f.write_register(Fixture::low(11), static_cast<u32>(entry(0x5B, DeliveryMode::fixed, 0, kLevel)));
    REQUIRE(f.sent() == 1);
    CHECK(f.bus.messages[0].vector == 0x5B);
    // Masking again with remote IRR set and unmasking sends nothing until the EOI.
    f.write_register(Fixture::low(11), static_cast<u32>(entry(0x5B, DeliveryMode::fixed, 0, kLevel | kMasked)));
    f.write_register(Fixture::low(11), static_cast<u32>(entry(0x5B, DeliveryMode::fixed, 0, kLevel)));
    CHECK(f.sent() == 1);
    // An EOI while masked clears remote IRR and sends nothing.
    f.write_register(Fixture::low(11), static_cast<u32>(entry(0x5B, DeliveryMode::fixed, 0, kLevel | kMasked)));
    f.io_apic.end_of_interrupt(0x5B);
    CHECK(f.sent() == 1);
    CHECK_FALSE(f.read_register(Fixture::low(11)) & kRemoteIrr);
}

TEST_CASE("pc.ioapic.rewriting_as_edge_clears_remote_irr") {
    Fixture f;
    f.program(12, entry(0x60, DeliveryMode::fixed, 0, kLevel));
    f.io_apic.set_level(12, true);
    REQUIRE(f.sent() == 1);
    f.write_register(Fixture::low(12), static_cast<u32>(entry(0x60, DeliveryMode::fixed, 0, kMasked)));
    CHECK_FALSE(f.read_register(Fixture::low(12)) & kRemoteIrr);
    // Back to level and unmasked with the line still high: sent again, remote IRR set.
    f.write_register(Fixture::low(12), static_cast<u32>(entry(0x60, DeliveryMode::fixed, 0, kLevel)));
    CHECK(f.sent() == 2);
    CHECK(f.read_register(Fixture::low(12)) & kRemoteIrr);
}

TEST_CASE("pc.ioapic.active_low_polarity") {
    Fixture f;
    // Edge, active low: the falling edge asserts.
    f.io_apic.set_level(16, true);
    f.program(16, entry(0x70, DeliveryMode::fixed, 0, kActiveLow));
    CHECK(f.sent() == 0);
    f.io_apic.set_level(16, false);
    REQUIRE(f.sent() == 1);
    CHECK(f.bus.messages[0].vector == 0x70);
    f.io_apic.set_level(16, true);
    CHECK(f.sent() == 1);

    // Level, active low: a low line is asserted, so unmasking it sends; high releases it.
    f.program(17, entry(0x71, DeliveryMode::fixed, 0, kActiveLow | kLevel));
    REQUIRE(f.sent() == 2);
    CHECK(f.bus.messages[1].vector == 0x71);
    f.io_apic.set_level(17, true);
    f.io_apic.end_of_interrupt(0x71);
    CHECK(f.sent() == 2);
    f.io_apic.set_level(17, false);
    CHECK(f.sent() == 3);
}

TEST_CASE("pc.ioapic.nmi_and_init_are_edge_whatever_the_trigger_bit") {
    Fixture f;
    f.program(3, entry(0, DeliveryMode::nmi, 0, kLevel));
    f.io_apic.set_level(3, true);
    REQUIRE(f.sent() == 1);
    CHECK(f.bus.messages[0].mode == DeliveryMode::nmi);
    CHECK_FALSE(f.bus.messages[0].level_triggered);
    CHECK_FALSE(f.read_register(Fixture::low(3)) & kRemoteIrr);
    f.io_apic.set_level(3, true);
    CHECK(f.sent() == 1);
    f.io_apic.set_level(3, false);
    f.io_apic.set_level(3, true);
    CHECK(f.sent() == 2);

    f.program(6, entry(0, DeliveryMode::extint));
    f.io_apic.set_level(6, true);
    REQUIRE(f.sent() == 3);
    CHECK(f.bus.messages[2].mode == DeliveryMode::extint);
}

TEST_CASE("pc.ioapic.reserved_delivery_modes_send_nothing") {
    Fixture f;
    f.program(8, entry(0x40) | (u64{3} << IoApic::kEntryModeShift));
    f.program(9, entry(0x41) | (u64{6} << IoApic::kEntryModeShift));
    f.io_apic.set_level(8, true);
    f.io_apic.set_level(9, true);
    CHECK(f.sent() == 0);
}

TEST_CASE("pc.ioapic.out_of_range_pins_are_ignored") {
    Fixture f;
    for (u8 pin = 0; pin < IoApic::kPins; ++pin) f.program(pin, entry(static_cast<u8>(0x20 + pin)));
    for (u32 pin = IoApic::kPins; pin < 256; ++pin) f.io_apic.set_level(static_cast<u8>(pin), true);
    CHECK(f.sent() == 0);
    CHECK(f.io_apic.redirection_entry(IoApic::kPins) == 0);
}

namespace {

// A bus whose APIC accepts and completes each level-triggered vector at once (its EOI comes
// from inside the delivery): an asserted line must not make end_of_interrupt go round forever.
class EagerEoiBus final : public ApicBus {
public:
    void deliver(const ApicMessage& message) override {
        ++deliveries;
        if (target != nullptr && message.level_triggered && deliveries < 1000) target->end_of_interrupt(message.vector);
    }
    IoApic* target = nullptr;
    int deliveries = 0;
};

}  // namespace

TEST_CASE("pc.ioapic.eoi_resends_at_most_once") {
    EagerEoiBus bus;
    IoApic io_apic(bus, 0);
    NullHost host;
    u64 low = entry(0x80, DeliveryMode::fixed, 0, kLevel);
    CHECK(io_apic.mmio_write(IoApic::kBase + IoApic::kRegisterSelect, 4, Fixture::low(1), host).action ==
          virt::DeviceOutcome::Action::complete);
    io_apic.mmio_write(IoApic::kBase + IoApic::kWindow, 4, low, host);
    io_apic.set_level(1, true);
    CHECK(bus.deliveries == 1);  // no EOI from the bus yet
    bus.target = &io_apic;
    io_apic.end_of_interrupt(0x80);
    // The EOI re-sends once; the nested EOI from that delivery only clears remote IRR.
    CHECK(bus.deliveries == 2);
    CHECK_FALSE(io_apic.redirection_entry(1) & kRemoteIrr);
    io_apic.end_of_interrupt(0x80);
    CHECK(bus.deliveries == 2);  // nothing in flight: remote IRR was clear
    // A new assertion is sent, its nested EOI re-sends once, and that one's EOI stops there.
    io_apic.set_level(1, false);
    io_apic.set_level(1, true);
    CHECK(bus.deliveries == 4);
    CHECK_FALSE(io_apic.redirection_entry(1) & kRemoteIrr);
}

TEST_CASE("pc.ioapic.reset_masks_every_entry") {
    Fixture f;
    f.write_register(IoApic::kIdRegister, 0x05000000);
    f.program(2, entry(0x30, DeliveryMode::fixed, 0, kLevel));
    f.io_apic.set_level(2, true);
    REQUIRE(f.sent() == 1);
    f.io_apic.reset();
    CHECK(f.io_apic.redirection_entry(2) == IoApic::kEntryReset);
    CHECK(f.io_apic.id() == kId);
    // The pin kept its level: unmasking the level entry again sends.
    f.program(2, entry(0x30, DeliveryMode::fixed, 0, kLevel));
    CHECK(f.sent() == 2);
}

TEST_CASE("pc.ioapic.hostile_accesses_never_break_it") {
    Fixture f;
    std::mt19937_64 random(0x10A71C);
    for (u64 offset = 0; offset < IoApic::kSize + 16; ++offset) {
        for (u8 size : {1, 2, 4, 8}) {
            u64 value = 0;
            f.io_apic.mmio_read(IoApic::kBase + offset, size, value, f.host);
            f.io_apic.mmio_write(IoApic::kBase + offset, size, random(), f.host);
            f.io_apic.set_level(static_cast<u8>(random()), random() & 1);
            f.io_apic.end_of_interrupt(static_cast<u8>(random()));
        }
    }
    // Below the page, and odd sizes.
    u64 value = 0;
    f.io_apic.mmio_read(0, 4, value, f.host);
    f.io_apic.mmio_write(IoApic::kBase - 4, 4, 0, f.host);
    f.io_apic.mmio_write(IoApic::kBase, 3, 0, f.host);
    f.io_apic.mmio_read(IoApic::kBase + IoApic::kWindow, 0, value, f.host);
    for (int i = 0; i < 20000; ++i) {
        f.write(IoApic::kRegisterSelect, random());
        f.write(IoApic::kWindow, random());
        f.io_apic.set_level(static_cast<u8>(random() % 32), random() & 1);
        if (i % 7 == 0) f.io_apic.end_of_interrupt(static_cast<u8>(random()));
    }
    // Whatever happened, the read-only and reserved bits are intact.
    CHECK(f.read_register(IoApic::kVersionRegister) == IoApic::kVersion);
    CHECK((f.read_register(IoApic::kIdRegister) & ~IoApic::kIdMask) == 0);
    for (u8 pin = 0; pin < IoApic::kPins; ++pin) {
        u64 bits = f.io_apic.redirection_entry(pin);
        CHECK((bits & ~(IoApic::kEntryWritable | kRemoteIrr)) == 0);
    }
    for (const ApicMessage& message : f.bus.messages) CHECK(message.assert);
}
