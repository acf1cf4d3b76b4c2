#include <catch2/catch.hpp>
#include <random>

#include "nestor/pc/pic8259.hpp"
#include "pc_fakes.hpp"

using namespace nestor;
using namespace nestor::pc;
using namespace nestor::pc::testing;

namespace {

constexpr u16 kMasterCommand = 0x20;
constexpr u16 kMasterData = 0x21;
constexpr u16 kSlaveCommand = 0xA0;
constexpr u16 kSlaveData = 0xA1;
constexpr u16 kMasterElcr = 0x4D0;
constexpr u16 kSlaveElcr = 0x4D1;

// The vector bases Linux programs (ISA_IRQ_VECTOR(0) and (8)).
constexpr u8 kLinuxMasterBase = 0x30;
constexpr u8 kLinuxSlaveBase = 0x38;

class Fixture {
public:
    Pic8259Pair pic;
    NullHost host;

    void out(u16 port, u8 value) {
        CHECK(pic.io_write(port, 1, value, host).action == virt::DeviceOutcome::Action::complete);
    }
    u8 in(u16 port) {
        u32 value = 0xFFFFFFFF;
        CHECK(pic.io_read(port, 1, value, host).action == virt::DeviceOutcome::Action::complete);
        return static_cast<u8>(value);
    }
    // OCW3 selects the register the command port reads; both are left reading IRR.
    u8 irr(u16 command) {
        out(command, 0x0A);
        return in(command);
    }
    u8 isr(u16 command) {
        out(command, 0x0B);
        u8 value = in(command);
        out(command, 0x0A);
        return value;
    }
    void pulse(u8 line) {
        pic.set_level(line, true);
        pic.set_level(line, false);
    }
    // arch/x86/kernel/i8259.c, init_8259A(), then every line unmasked.
    void linux_init(bool auto_eoi = false) {
        out(kMasterData, 0xFF);
        out(kMasterCommand, 0x11);  // ICW1: edge, cascade, ICW4 needed
        out(kMasterData, kLinuxMasterBase);
        out(kMasterData, 1u << 2);                 // ICW3: slave on IR2
        out(kMasterData, auto_eoi ? 0x03 : 0x01);  // ICW4: 8086 mode (and auto-EOI)
        out(kSlaveCommand, 0x11);
        out(kSlaveData, kLinuxSlaveBase);
        out(kSlaveData, 2);  // ICW3: slave ID 2
        out(kSlaveData, 0x01);
        out(kMasterData, 0x00);
        out(kSlaveData, 0x00);
    }
    // Linux's mask_and_ack_8259A without the mask: specific EOIs, slave first.
    void linux_eoi(u8 irq) {
        if (irq >= 8) {
            out(kSlaveCommand, static_cast<u8>(0x60 + (irq & 7)));
            out(kMasterCommand, 0x60 + 2);
        } else {
            out(kMasterCommand, static_cast<u8>(0x60 + irq));
        }
    }
};

}  // namespace

TEST_CASE("pc.pic.reset_values") {
    Fixture f;
    CHECK(f.in(kMasterData) == 0xFF);  // every line masked until programmed
    CHECK(f.in(kSlaveData) == 0xFF);
    CHECK(f.in(kMasterCommand) == 0);  // IRR
    CHECK(f.in(kSlaveCommand) == 0);
    CHECK(f.isr(kMasterCommand) == 0);
    CHECK(f.isr(kSlaveCommand) == 0);
    CHECK(f.in(kMasterElcr) == 0);
    CHECK(f.in(kSlaveElcr) == 0);
    CHECK_FALSE(f.pic.interrupt_output());
    CHECK(f.pic.acknowledge() == 7);  // base 0, spurious IRQ 7
    f.pulse(1);
    CHECK(f.irr(kMasterCommand) == 0x02);  // latched, but masked
    CHECK_FALSE(f.pic.interrupt_output());
}

TEST_CASE("pc.pic.linux_init_sequence_and_cascaded_vectors") {
    Fixture f;
    f.linux_init();
    CHECK(f.in(kMasterData) == 0);
    CHECK_FALSE(f.pic.interrupt_output());

    f.pulse(1);
    REQUIRE(f.pic.interrupt_output());
    CHECK(f.pic.acknowledge() == kLinuxMasterBase + 1);
    CHECK(f.isr(kMasterCommand) == 0x02);
    f.linux_eoi(1);
    CHECK(f.isr(kMasterCommand) == 0);

    f.pulse(12);
    CHECK(f.irr(kSlaveCommand) == 0x10);
    CHECK(f.irr(kMasterCommand) == 0x04);  // the slave's INT on IR2
    REQUIRE(f.pic.interrupt_output());
    CHECK(f.pic.acknowledge() == kLinuxSlaveBase + 4);
    CHECK(f.isr(kMasterCommand) == 0x04);
    CHECK(f.isr(kSlaveCommand) == 0x10);
    CHECK(f.irr(kMasterCommand) == 0);
    CHECK(f.irr(kSlaveCommand) == 0);
    CHECK_FALSE(f.pic.interrupt_output());
    f.linux_eoi(12);
    CHECK(f.isr(kMasterCommand) == 0);
    CHECK(f.isr(kSlaveCommand) == 0);

    // ICW2's low three bits are ignored.
    f.out(kMasterCommand, 0x11);
    f.out(kMasterData, 0x47);
    f.out(kMasterData, 0x04);
    f.out(kMasterData, 0x01);
    f.pulse(3);
    CHECK(f.pic.acknowledge() == 0x43);
}

TEST_CASE("pc.pic.seabios_init_sequence_interleaves_the_chips") {
    Fixture f;
    // SeaBIOS pic_reset(0x08, 0x70): each ICW to both chips in turn.
    f.out(kMasterCommand, 0x11);
    f.out(kSlaveCommand, 0x11);
    f.out(kMasterData, 0x08);
    f.out(kSlaveData, 0x70);
    f.out(kMasterData, 0x04);
    f.out(kSlaveData, 0x02);
    f.out(kMasterData, 0x01);
    f.out(kSlaveData, 0x01);
    f.out(kMasterData, static_cast<u8>(~0x04));  // everything masked but the cascade
    f.out(kSlaveData, 0xFF);
    CHECK(f.in(kMasterData) == 0xFB);
    CHECK(f.in(kSlaveData) == 0xFF);

    f.out(kMasterData, 0xFA);  // timer
    f.out(kSlaveData, 0xFE);   // RTC
    f.pulse(0);
    CHECK(f.pic.acknowledge() == 0x08);
    f.out(kMasterCommand, 0x20);  // pic_eoi1: non-specific EOI
    f.pulse(8);
    CHECK(f.pic.acknowledge() == 0x70);
    f.out(kSlaveCommand, 0x20);  // pic_eoi2: slave, then master
    f.out(kMasterCommand, 0x20);
    CHECK(f.isr(kMasterCommand) == 0);
    CHECK(f.isr(kSlaveCommand) == 0);
    f.pulse(9);  // masked on the slave
    CHECK_FALSE(f.pic.interrupt_output());
}

TEST_CASE("pc.pic.priority_and_isr_nesting") {
    Fixture f;
    f.linux_init();
    f.pulse(3);
    CHECK(f.pic.acknowledge() == 0x33);
    f.pulse(5);  // lower than 3, which is in service
    CHECK_FALSE(f.pic.interrupt_output());
    CHECK(f.irr(kMasterCommand) == 0x20);
    f.pulse(1);  // higher: nests
    REQUIRE(f.pic.interrupt_output());
    CHECK(f.pic.acknowledge() == 0x31);
    CHECK(f.isr(kMasterCommand) == 0x0A);
    f.pulse(10);                            // IR2 outranks 3 too
    CHECK_FALSE(f.pic.interrupt_output());  // ...but not 1
    f.out(kMasterCommand, 0x20);            // non-specific EOI: the highest in service, 1
    CHECK(f.isr(kMasterCommand) == 0x08);
    REQUIRE(f.pic.interrupt_output());
    CHECK(f.pic.acknowledge() == 0x3A);
    CHECK(f.isr(kMasterCommand) == 0x0C);
    f.linux_eoi(10);
    CHECK(f.isr(kMasterCommand) == 0x08);
    CHECK_FALSE(f.pic.interrupt_output());  // 5 still waits for 3
    f.out(kMasterCommand, 0x20);
    CHECK(f.pic.acknowledge() == 0x35);
}

TEST_CASE("pc.pic.specific_and_non_specific_eoi") {
    Fixture f;
    f.linux_init();
    f.pulse(4);
    CHECK(f.pic.acknowledge() == 0x34);
    f.pulse(3);
    CHECK(f.pic.acknowledge() == 0x33);
    CHECK(f.isr(kMasterCommand) == 0x18);
    f.out(kMasterCommand, 0x66);  // specific EOI of 6, not in service: nothing
    CHECK(f.isr(kMasterCommand) == 0x18);
    f.out(kMasterCommand, 0x64);  // specific EOI of 4, below the highest
    CHECK(f.isr(kMasterCommand) == 0x08);
    f.out(kMasterCommand, 0x20);
    CHECK(f.isr(kMasterCommand) == 0);
    f.out(kMasterCommand, 0x20);  // nothing in service: nothing happens
    CHECK(f.isr(kMasterCommand) == 0);
    f.out(kMasterCommand, 0x40);  // OCW2 no-operation
    CHECK(f.isr(kMasterCommand) == 0);
}

TEST_CASE("pc.pic.rotating_priority") {
    Fixture f;
    f.linux_init();
    f.out(kMasterCommand, 0xC4);  // set priority: 4 lowest, 5 highest
    f.pulse(0);
    f.pulse(4);
    f.pulse(5);
    CHECK(f.pic.acknowledge() == 0x35);
    CHECK_FALSE(f.pic.interrupt_output());  // 0 and 4 rank below 5 now
    f.out(kMasterCommand, 0xA0);            // rotate on non-specific EOI: 5 done and lowest, 6 highest
    CHECK(f.isr(kMasterCommand) == 0);
    CHECK(f.pic.acknowledge() == 0x30);  // order 6 7 0 1 2 3 4 5
    f.out(kMasterCommand, 0xE0);         // rotate on specific EOI of 0: 1 highest
    CHECK(f.isr(kMasterCommand) == 0);
    f.pulse(0);
    f.pulse(7);
    CHECK(f.pic.acknowledge() == 0x34);  // order 1 ... 7 0: 4 first
    f.out(kMasterCommand, 0x20);
    CHECK(f.pic.acknowledge() == 0x37);
    f.out(kMasterCommand, 0x20);
    CHECK(f.pic.acknowledge() == 0x30);
}

TEST_CASE("pc.pic.auto_eoi") {
    Fixture f;
    f.linux_init(true);
    f.pulse(1);
    CHECK(f.pic.acknowledge() == 0x31);
    CHECK(f.isr(kMasterCommand) == 0);  // nothing stays in service
    f.pulse(3);
    f.pulse(1);
    CHECK(f.pic.acknowledge() == 0x31);
    CHECK(f.pic.acknowledge() == 0x33);

    f.out(kMasterCommand, 0x80);  // rotate in auto-EOI mode
    f.pulse(1);
    f.pulse(3);
    CHECK(f.pic.acknowledge() == 0x31);  // 1 becomes lowest
    f.pulse(1);
    CHECK(f.pic.acknowledge() == 0x33);  // 3 outranks 1 now
    CHECK(f.pic.acknowledge() == 0x31);
    f.out(kMasterCommand, 0x00);  // rotation off: 1 lowest stays
    f.pulse(0);
    f.pulse(1);
    CHECK(f.pic.acknowledge() == 0x30);  // order 2 ... 7 0 1
    f.pulse(0);
    CHECK(f.pic.acknowledge() == 0x30);  // no rotation: 0 still above 1
    CHECK(f.pic.acknowledge() == 0x31);

    // The slave without auto-EOI: its level stays in service, the master's IR2 does not.
    f.pulse(9);
    CHECK(f.pic.acknowledge() == 0x39);
    CHECK(f.isr(kMasterCommand) == 0);
    CHECK(f.isr(kSlaveCommand) == 0x02);
}

TEST_CASE("pc.pic.ocw3_selects_irr_or_isr") {
    Fixture f;
    f.linux_init();
    f.out(kMasterData, 0xFF);
    f.pulse(6);
    f.out(kMasterData, 0x00);
    CHECK(f.in(kMasterCommand) == 0x40);  // IRR after init
    CHECK(f.pic.acknowledge() == 0x36);
    f.out(kMasterCommand, 0x0B);
    CHECK(f.in(kMasterCommand) == 0x40);
    CHECK(f.in(kMasterCommand) == 0x40);  // stays selected
    f.out(kMasterCommand, 0x08);          // RR clear: the selection is kept
    CHECK(f.in(kMasterCommand) == 0x40);
    f.out(kMasterCommand, 0x0A);
    CHECK(f.in(kMasterCommand) == 0);
    CHECK(f.in(kMasterData) == 0);  // the data port always reads IMR
}

TEST_CASE("pc.pic.poll_command") {
    Fixture f;
    f.linux_init();
    f.out(kMasterCommand, 0x0C);
    CHECK(f.in(kMasterCommand) == 0);  // nothing pending
    CHECK(f.in(kMasterCommand) == 0);  // the poll was for one read; IRR again

    f.pulse(6);
    f.out(kMasterCommand, 0x0C);
    CHECK(f.in(kMasterCommand) == 0x86);
    CHECK(f.isr(kMasterCommand) == 0x40);  // the poll acknowledged it
    CHECK(f.irr(kMasterCommand) == 0);
    f.out(kMasterCommand, 0x20);

    f.pulse(11);
    f.out(kSlaveCommand, 0x0C);
    CHECK(f.in(kSlaveData) == 0x83);  // either port answers the poll
    CHECK(f.isr(kSlaveCommand) == 0x08);
    CHECK(f.in(kSlaveData) == 0x00);  // IMR again
}

TEST_CASE("pc.pic.spurious_irq7") {
    Fixture f;
    f.linux_init();
    CHECK(f.pic.acknowledge() == 0x37);
    CHECK(f.isr(kMasterCommand) == 0);
    // A request masked between INT and INTA: spurious, and it stays latched.
    f.pulse(4);
    REQUIRE(f.pic.interrupt_output());
    f.out(kMasterData, 0x10);
    CHECK_FALSE(f.pic.interrupt_output());
    CHECK(f.pic.acknowledge() == 0x37);
    CHECK(f.isr(kMasterCommand) == 0);
    f.out(kMasterData, 0x00);
    CHECK(f.pic.acknowledge() == 0x34);
}

TEST_CASE("pc.pic.spurious_irq15_for_a_vanished_slave_request") {
    Fixture f;
    f.linux_init();
    f.out(kSlaveElcr, 0x08);  // line 11 level-triggered
    f.pic.set_level(11, true);
    REQUIRE(f.pic.interrupt_output());
    f.pic.set_level(11, false);  // withdrawn before INTA
    CHECK(f.irr(kSlaveCommand) == 0);
    REQUIRE(f.pic.interrupt_output());  // the master latched the slave's edge
    CHECK(f.pic.acknowledge() == kLinuxSlaveBase + 7);
    CHECK(f.isr(kMasterCommand) == 0x04);  // IR2 in service
    CHECK(f.isr(kSlaveCommand) == 0);      // nothing on the slave
    f.out(kMasterCommand, 0x62);
    CHECK(f.isr(kMasterCommand) == 0);
}

TEST_CASE("pc.pic.elcr_masks") {
    Fixture f;
    f.out(kMasterElcr, 0xFF);
    f.out(kSlaveElcr, 0xFF);
    CHECK(f.in(kMasterElcr) == 0xF8);  // lines 0, 1, 2 are always edge
    CHECK(f.in(kSlaveElcr) == 0xDE);   // lines 8 and 13 too
    f.linux_init();
    CHECK(f.in(kMasterElcr) == 0xF8);  // ICW1 leaves the ELCR alone
    // Line 8 stays edge-triggered: held high it requests once.
    f.pic.set_level(8, true);
    CHECK(f.pic.acknowledge() == 0x38);
    f.linux_eoi(8);
    CHECK_FALSE(f.pic.interrupt_output());
    f.out(kMasterElcr, 0);
    f.out(kSlaveElcr, 0);
    CHECK(f.in(kMasterElcr) == 0);
    CHECK(f.in(kSlaveElcr) == 0);
}

TEST_CASE("pc.pic.level_lines_follow_their_level") {
    Fixture f;
    f.linux_init();
    f.out(kMasterElcr, 0x20);  // line 5
    f.pic.set_level(5, true);
    CHECK(f.pic.acknowledge() == 0x35);
    CHECK(f.irr(kMasterCommand) == 0x20);   // still requesting: a level is not latched away
    CHECK_FALSE(f.pic.interrupt_output());  // but in service
    f.linux_eoi(5);
    REQUIRE(f.pic.interrupt_output());  // still high: again
    CHECK(f.pic.acknowledge() == 0x35);
    f.pic.set_level(5, false);
    f.linux_eoi(5);
    CHECK(f.irr(kMasterCommand) == 0);
    CHECK_FALSE(f.pic.interrupt_output());
    // Raised and lowered before INTA: withdrawn.
    f.pulse(5);
    CHECK_FALSE(f.pic.interrupt_output());
    CHECK(f.pic.acknowledge() == 0x37);
    // A line switched to level-triggered requests exactly while it is high.
    f.out(kMasterData, 0x40);
    f.pulse(6);
    CHECK(f.irr(kMasterCommand) == 0x40);  // edge: latched
    f.out(kMasterElcr, 0x40);
    CHECK(f.irr(kMasterCommand) == 0);  // level now, and low
    f.pic.set_level(6, true);
    CHECK(f.irr(kMasterCommand) == 0x40);
    f.out(kMasterElcr, 0x00);  // edge again: the request stays latched
    f.pic.set_level(6, false);
    CHECK(f.irr(kMasterCommand) == 0x40);
    f.out(kMasterData, 0x00);
    CHECK(f.pic.acknowledge() == 0x36);
}

TEST_CASE("pc.pic.edge_requests_stay_latched") {
    Fixture f;
    f.linux_init();
    f.out(kMasterData, 0x08);
    f.pulse(3);
    f.pulse(3);  // two edges, one request
    CHECK(f.irr(kMasterCommand) == 0x08);
    f.out(kMasterData, 0x00);
    CHECK(f.pic.acknowledge() == 0x33);
    CHECK(f.irr(kMasterCommand) == 0);
    f.out(kMasterCommand, 0x20);
    CHECK(f.pic.acknowledge() == 0x37);  // nothing more
    // A line held high makes one request.
    f.pic.set_level(4, true);
    f.pic.set_level(4, true);
    CHECK(f.pic.acknowledge() == 0x34);
    f.out(kMasterCommand, 0x20);
    CHECK_FALSE(f.pic.interrupt_output());
}

TEST_CASE("pc.pic.icw1_resets_the_chip") {
    Fixture f;
    f.linux_init();
    f.out(kMasterElcr, 0x80);  // line 7 level
    f.pulse(3);
    CHECK(f.pic.acknowledge() == 0x33);
    f.out(kMasterData, 0x20);
    f.pulse(5);                // latched, masked
    f.pic.set_level(7, true);  // a level request
    f.pic.set_level(6, true);  // an edge request, and the line held high across ICW1
    CHECK(f.irr(kMasterCommand) == 0xE0);
    f.out(kMasterCommand, 0x0B);  // read ISR
    f.out(kMasterCommand, 0x68);  // special mask mode
    f.out(kMasterCommand, 0xC2);  // priority rotated: 3 highest

    f.out(kMasterCommand, 0x11);
    CHECK(f.in(kMasterData) == 0);        // IMR cleared
    CHECK(f.in(kMasterCommand) == 0x80);  // IRR selected; only the level request is left
    f.out(kMasterData, kLinuxMasterBase);
    f.out(kMasterData, 0x04);
    f.out(kMasterData, 0x01);
    CHECK(f.isr(kMasterCommand) == 0);
    CHECK(f.pic.acknowledge() == 0x37);  // the level request of line 7
    CHECK(f.isr(kMasterCommand) == 0x80);
    f.pic.set_level(7, false);
    f.out(kMasterCommand, 0x20);
    CHECK_FALSE(f.pic.interrupt_output());  // line 6, still high, needs a new edge
    f.pic.set_level(6, false);
    f.pic.set_level(6, true);
    f.pulse(0);
    CHECK(f.pic.acknowledge() == 0x30);  // 0 is the highest again
    CHECK(f.pic.acknowledge() == 0x37);  // 6 waits below 0: spurious
}

TEST_CASE("pc.pic.init_sequence_lengths") {
    Fixture f;
    // Single mode, no ICW4: ICW1, ICW2, then the data port is IMR.
    f.out(kMasterCommand, 0x12);
    f.out(kMasterData, 0x50);
    f.out(kMasterData, 0xFD);
    CHECK(f.in(kMasterData) == 0xFD);
    f.pic.set_level(1, true);
    CHECK(f.pic.acknowledge() == 0x51);
    // Single mode with ICW4: ICW1, ICW2, ICW4.
    f.out(kMasterCommand, 0x13);
    f.out(kMasterData, 0x60);
    f.out(kMasterData, 0x03);  // ICW4 with auto-EOI
    f.out(kMasterData, 0xFE);
    CHECK(f.in(kMasterData) == 0xFE);
    f.pulse(0);
    CHECK(f.pic.acknowledge() == 0x60);
    CHECK(f.isr(kMasterCommand) == 0);
    // Cascade, no ICW4: ICW1, ICW2, ICW3; auto-EOI is off again.
    f.out(kMasterCommand, 0x10);
    f.out(kMasterData, 0x70);
    f.out(kMasterData, 0x04);
    f.out(kMasterData, 0xFE);
    CHECK(f.in(kMasterData) == 0xFE);
    f.pulse(0);
    CHECK(f.pic.acknowledge() == 0x70);
    CHECK(f.isr(kMasterCommand) == 0x01);
}

TEST_CASE("pc.pic.special_mask_mode") {
    Fixture f;
    f.linux_init();
    f.pulse(3);
    CHECK(f.pic.acknowledge() == 0x33);
    f.pulse(5);
    CHECK_FALSE(f.pic.interrupt_output());
    f.out(kMasterCommand, 0x68);  // set special mask mode
    CHECK_FALSE(f.pic.interrupt_output());
    f.out(kMasterData, 0x08);  // mask the level in service: lower ones may come in
    REQUIRE(f.pic.interrupt_output());
    CHECK(f.pic.acknowledge() == 0x35);
    CHECK(f.isr(kMasterCommand) == 0x28);
    f.out(kMasterCommand, 0x65);
    f.out(kMasterCommand, 0x48);  // reset special mask mode
    f.pulse(6);
    CHECK_FALSE(f.pic.interrupt_output());  // 3 blocks again
    f.out(kMasterCommand, 0x28);            // OCW3 without ESMM: mode unchanged
    CHECK_FALSE(f.pic.interrupt_output());
}

TEST_CASE("pc.pic.special_fully_nested_mode") {
    Fixture f;
    f.linux_init();
    f.pulse(12);
    CHECK(f.pic.acknowledge() == 0x3C);
    f.pulse(9);  // the slave outranks its own 12, but the master's IR2 is in service
    CHECK_FALSE(f.pic.interrupt_output());
    f.linux_eoi(12);
    CHECK(f.pic.acknowledge() == 0x39);
    f.linux_eoi(9);

    // The master in special fully nested mode lets the slave nest.
    f.out(kMasterCommand, 0x11);
    f.out(kMasterData, kLinuxMasterBase);
    f.out(kMasterData, 0x04);
    f.out(kMasterData, 0x11);
    f.out(kMasterData, 0x00);
    f.pulse(12);
    CHECK(f.pic.acknowledge() == 0x3C);
    f.pulse(9);
    REQUIRE(f.pic.interrupt_output());
    CHECK(f.pic.acknowledge() == 0x39);
    CHECK(f.isr(kSlaveCommand) == 0x12);
    f.pulse(14);  // lower than both on the slave: waits
    CHECK_FALSE(f.pic.interrupt_output());
}

TEST_CASE("pc.pic.line_2_is_the_cascade") {
    Fixture f;
    f.linux_init();
    f.pic.set_level(2, true);
    CHECK(f.irr(kMasterCommand) == 0);
    CHECK_FALSE(f.pic.interrupt_output());
    for (u32 line = Pic8259Pair::kLines; line < 256; ++line) f.pic.set_level(static_cast<u8>(line), true);
    CHECK_FALSE(f.pic.interrupt_output());
}

TEST_CASE("pc.pic.wide_accesses_split_into_bytes") {
    Fixture f;
    f.linux_init();
    f.out(kMasterData, 0xA5);
    f.pulse(1);
    u32 value = 0;
    f.pic.io_read(kMasterCommand, 2, value, f.host);
    CHECK(value == 0xA502);  // IRR, then IMR
    f.pic.io_read(kMasterData, 4, value, f.host);
    CHECK(value == 0xFFFFFFA5);  // ports 0x22-0x24 are not the PIC's
    f.pic.io_write(kMasterElcr, 2, 0xFFFF, f.host);
    f.pic.io_read(kMasterElcr, 2, value, f.host);
    CHECK(value == 0xDEF8);
    f.pic.io_write(kSlaveCommand, 2, 0x3C0B, f.host);  // OCW3 read ISR, then IMR
    CHECK(f.in(kSlaveData) == 0x3C);
    f.pic.io_write(kMasterData, 4, 0x12345600, f.host);  // IMR 0, the rest nowhere
    CHECK(f.in(kMasterData) == 0);
    // Sizes the I/O bus never makes change nothing.
    value = 0x11111111;
    f.pic.io_read(kMasterData, 0, value, f.host);
    f.pic.io_read(kMasterData, 8, value, f.host);
    CHECK(value == 0x11111111);
    f.pic.io_write(kMasterData, 8, 0xFF, f.host);
    CHECK(f.in(kMasterData) == 0);
}

TEST_CASE("pc.pic.hostile_port_traffic_never_breaks_it") {
    Fixture f;
    std::mt19937 random(0x8259);
    const u16 ports[] = {0x1F, 0x20, 0x21, 0x22, 0x9F, 0xA0, 0xA1, 0xA2, 0x4CF, 0x4D0, 0x4D1, 0x4D2, 0xFFFF, 0};
    const u8 sizes[] = {1, 1, 1, 2, 4, 0, 3, 8};
    for (int i = 0; i < 200000; ++i) {
        u16 port = ports[random() % std::size(ports)];
        u8 size = sizes[random() % std::size(sizes)];
        u32 value = random();
        switch (random() % 5) {
        case 0: f.pic.io_read(port, size, value, f.host); break;
        case 1:
        case 2: f.pic.io_write(port, size, value, f.host); break;
        case 3: f.pic.set_level(static_cast<u8>(random() % 20), random() & 1); break;
        default: f.pic.acknowledge(); break;
        }
    }
    CHECK((f.in(kMasterElcr) & ~Pic8259Pair::kMasterElcrMask) == 0);
    CHECK((f.in(kSlaveElcr) & ~Pic8259Pair::kSlaveElcrMask) == 0);
    // Out of whatever state that left, Linux's init brings it back.
    f.out(kMasterElcr, 0);
    f.out(kSlaveElcr, 0);
    for (u8 line = 0; line < Pic8259Pair::kLines; ++line) f.pic.set_level(line, false);
    f.linux_init();
    CHECK(f.isr(kMasterCommand) == 0);
    CHECK(f.isr(kSlaveCommand) == 0);
    f.pulse(4);
    CHECK(f.pic.acknowledge() == 0x34);
    f.pulse(14);
    f.out(kMasterCommand, 0x20);
    CHECK(f.pic.acknowledge() == 0x3E);
}
