#include <catch2/catch.hpp>
#include <vector>

#include "nestor/pc/irq_router.hpp"
#include "pc_fakes.hpp"

using namespace nestor;
using namespace nestor::pc;
using namespace nestor::pc::testing;

namespace {

class RecordingBus final : public ApicBus {
public:
    void deliver(const ApicMessage& message) override { vectors.push_back(message.vector); }
    std::vector<u8> vectors;
};

// A PIC pair and an I/O APIC behind a router, every PIC line unmasked (vectors 0x30-0x3F) and
// every I/O APIC pin sending vector 0x80 + pin, edge-triggered.
class Fixture {
public:
    RecordingBus bus;
    Pic8259Pair pic;
    IoApic io_apic{bus, 0};
    IrqRouter router{pic, io_apic};
    NullHost host;

    Fixture() {
        out(0x20, 0x11);
        for (u8 value : {0x30, 0x04, 0x01, 0x00}) out(0x21, value);
        out(0xA0, 0x11);
        for (u8 value : {0x38, 0x02, 0x01, 0x00}) out(0xA1, value);
        for (u8 pin = 0; pin < IoApic::kPins; ++pin) {
            io_apic.mmio_write(IoApic::kBase + IoApic::kRegisterSelect, 4, IoApic::kRedirectionTable + 2u * pin, host);
            io_apic.mmio_write(IoApic::kBase + IoApic::kWindow, 4, 0x80u + pin, host);
        }
    }
    void out(int port, u8 value) { pic.io_write(static_cast<u16>(port), 1, value, host); }
    u16 pic_irr() {
        u32 master = 0, slave = 0;
        out(0x20, 0x0A);
        out(0xA0, 0x0A);
        pic.io_read(0x20, 1, master, host);
        pic.io_read(0xA0, 1, slave, host);
        return static_cast<u16>((master & 0xFF) | (slave & 0xFF) << 8);
    }
    void pulse(u8 line) {
        router.set_level(line, true);
        router.set_level(line, false);
    }
};

}  // namespace

TEST_CASE("pc.irq_router.timer_reaches_pic_line_0_and_ioapic_pin_2") {
    static_assert(kTimerIrq == 0 && kTimerGsi == 2);
    Fixture f;
    f.pulse(kTimerIrq);
    CHECK(f.pic_irr() == 0x0001);
    CHECK(f.bus.vectors == std::vector<u8>{0x80 + kTimerGsi});
    CHECK(f.pic.acknowledge() == 0x30);
}

TEST_CASE("pc.irq_router.cascade_line_reaches_neither") {
    Fixture f;
    f.pulse(2);
    CHECK(f.pic_irr() == 0);
    CHECK(f.bus.vectors.empty());
    CHECK_FALSE(f.pic.interrupt_output());
}

TEST_CASE("pc.irq_router.isa_lines_reach_both_at_the_same_number") {
    Fixture f;
    for (u8 line = 1; line < Pic8259Pair::kLines; ++line) {
        if (line == 2) continue;
        f.bus.vectors.clear();
        f.pulse(line);
        INFO("line " << int(line));
        CHECK(f.pic_irr() == (1u << line | (line >= 8 ? 1u << 2 : 0u)));
        CHECK(f.bus.vectors == std::vector<u8>{static_cast<u8>(0x80 + line)});
        f.pic.acknowledge();
        f.out(0xA0, 0x20);
        f.out(0x20, 0x20);
    }
}

TEST_CASE("pc.irq_router.pci_lines_reach_only_the_ioapic") {
    Fixture f;
    for (u8 line = Pic8259Pair::kLines; line < IoApic::kPins; ++line) f.pulse(line);
    CHECK(f.pic_irr() == 0);
    REQUIRE(f.bus.vectors.size() == IoApic::kPins - Pic8259Pair::kLines);
    for (usize i = 0; i < f.bus.vectors.size(); ++i) CHECK(f.bus.vectors[i] == 0x80 + Pic8259Pair::kLines + i);
    for (u32 line = IoApic::kPins; line < 256; ++line) f.pulse(static_cast<u8>(line));
    CHECK(f.bus.vectors.size() == IoApic::kPins - Pic8259Pair::kLines);
    CHECK(f.pic_irr() == 0);
}

TEST_CASE("pc.irq_router.levels_are_held_not_pulsed") {
    Fixture f;
    // A level-triggered entry on pin 9 (the SCI) sees the line held high until it falls.
    f.io_apic.mmio_write(IoApic::kBase + IoApic::kRegisterSelect, 4, IoApic::kRedirectionTable + 18u, f.host);
    f.io_apic.mmio_write(IoApic::kBase + IoApic::kWindow, 4, 0x89u | IoApic::kEntryLevel, f.host);
    f.router.set_level(9, true);
    CHECK(f.bus.vectors == std::vector<u8>{0x89});
    f.io_apic.end_of_interrupt(0x89);
    CHECK(f.bus.vectors.size() == 2);  // still high
    f.router.set_level(9, false);
    f.io_apic.end_of_interrupt(0x89);
    CHECK(f.bus.vectors.size() == 2);
    CHECK_FALSE(f.io_apic.redirection_entry(9) & IoApic::kEntryRemoteIrr);
}
