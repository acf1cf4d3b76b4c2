#include <catch2/catch.hpp>
#include <random>
#include <vector>

#include "nestor/pc/local_apic.hpp"
#include "pc_fakes.hpp"

using namespace nestor;
using namespace nestor::pc;
using namespace nestor::pc::testing;
using Action = virt::DeviceOutcome::Action;
using L = LocalApic;

namespace {

class RecordingBus final : public ApicBus {
public:
    void deliver(const ApicMessage& message) override { sent.push_back(message); }
    std::vector<ApicMessage> sent;
};

class RecordingEoi final : public EoiListener {
public:
    void end_of_interrupt(u8 vector) override { vectors.push_back(vector); }
    std::vector<u8> vectors;
};

// A 1 GHz timer clock under a 2 GHz TSC: with divide-by-1 one count lasts two TSC ticks.
constexpr u64 kTimerKhz = 1000000;
constexpr u32 kApicId = 3;
constexpr u32 kDivideBy1 = 0xB;
constexpr u32 kDivideBy16 = 0x3;
constexpr u32 kPeriodic = 1u << 17;
constexpr u32 kTscDeadlineMode = 2u << 17;

bool is_gp(virt::DeviceOutcome outcome) {
    return outcome.action == Action::fault && outcome.vector == 13 && outcome.has_error_code && outcome.code == 0;
}

u32 x2apic_msr(u32 offset) { return L::kMsrX2apicFirst + offset / 16; }

class Rig {
public:
    explicit Rig(u32 id = kApicId, bool bootstrap = true) : apic(id, clock, bus, eoi, kTimerKhz, bootstrap) {}

    u32 read(u32 offset) { return static_cast<u32>(read_at(apic.base() + offset, 4)); }
    u64 read_at(u64 address, u8 size) {
        u64 value = ~u64{0};
        CHECK(apic.mmio_read(address, size, value, host).action == Action::complete);
        return value;
    }
    void write(u32 offset, u32 value) { write_at(apic.base() + offset, 4, value); }
    void write_at(u64 address, u8 size, u64 value) {
        CHECK(apic.mmio_write(address, size, value, host).action == Action::complete);
    }
    virt::DeviceOutcome rdmsr(u32 index, u64& value) { return apic.msr_read(index, value, host); }
    virt::DeviceOutcome wrmsr(u32 index, u64 value) { return apic.msr_write(index, value, host); }
    u64 msr(u32 index) {
        u64 value = 0;
        CHECK(rdmsr(index, value).action == Action::complete);
        return value;
    }

    void enable() { write(L::kSvr, 0x1FF); }
    void to_x2apic() { REQUIRE(wrmsr(L::kMsrApicBase, apic.apic_base() | L::kBaseX2apic).action == Action::complete); }
    void receive(u8 vector, bool level = false) {
        ApicMessage message{apic.id(), vector, DeliveryMode::fixed, false, level};
        apic.accept(message);
    }
    bool in(u32 bank, u8 vector) { return (read(bank + vector / 32 * 16) >> (vector % 32)) & 1; }
    // Delivers and acknowledges the pending vector, as the vCPU would.
    int take() {
        const int vector = apic.pending_vector();
        if (vector >= 0) apic.acknowledge(static_cast<u8>(vector));
        return vector;
    }
    void start_timer(u32 lvt, u32 divide, u32 count) {
        write(L::kLvtTimer, lvt);
        write(L::kTimerDivide, divide);
        write(L::kTimerInitialCount, count);
    }

    FakeClock clock{1'000'000, 2'000'000};  // 2 GHz
    RecordingBus bus;
    RecordingEoi eoi;
    NullHost host;
    LocalApic apic;
};

constexpr u32 kLvtOffsets[] = {L::kLvtTimer, L::kLvtThermal, L::kLvtPerformance, L::kLvtLint0,
                               L::kLvtLint1, L::kLvtError,   L::kLvtCmci};

}  // namespace

// ---- Registers ----

TEST_CASE("pc.lapic.reset_values") {
    Rig rig;
    CHECK(rig.apic.apic_base() == (0xFEE00000 | L::kBaseEnable | L::kBaseBsp));
    CHECK(Rig(1, false).apic.apic_base() == (0xFEE00000 | L::kBaseEnable));
    CHECK(rig.apic.base() == 0xFEE00000);
    CHECK(rig.apic.hardware_enabled());
    CHECK_FALSE(rig.apic.x2apic());
    CHECK_FALSE(rig.apic.software_enabled());
    CHECK(rig.apic.id() == kApicId);
    CHECK(rig.read(L::kId) == kApicId << 24);
    CHECK(rig.read(L::kVersion) == 0x00060014);
    for (u32 offset : {L::kTpr, L::kApr, L::kPpr, L::kEoi, L::kRrd, L::kLdr, L::kEsr, L::kIcrLow, L::kIcrHigh,
                       L::kTimerInitialCount, L::kTimerCurrentCount, L::kTimerDivide, L::kSelfIpi})
        CHECK(rig.read(offset) == 0);
    CHECK(rig.read(L::kDfr) == 0xFFFFFFFF);
    CHECK(rig.read(L::kSvr) == 0xFF);
    for (u32 i = 0; i < 8; ++i) {
        CHECK(rig.read(L::kIsr + i * 16) == 0);
        CHECK(rig.read(L::kTmr + i * 16) == 0);
        CHECK(rig.read(L::kIrr + i * 16) == 0);
    }
    for (u32 offset : kLvtOffsets) CHECK(rig.read(offset) == 0x00010000);
    CHECK(rig.apic.deadline() == kNoDeadline);
    CHECK(rig.apic.pending_vector() == -1);
}

TEST_CASE("pc.lapic.write_masks") {
    Rig rig;
    rig.enable();
    struct Case {
        u32 offset;
        u32 all_ones_reads;
    };
    const Case cases[] = {
        {L::kId, 0xFF000000},         {L::kTpr, 0xFF},
        {L::kLdr, 0xFF000000},        {L::kDfr, 0xFFFFFFFF},
        {L::kIcrHigh, 0xFF000000},    {L::kLvtTimer, 0x000700FF},
        {L::kLvtThermal, 0x000107FF}, {L::kLvtPerformance, 0x000107FF},
        {L::kLvtLint0, 0x0001A7FF},   {L::kLvtLint1, 0x0001A7FF},
        {L::kLvtError, 0x000100FF},   {L::kLvtCmci, 0x000107FF},
        {L::kTimerDivide, 0xB},       {L::kTimerInitialCount, 0xFFFFFFFF},
    };
    for (const Case& c : cases) {
        rig.write(c.offset, 0xFFFFFFFF);
        CHECK(rig.read(c.offset) == c.all_ones_reads);
        rig.write(c.offset, 0);
        CHECK(rig.read(c.offset) == (c.offset == L::kDfr ? 0x0FFFFFFF : 0));
    }
    rig.write(L::kSvr, 0xFFFFFFFF);  // focus checking and enable, never suppress-EOI-broadcast
    CHECK(rig.read(L::kSvr) == 0x3FF);
    // The ICR keeps its fields but never reads busy; mode 7 (reserved for IPIs) sends nothing.
    rig.write(L::kIcrLow, 0xFFFFFFFF);
    CHECK(rig.read(L::kIcrLow) == 0x000CCFFF);
    CHECK(rig.bus.sent.empty());
    // Read-only registers ignore writes.
    rig.receive(0x40);
    for (u32 offset :
         {L::kVersion, L::kApr, L::kPpr, L::kRrd, L::kIrr + 0x20, L::kIsr, L::kTmr, L::kTimerCurrentCount}) {
        const u32 before = rig.read(offset);
        rig.write(offset, 0x5A5A5A5A);
        CHECK(rig.read(offset) == before);
    }
    CHECK(rig.in(L::kIrr, 0x40));
}

TEST_CASE("pc.lapic.mmio_width_and_alignment") {
    Rig rig;
    rig.write(L::kTpr, 0x20);
    CHECK(rig.read_at(rig.apic.base() + L::kTpr, 1) == 0);  // only 32-bit accesses act
    CHECK(rig.read_at(rig.apic.base() + L::kTpr, 2) == 0);
    CHECK(rig.read_at(rig.apic.base() + L::kTpr, 8) == 0);
    CHECK(rig.read_at(rig.apic.base() + L::kVersion + 4, 4) == 0);  // not at the register's boundary
    for (u8 size : {1, 2, 8}) rig.write_at(rig.apic.base() + L::kTpr, size, 0x90);
    rig.write_at(rig.apic.base() + L::kTpr + 4, 4, 0x90);
    CHECK(rig.read(L::kTpr) == 0x20);
    // Offsets past the last register are reserved; an address outside the page is not the APIC's.
    CHECK(rig.read_at(rig.apic.base() + 0x800, 4) == 0);
    CHECK(rig.read_at(rig.apic.base() + 0x1000, 4) == 0xFFFFFFFF);
    CHECK(rig.read_at(rig.apic.base() - 16, 2) == 0xFFFF);
}

TEST_CASE("pc.lapic.software_disable_masks_every_lvt") {
    Rig rig;
    rig.write(L::kLvtTimer, 0x40);  // software-disabled at reset: stays masked
    CHECK(rig.read(L::kLvtTimer) == 0x00010040);
    rig.enable();
    for (u32 offset : kLvtOffsets) rig.write(offset, 0x40);
    for (u32 offset : kLvtOffsets) CHECK(rig.read(offset) == 0x40);
    rig.write(L::kSvr, 0xFF);
    CHECK_FALSE(rig.apic.software_enabled());
    for (u32 offset : kLvtOffsets) CHECK(rig.read(offset) == 0x00010040);
    rig.write(L::kLvtLint0, 0x700);
    CHECK(rig.read(L::kLvtLint0) == 0x00010700);
    rig.enable();  // enabling does not unmask
    CHECK(rig.read(L::kLvtTimer) == 0x00010040);
    // Fixed interrupts to a software-disabled APIC are dropped; NMI still arrives.
    rig.write(L::kSvr, 0xFF);
    rig.receive(0x50);
    CHECK_FALSE(rig.in(L::kIrr, 0x50));
    rig.apic.accept({kApicId, 0, DeliveryMode::nmi, false, false});
    CHECK(rig.apic.take_nmi());
}

// ---- IA32_APIC_BASE and the two modes ----

TEST_CASE("pc.lapic.apic_base_transitions") {
    Rig rig;
    const u64 xapic = rig.apic.apic_base();
    SECTION("xAPIC to x2APIC, and back only through disabled") {
        CHECK(rig.wrmsr(L::kMsrApicBase, xapic | L::kBaseX2apic).action == Action::complete);
        CHECK(rig.apic.x2apic());
        CHECK(rig.read(L::kVersion) == 0xFFFFFFFF);  // the page is no device in x2APIC mode
        CHECK(is_gp(rig.wrmsr(L::kMsrApicBase, xapic)));
        CHECK(rig.apic.x2apic());
        CHECK(rig.wrmsr(L::kMsrApicBase, xapic & ~L::kBaseEnable).action == Action::complete);
        CHECK_FALSE(rig.apic.hardware_enabled());
        CHECK_FALSE(rig.apic.x2apic());
        CHECK(is_gp(rig.wrmsr(L::kMsrApicBase, xapic | L::kBaseX2apic)));  // disabled to x2APIC
        CHECK(rig.wrmsr(L::kMsrApicBase, xapic).action == Action::complete);
        CHECK(rig.read(L::kVersion) == 0x00060014);
    }
    SECTION("invalid states and reserved bits") {
        CHECK(is_gp(rig.wrmsr(L::kMsrApicBase, (xapic & ~L::kBaseEnable) | L::kBaseX2apic)));
        for (u64 bit : {u64{1} << 0, u64{1} << 7, u64{1} << 9, u64{1} << 52, u64{1} << 63})
            CHECK(is_gp(rig.wrmsr(L::kMsrApicBase, xapic | bit)));
        CHECK(rig.apic.apic_base() == xapic);
    }
    SECTION("the page moves") {
        CHECK(rig.wrmsr(L::kMsrApicBase, 0xFED00000 | L::kBaseEnable).action == Action::complete);
        CHECK(rig.apic.base() == 0xFED00000);
        CHECK_FALSE(rig.apic.bootstrap());
        CHECK(rig.read_at(0xFEE00000 + L::kVersion, 4) == 0xFFFFFFFF);
        CHECK(rig.read_at(0xFED00000 + L::kVersion, 4) == 0x00060014);
        CHECK(rig.msr(L::kMsrApicBase) == (0xFED00000 | L::kBaseEnable));
    }
}

TEST_CASE("pc.lapic.hardware_disable_loses_state") {
    Rig rig;
    rig.enable();
    rig.write(L::kId, 0x07000000);
    rig.write(L::kTpr, 0x30);
    rig.receive(0x80);
    rig.write(L::kMsrApicBase, 0);  // an MMIO write, not the MSR: nothing happens
    REQUIRE(rig.wrmsr(L::kMsrApicBase, rig.apic.apic_base() & ~L::kBaseEnable).action == Action::complete);
    CHECK(rig.read(L::kVersion) == 0xFFFFFFFF);
    CHECK(rig.apic.pending_vector() == -1);
    CHECK(rig.apic.accepts_pic_interrupts());
    CHECK_FALSE(rig.apic.matches({kApicId, 0x80, DeliveryMode::fixed, false, false}));
    REQUIRE(rig.wrmsr(L::kMsrApicBase, rig.apic.apic_base() | L::kBaseEnable).action == Action::complete);
    CHECK(rig.read(L::kId) == kApicId << 24);
    CHECK(rig.read(L::kTpr) == 0);
    CHECK(rig.read(L::kSvr) == 0xFF);
    CHECK_FALSE(rig.in(L::kIrr, 0x80));
}

TEST_CASE("pc.lapic.x2apic_registers") {
    Rig rig(0x123);
    CHECK(rig.read(L::kId) == 0x23000000);  // xAPIC: the low byte
    u64 value = 0;
    CHECK(is_gp(rig.rdmsr(x2apic_msr(L::kVersion), value)));  // x2APIC MSRs need x2APIC mode
    CHECK(is_gp(rig.wrmsr(x2apic_msr(L::kTpr), 0)));
    rig.to_x2apic();
    CHECK(rig.apic.id() == 0x123);
    CHECK(rig.msr(x2apic_msr(L::kId)) == 0x123);
    CHECK(rig.msr(x2apic_msr(L::kVersion)) == 0x00060014);
    CHECK(rig.msr(x2apic_msr(L::kLdr)) == ((0x12u << 16) | (1u << 3)));
    CHECK(rig.msr(x2apic_msr(L::kSvr)) == 0xFF);
    CHECK(rig.wrmsr(x2apic_msr(L::kTpr), 0x45).action == Action::complete);
    CHECK(rig.msr(x2apic_msr(L::kTpr)) == 0x45);
    CHECK(rig.apic.tpr() == 0x45);
    // Read-only registers.
    for (u32 offset : {L::kId, L::kVersion, L::kPpr, L::kLdr, L::kIsr, L::kTmr + 0x70, L::kIrr, L::kTimerCurrentCount})
        CHECK(is_gp(rig.wrmsr(x2apic_msr(offset), 0)));
    // Write-only registers.
    CHECK(is_gp(rig.rdmsr(x2apic_msr(L::kEoi), value)));
    CHECK(is_gp(rig.rdmsr(x2apic_msr(L::kSelfIpi), value)));
    // Reserved in x2APIC mode: APR, RRD, DFR, ICR's high half, and everything past SELF IPI.
    for (u32 offset : {L::kApr, L::kRrd, L::kDfr, L::kIcrHigh, 0x400u, 0xFF0u}) {
        CHECK(is_gp(rig.rdmsr(x2apic_msr(offset), value)));
        CHECK(is_gp(rig.wrmsr(x2apic_msr(offset), 0)));
    }
    // 32-bit registers: bits 63:32 reserved. EOI and ESR take 0 only.
    CHECK(is_gp(rig.wrmsr(x2apic_msr(L::kTpr), u64{1} << 32)));
    CHECK(is_gp(rig.wrmsr(x2apic_msr(L::kEoi), 1)));
    CHECK(rig.wrmsr(x2apic_msr(L::kEoi), 0).action == Action::complete);
    CHECK(is_gp(rig.wrmsr(x2apic_msr(L::kEsr), 1)));
    CHECK(rig.wrmsr(x2apic_msr(L::kEsr), 0).action == Action::complete);
    // LVTs and the timer as in xAPIC mode.
    CHECK(rig.wrmsr(x2apic_msr(L::kLvtCmci), 0xFFFFFFFF).action == Action::complete);
    CHECK(rig.msr(x2apic_msr(L::kLvtCmci)) == 0x000107FF);  // software-disabled: stays masked
    // MSRs outside the APIC's are not its.
    CHECK(is_gp(rig.rdmsr(0x10, value)));
    CHECK(is_gp(rig.wrmsr(0x900, 0)));
}

// ---- Priorities, IRR and ISR ----

TEST_CASE("pc.lapic.tpr_and_ppr") {
    Rig rig;
    rig.enable();
    rig.write(L::kTpr, 0x35);
    CHECK(rig.read(L::kPpr) == 0x35);  // nothing in service: PPR is TPR
    rig.receive(0x51);
    CHECK(rig.take() == 0x51);
    CHECK(rig.read(L::kPpr) == 0x50);  // ISRV's class above TPR's
    rig.write(L::kTpr, 0x5F);
    CHECK(rig.read(L::kPpr) == 0x5F);  // TPR's class equals ISRV's: TPR
    rig.apic.set_tpr(0x6 << 4);        // CR8 = 6
    CHECK(rig.read(L::kTpr) == 0x60);
    CHECK(rig.read(L::kPpr) == 0x60);
    rig.write(L::kTpr, 0x1FF);  // bits 31:8 do not exist
    CHECK(rig.read(L::kTpr) == 0xFF);
}

TEST_CASE("pc.lapic.pending_vector_against_ppr") {
    Rig rig;
    rig.enable();
    rig.receive(0x45);
    rig.apic.set_tpr(0x40);
    CHECK(rig.apic.pending_vector() == -1);  // same class as TPR: held
    rig.apic.set_tpr(0x3F);
    CHECK(rig.apic.pending_vector() == 0x45);
    rig.write(L::kSvr, 0xFF);
    CHECK(rig.apic.pending_vector() == -1);  // software-disabled
    CHECK(rig.in(L::kIrr, 0x45));            // but still requested
}

TEST_CASE("pc.lapic.cr8_is_the_tpr_class") {
    Rig rig;
    rig.enable();
    rig.write(L::kTpr, 0x73);
    CHECK(rig.apic.cr8() == 7);
    rig.apic.sync_cr8(7);  // the class TPR has: its low bits stay
    CHECK(rig.read(L::kTpr) == 0x73);
    rig.apic.sync_cr8(2);  // a MOV to CR8 clears TPR's bits 3:0
    CHECK(rig.read(L::kTpr) == 0x20);
    CHECK(rig.read(L::kPpr) == 0x20);
    rig.to_x2apic();
    rig.apic.sync_cr8(0xC);
    CHECK(rig.msr(x2apic_msr(L::kTpr)) == 0xC0);
    REQUIRE(rig.wrmsr(x2apic_msr(L::kTpr), 0x5A).action == Action::complete);
    CHECK(rig.apic.cr8() == 5);
}

TEST_CASE("pc.lapic.cr8_threshold_names_what_tpr_holds_back") {
    Rig rig;
    rig.enable();
    CHECK(rig.apic.cr8_threshold() == 0);  // nothing waits
    rig.receive(0x45);
    rig.apic.sync_cr8(4);  // class 4 is not above TPR's: held
    CHECK(rig.apic.pending_vector() == -1);
    CHECK(rig.apic.cr8_threshold() == 4);
    rig.apic.sync_cr8(6);
    CHECK(rig.apic.pending_vector() == -1);
    CHECK(rig.apic.cr8_threshold() == 4);
    rig.apic.sync_cr8(3);  // below the threshold: delivered, and nothing waits for TPR
    CHECK(rig.apic.cr8_threshold() == 0);
    CHECK(rig.take() == 0x45);
    // In service, 0x45 holds back 0x41 whatever TPR says: lowering CR8 would not help.
    rig.receive(0x41);
    rig.apic.sync_cr8(0);
    CHECK(rig.apic.pending_vector() == -1);
    CHECK(rig.apic.cr8_threshold() == 0);
    // A higher class waits for TPR alone once 0x45 is in service.
    rig.receive(0x61);
    rig.apic.sync_cr8(6);
    CHECK(rig.apic.cr8_threshold() == 6);
    rig.write(L::kEoi, 0);  // 0x45 done; 0x61 still waits for TPR
    CHECK(rig.apic.cr8_threshold() == 6);
    rig.apic.sync_cr8(5);
    CHECK(rig.take() == 0x61);
    CHECK(rig.apic.cr8_threshold() == 0);  // 0x41 is below the in-service 0x61
    rig.write(L::kEoi, 0);
    CHECK(rig.apic.cr8_threshold() == 4);  // 0x41's class is not above CR8 5
    rig.write(L::kSvr, 0xFF);
    CHECK(rig.apic.cr8_threshold() == 0);  // software-disabled: nothing is delivered at all
}

// nothing_new(threshold): the answer of pending_vector() < 0 and cr8_threshold() == threshold in one.
TEST_CASE("pc.lapic.nothing_new_agrees_with_pending_and_threshold") {
    std::mt19937 random(14);
    for (int round = 0; round < 2000; ++round) {
        Rig rig;
        if (random() % 8) rig.enable();
        for (u64 n = random() % 4; n > 0; --n) rig.receive(static_cast<u8>(16 + random() % 240));
        if (random() % 2) (void)rig.take();
        rig.apic.sync_cr8(static_cast<u8>(random() % 16));
        for (u8 threshold = 0; threshold < 16; ++threshold)
            CHECK(rig.apic.nothing_new(threshold) ==
                  (rig.apic.pending_vector() < 0 && rig.apic.cr8_threshold() == threshold));
    }
}

TEST_CASE("pc.lapic.irr_isr_order_and_nesting") {
    Rig rig;
    rig.enable();
    for (u8 vector : {0x30, 0x80, 0x50}) rig.receive(vector);
    CHECK(rig.read(L::kIrr + 0x10) == (1u << 16));  // 0x30
    CHECK(rig.take() == 0x80);
    CHECK(rig.in(L::kIsr, 0x80));
    CHECK_FALSE(rig.in(L::kIrr, 0x80));
    CHECK(rig.apic.pending_vector() == -1);  // 0x50 waits below 0x80
    rig.receive(0x90);
    CHECK(rig.take() == 0x90);  // a higher class nests
    CHECK(rig.in(L::kIsr, 0x80));
    CHECK(rig.in(L::kIsr, 0x90));
    rig.write(L::kEoi, 0);
    CHECK_FALSE(rig.in(L::kIsr, 0x90));  // EOI ends the highest in service
    CHECK(rig.in(L::kIsr, 0x80));
    rig.write(L::kEoi, 0);
    CHECK(rig.take() == 0x50);
    rig.write(L::kEoi, 0);
    CHECK(rig.take() == 0x30);
    rig.write(L::kEoi, 0);
    rig.write(L::kEoi, 0);  // nothing in service: nothing happens
    CHECK(rig.read(L::kIsr + 0x10) == 0);
    CHECK(rig.eoi.vectors.empty());
}

// The x2APIC EOI's short path (pc_ops.cpp) ends the interrupt in two halves: ISR first, the
// level-triggered source's broadcast after the instruction completed.
TEST_CASE("pc.lapic.eoi_in_two_halves") {
    Rig rig;
    rig.enable();
    rig.receive(0x61, true);
    rig.receive(0x42);
    CHECK(rig.take() == 0x61);
    CHECK(rig.apic.end_in_service() == 0x61);  // level: its source must hear
    CHECK_FALSE(rig.in(L::kIsr, 0x61));
    CHECK(rig.eoi.vectors.empty());  // not yet
    rig.apic.tell_source(0x61);
    CHECK(rig.eoi.vectors == std::vector<u8>{0x61});
    CHECK(rig.take() == 0x42);
    CHECK(rig.apic.end_in_service() == -1);  // edge: nobody to tell
    CHECK_FALSE(rig.in(L::kIsr, 0x42));
    CHECK(rig.apic.end_in_service() == -1);  // nothing in service
    CHECK(rig.eoi.vectors.size() == 1);
}

// The EOI short path trusts the summaries: end_in_service() finds the highest vector in service
// through ISR's, and any_requested() says whether IRR needs a look. They must follow every vector
// in and out, within a word and across words.
TEST_CASE("pc.lapic.eoi_summaries_follow_isr_and_irr") {
    Rig rig;
    rig.enable();
    CHECK_FALSE(rig.apic.any_in_service());
    CHECK_FALSE(rig.apic.any_requested());
    for (u8 vector : {0x20, 0x3F, 0xE0}) rig.receive(vector);
    CHECK(rig.apic.any_requested());
    CHECK(rig.take() == 0xE0);
    CHECK(rig.take() == -1);  // 0x3F and 0x20 wait below 0xE0
    CHECK(rig.apic.any_in_service());
    CHECK(rig.apic.end_in_service() == -1);  // 0xE0, alone in its word
    CHECK_FALSE(rig.apic.any_in_service());
    CHECK(rig.take() == 0x3F);
    CHECK(rig.take() == -1);  // 0x20: a class below 0x3F's
    CHECK(rig.apic.end_in_service() == -1);
    CHECK(rig.take() == 0x20);
    CHECK_FALSE(rig.apic.any_requested());
    rig.receive(0x21);  // below 0x20 in service: waits
    CHECK(rig.apic.end_in_service() == -1);
    CHECK(rig.read(L::kIsr + 0x10) == 0);
    CHECK_FALSE(rig.apic.any_in_service());
    CHECK(rig.apic.any_requested());
    CHECK(rig.take() == 0x21);
    CHECK_FALSE(rig.apic.any_requested());
    CHECK(rig.read(L::kIsr + 0x10) == 2u);  // 0x21 in service, word 1 bit 1
}

TEST_CASE("pc.lapic.eoi_of_a_level_vector_is_broadcast") {
    Rig rig;
    rig.enable();
    rig.receive(0x61, true);
    rig.receive(0x42);
    CHECK(rig.in(L::kTmr, 0x61));
    CHECK_FALSE(rig.in(L::kTmr, 0x42));
    CHECK(rig.take() == 0x61);
    rig.write(L::kEoi, 0);
    CHECK(rig.eoi.vectors == std::vector<u8>{0x61});
    CHECK(rig.take() == 0x42);
    rig.write(L::kEoi, 0);
    CHECK(rig.eoi.vectors.size() == 1);  // edge: no broadcast
    rig.receive(0x61);                   // the same vector, now edge, clears its TMR bit
    CHECK_FALSE(rig.in(L::kTmr, 0x61));
    // A level de-assert message carries no interrupt.
    rig.apic.accept({kApicId, 0x70, DeliveryMode::fixed, false, true, false});
    CHECK_FALSE(rig.in(L::kIrr, 0x70));
}

TEST_CASE("pc.lapic.arbitration_priority") {
    Rig rig;
    rig.enable();
    rig.write(L::kTpr, 0x47);
    CHECK(rig.read(L::kApr) == 0x47);  // TPR above IRRV and ISRV
    CHECK(rig.apic.arbitration_priority() == 0x47);
    rig.receive(0x62);
    CHECK(rig.read(L::kApr) == 0x60);  // IRRV above TPR
    rig.write(L::kTpr, 0x75);
    CHECK(rig.read(L::kApr) == 0x75);
    rig.write(L::kTpr, 0);
    CHECK(rig.take() == 0x62);
    rig.write(L::kTpr, 0x65);
    CHECK(rig.read(L::kApr) == 0x60);  // TPR's class not above ISRV's: (TPR AND ISRV)'s class
}

// ---- Timer ----

TEST_CASE("pc.lapic.timer_one_shot") {
    Rig rig;
    rig.enable();
    const u64 start = rig.clock.tsc;
    rig.start_timer(0x40, kDivideBy1, 1000);
    CHECK(rig.apic.deadline() == start + 2000);
    CHECK(rig.read(L::kTimerCurrentCount) == 1000);
    rig.clock.tsc = start + 500;
    CHECK(rig.read(L::kTimerCurrentCount) == 750);
    rig.apic.advance(start + 1999);
    CHECK(rig.apic.pending_vector() == -1);
    rig.clock.tsc = start + 2000;
    rig.apic.advance(rig.clock.tsc);
    CHECK(rig.take() == 0x40);
    CHECK(rig.apic.deadline() == kNoDeadline);
    CHECK(rig.read(L::kTimerCurrentCount) == 0);
    rig.apic.advance(start + 100000);
    CHECK(rig.apic.pending_vector() == -1);  // once
    rig.write(L::kTimerInitialCount, 10);    // a new count restarts it
    CHECK(rig.apic.deadline() == start + 2000 + 20);
    rig.write(L::kTimerInitialCount, 0);  // 0 stops it
    CHECK(rig.apic.deadline() == kNoDeadline);
    CHECK(rig.read(L::kTimerCurrentCount) == 0);
}

TEST_CASE("pc.lapic.timer_divide") {
    Rig rig;
    rig.enable();
    const u64 start = rig.clock.tsc;
    rig.start_timer(0x40, kDivideBy16, 100);
    CHECK(rig.apic.deadline() == start + 100 * 16 * 2);
    rig.clock.tsc = start + 320;
    CHECK(rig.read(L::kTimerCurrentCount) == 90);
    // From now on at divide-by-1: the remaining 90 counts take 180 ticks.
    rig.write(L::kTimerDivide, kDivideBy1);
    CHECK(rig.read(L::kTimerCurrentCount) == 90);
    CHECK(rig.apic.deadline() == start + 320 + 180);
    rig.clock.tsc += 100;
    CHECK(rig.read(L::kTimerCurrentCount) == 40);
    // Every divide code: 2, 4, ... 128, and 1.
    const u32 codes[] = {0x0, 0x1, 0x2, 0x3, 0x8, 0x9, 0xA, 0xB};
    const u64 divisors[] = {2, 4, 8, 16, 32, 64, 128, 1};
    for (usize i = 0; i < 8; ++i) {
        rig.write(L::kTimerDivide, codes[i]);
        rig.write(L::kTimerInitialCount, 7);
        CHECK(rig.apic.deadline() == rig.clock.tsc + 7 * divisors[i] * 2);
    }
}

TEST_CASE("pc.lapic.timer_periodic") {
    Rig rig;
    rig.enable();
    const u64 start = rig.clock.tsc;
    rig.start_timer(kPeriodic | 0x40, kDivideBy1, 100);  // 200 ticks a period
    CHECK(rig.apic.deadline() == start + 200);
    rig.clock.tsc = start + 250;  // late by 50: the next period still ends on the grid
    rig.apic.advance(rig.clock.tsc);
    CHECK(rig.take() == 0x40);
    CHECK(rig.apic.deadline() == start + 400);
    CHECK(rig.read(L::kTimerCurrentCount) == 75);
    rig.write(L::kEoi, 0);
    rig.clock.tsc = start + 400;
    rig.apic.advance(rig.clock.tsc);
    CHECK(rig.take() == 0x40);
    CHECK(rig.apic.deadline() == start + 600);
    CHECK(rig.read(L::kTimerCurrentCount) == 100);  // reloaded
    rig.clock.tsc = start + 650;                    // past a deadline not yet advanced: the count keeps cycling
    CHECK(rig.read(L::kTimerCurrentCount) == 75);
    // Masked, it counts on and re-arms without raising anything.
    rig.write(L::kEoi, 0);
    rig.write(L::kLvtTimer, kPeriodic | L::kLvtMasked | 0x40);
    rig.apic.advance(rig.clock.tsc);
    CHECK(rig.apic.pending_vector() == -1);
    CHECK(rig.apic.deadline() == start + 800);
    // Periodic to one-shot: the running period ends, once.
    rig.write(L::kLvtTimer, 0x40);
    rig.clock.tsc = start + 800;
    rig.apic.advance(rig.clock.tsc);
    CHECK(rig.take() == 0x40);
    CHECK(rig.apic.deadline() == kNoDeadline);
}

TEST_CASE("pc.lapic.timer_periodic_never_storms") {
    Rig rig;
    rig.enable();
    const u64 start = rig.clock.tsc;
    rig.start_timer(kPeriodic | 0x40, kDivideBy1, 100);
    const u64 late = start + 200 * 1000000 + 37;  // a million periods missed
    rig.clock.tsc = late;
    rig.apic.advance(late);
    CHECK(rig.take() == 0x40);
    CHECK(rig.apic.deadline() == late + 200);  // re-armed from now
    rig.apic.advance(late);
    CHECK(rig.apic.pending_vector() == -1);
}

TEST_CASE("pc.lapic.timer_period_shorter_than_a_tick") {
    Rig rig;
    rig.clock.khz = 1000;  // a 1 MHz TSC under a 1 GHz timer clock: a count lasts 1/1000 tick
    rig.enable();
    rig.start_timer(kPeriodic | 0x40, kDivideBy1, 1);
    u64 now = rig.clock.tsc;
    CHECK(rig.apic.deadline() == now + 1);
    for (int i = 0; i < 5; ++i) {
        const u64 deadline = rig.apic.deadline();
        rig.apic.advance(now);
        CHECK(rig.apic.deadline() > now);
        CHECK(rig.apic.deadline() >= deadline);
        now = rig.apic.deadline();
    }
}

TEST_CASE("pc.lapic.timer_arithmetic_does_not_overflow") {
    Rig rig;
    rig.clock.khz = u64{1} << 40;
    rig.clock.tsc = 5;
    rig.enable();
    rig.start_timer(0x40, 0xA, 0xFFFFFFFF);  // divide by 128
    const unsigned __int128 ticks = static_cast<unsigned __int128>(0xFFFFFFFF) * 128 * (u64{1} << 40);
    const u64 expected = static_cast<u64>((ticks + kTimerKhz - 1) / kTimerKhz) + 5;
    CHECK(rig.apic.deadline() == expected);
    rig.clock.tsc = expected - 1;
    CHECK(rig.read(L::kTimerCurrentCount) == 1);
    // A deadline beyond the TSC's range is never.
    rig.clock.tsc = ~u64{0} - 10;
    rig.write(L::kTimerInitialCount, 0xFFFFFFFF);
    CHECK(rig.apic.deadline() == kNoDeadline);
    CHECK(rig.read(L::kTimerCurrentCount) == 0xFFFFFFFF);
}

TEST_CASE("pc.lapic.timer_tsc_deadline") {
    Rig rig;
    rig.enable();
    const u64 now = rig.clock.tsc;
    CHECK(rig.wrmsr(L::kMsrTscDeadline, now + 10).action == Action::complete);  // one-shot: ignored
    CHECK(rig.msr(L::kMsrTscDeadline) == 0);
    CHECK(rig.apic.deadline() == kNoDeadline);
    rig.write(L::kTimerInitialCount, 100);
    rig.write(L::kLvtTimer, kTscDeadlineMode | 0x40);  // entering the mode stops the countdown
    CHECK(rig.read(L::kTimerInitialCount) == 0);
    CHECK(rig.apic.deadline() == kNoDeadline);
    rig.write(L::kTimerInitialCount, 100);  // ignored in this mode
    CHECK(rig.read(L::kTimerInitialCount) == 0);
    CHECK(rig.read(L::kTimerCurrentCount) == 0);
    CHECK(rig.wrmsr(L::kMsrTscDeadline, now + 5000).action == Action::complete);
    CHECK(rig.msr(L::kMsrTscDeadline) == now + 5000);
    CHECK(rig.apic.deadline() == now + 5000);
    rig.apic.advance(now + 4999);
    CHECK(rig.apic.pending_vector() == -1);
    rig.apic.advance(now + 5000);
    CHECK(rig.take() == 0x40);
    CHECK(rig.msr(L::kMsrTscDeadline) == 0);  // it disarms itself
    CHECK(rig.apic.deadline() == kNoDeadline);
    rig.write(L::kEoi, 0);
    CHECK(rig.wrmsr(L::kMsrTscDeadline, now + 9000).action == Action::complete);
    CHECK(rig.wrmsr(L::kMsrTscDeadline, 0).action == Action::complete);  // 0 disarms
    CHECK(rig.apic.deadline() == kNoDeadline);
    rig.apic.advance(now + 10000);
    CHECK(rig.apic.pending_vector() == -1);
    CHECK(rig.wrmsr(L::kMsrTscDeadline, 1).action == Action::complete);  // in the past: due at once
    rig.apic.advance(now + 10000);
    CHECK(rig.take() == 0x40);
    // Leaving the mode disarms.
    CHECK(rig.wrmsr(L::kMsrTscDeadline, now + 20000).action == Action::complete);
    rig.write(L::kLvtTimer, 0x40);
    CHECK(rig.apic.deadline() == kNoDeadline);
    CHECK(rig.msr(L::kMsrTscDeadline) == 0);
}

TEST_CASE("pc.lapic.timer_vector_below_16_is_an_error") {
    Rig rig;
    rig.enable();
    rig.write(L::kLvtError, 0xEE);
    rig.start_timer(0x05, kDivideBy1, 1);
    rig.apic.advance(rig.apic.deadline());
    CHECK(rig.read(L::kIrr) == 0);
    rig.write(L::kEsr, 0);
    CHECK(rig.read(L::kEsr) == L::kEsrReceiveIllegalVector);
}

// ---- IPIs ----

TEST_CASE("pc.lapic.ipi_fixed") {
    Rig rig;
    rig.write(L::kIcrHigh, 0x05000000);
    rig.write(L::kIcrLow, 0x00004041);
    REQUIRE(rig.bus.sent.size() == 1);
    const ApicMessage& m = rig.bus.sent[0];
    CHECK(m.destination == 5);
    CHECK(m.vector == 0x41);
    CHECK(m.mode == DeliveryMode::fixed);
    CHECK_FALSE(m.logical);
    CHECK_FALSE(m.level_triggered);
    CHECK(m.assert);
    CHECK(m.shorthand == Shorthand::none);
    CHECK(m.source_apic == kApicId);
    CHECK(rig.read(L::kIcrLow) == 0x00004041);  // delivery status idle
    CHECK(rig.read(L::kIcrHigh) == 0x05000000);
    // Trigger mode means nothing outside INIT: a "level" fixed IPI is an edge.
    rig.write(L::kIcrLow, 0x0000C842);
    CHECK(rig.bus.sent[1].logical);
    CHECK_FALSE(rig.bus.sent[1].level_triggered);
}

TEST_CASE("pc.lapic.ipi_nmi_init_startup") {
    Rig rig;
    rig.write(L::kIcrHigh, 0x02000000);
    rig.write(L::kIcrLow, 0x00004400);  // NMI
    rig.write(L::kIcrLow, 0x00004500);  // INIT assert
    rig.write(L::kIcrLow, 0x00088500);  // INIT level de-assert, all including self
    rig.write(L::kIcrLow, 0x00004699);  // startup, vector 0x99
    rig.write(L::kIcrLow, 0x00004200);  // SMI
    REQUIRE(rig.bus.sent.size() == 5);
    CHECK(rig.bus.sent[0].mode == DeliveryMode::nmi);
    CHECK(rig.bus.sent[1].mode == DeliveryMode::init);
    CHECK(rig.bus.sent[1].assert);
    CHECK_FALSE(rig.bus.sent[1].level_triggered);
    CHECK(rig.bus.sent[2].mode == DeliveryMode::init);
    CHECK_FALSE(rig.bus.sent[2].assert);
    CHECK(rig.bus.sent[2].level_triggered);
    CHECK(rig.bus.sent[2].shorthand == Shorthand::all_including_self);
    CHECK(rig.bus.sent[3].mode == DeliveryMode::startup);
    CHECK(rig.bus.sent[3].vector == 0x99);
    CHECK(rig.bus.sent[4].mode == DeliveryMode::smi);
    for (const ApicMessage& m : rig.bus.sent) CHECK(m.destination == 2);
    rig.write(L::kIcrLow, 0x00004300);  // reserved mode 3: nothing
    rig.write(L::kIcrLow, 0x00004700);  // ExtINT is no IPI
    CHECK(rig.bus.sent.size() == 5);
}

TEST_CASE("pc.lapic.ipi_shorthands") {
    Rig rig;
    rig.write(L::kIcrLow, 0x00044050);
    rig.write(L::kIcrLow, 0x00084051);
    rig.write(L::kIcrLow, 0x000C4052);
    REQUIRE(rig.bus.sent.size() == 3);
    CHECK(rig.bus.sent[0].shorthand == Shorthand::self);
    CHECK(rig.bus.sent[1].shorthand == Shorthand::all_including_self);
    CHECK(rig.bus.sent[2].shorthand == Shorthand::all_excluding_self);
    for (const ApicMessage& m : rig.bus.sent) CHECK(m.source_apic == kApicId);
}

TEST_CASE("pc.lapic.illegal_vectors_and_esr") {
    Rig rig;
    rig.enable();
    rig.write(L::kLvtError, 0xEE);
    rig.write(L::kIcrLow, 0x00004005);  // fixed, vector 5
    rig.write(L::kIcrLow, 0x0000410F);  // lowest priority, vector 15
    CHECK(rig.bus.sent.empty());
    CHECK(rig.read(L::kEsr) == 0);  // not latched yet
    rig.write(L::kEsr, 0xFFFFFFFF);
    CHECK(rig.read(L::kEsr) == L::kEsrSendIllegalVector);
    CHECK(rig.take() == 0xEE);  // the error interrupt
    rig.write(L::kEsr, 0);
    CHECK(rig.read(L::kEsr) == 0);  // a write starts anew
    rig.receive(3);
    CHECK(rig.read(L::kIrr) == 0);
    rig.write(L::kEsr, 0);
    CHECK(rig.read(L::kEsr) == L::kEsrReceiveIllegalVector);
    rig.write(L::kIcrLow, 0x00004402);  // NMI's vector field means nothing: sent
    CHECK(rig.bus.sent.size() == 1);
}

TEST_CASE("pc.lapic.x2apic_icr_and_self_ipi") {
    Rig rig;
    rig.enable();
    rig.to_x2apic();
    CHECK(rig.wrmsr(x2apic_msr(L::kIcrLow), (u64{0x107} << 32) | 0x1000 | 0x4842).action == Action::complete);
    REQUIRE(rig.bus.sent.size() == 1);
    CHECK(rig.bus.sent[0].destination == 0x107);
    CHECK(rig.bus.sent[0].logical);
    CHECK(rig.bus.sent[0].vector == 0x42);
    CHECK(rig.msr(x2apic_msr(L::kIcrLow)) == ((u64{0x107} << 32) | 0x4842));  // busy never reads 1
    for (u64 bit : {u64{1} << 13, u64{1} << 16, u64{1} << 17, u64{1} << 20, u64{1} << 31})
        CHECK(is_gp(rig.wrmsr(x2apic_msr(L::kIcrLow), 0x4042 | bit)));
    CHECK(rig.bus.sent.size() == 1);
    // SELF IPI: a fixed edge interrupt to this APIC, straight into its IRR.
    CHECK(rig.wrmsr(x2apic_msr(L::kSelfIpi), 0x55).action == Action::complete);
    CHECK(rig.apic.pending_vector() == 0x55);
    CHECK(rig.bus.sent.size() == 1);
    CHECK(is_gp(rig.wrmsr(x2apic_msr(L::kSelfIpi), 0x155)));
    CHECK(rig.wrmsr(x2apic_msr(L::kSelfIpi), 0x05).action == Action::complete);
    CHECK(rig.wrmsr(x2apic_msr(L::kEsr), 0).action == Action::complete);
    CHECK(rig.msr(x2apic_msr(L::kEsr)) == L::kEsrSendIllegalVector);
}

// ---- Acceptance ----

TEST_CASE("pc.lapic.accept_nmi_init_startup") {
    SECTION("an application processor waits for a startup IPI from reset") {
        Rig rig(1, false);
        CHECK(rig.apic.waiting_for_startup());
        rig.apic.accept({1, 0x10, DeliveryMode::startup, false, false});
        CHECK(rig.apic.take_startup() == 0x10);
        CHECK(rig.apic.take_startup() == -1);
        rig.apic.accept({1, 0x20, DeliveryMode::startup, false, false});  // running: ignored
        CHECK(rig.apic.take_startup() == -1);
    }
    SECTION("INIT, then a startup IPI before the INIT is taken") {
        Rig rig(1, false);
        rig.apic.accept({1, 0x01, DeliveryMode::startup, false, false});
        CHECK(rig.apic.take_startup() == 0x01);
        rig.apic.accept({1, 0x10, DeliveryMode::startup, false, false});
        CHECK(rig.apic.take_startup() == -1);
        rig.apic.accept({1, 0, DeliveryMode::init, false, false});
        rig.apic.accept({1, 0x9A, DeliveryMode::startup, false, false});
        CHECK(rig.apic.take_startup() == -1);  // the INIT first
        CHECK(rig.apic.take_init());
        CHECK_FALSE(rig.apic.take_init());
        CHECK(rig.apic.take_startup() == 0x9A);
    }
    SECTION("an INIT a VM exit into a guest hypervisor took is gone, with the startup IPI behind it") {
        Rig rig(1, false);
        rig.apic.accept({1, 0x01, DeliveryMode::startup, false, false});
        CHECK(rig.apic.take_startup() == 0x01);
        rig.apic.accept({1, 0, DeliveryMode::init, false, false});
        rig.apic.accept({1, 0x9A, DeliveryMode::startup, false, false});
        CHECK(rig.apic.init_pending());
        rig.apic.drop_init();
        CHECK_FALSE(rig.apic.init_pending());
        CHECK_FALSE(rig.apic.take_init());
        CHECK_FALSE(rig.apic.waiting_for_startup());
        CHECK(rig.apic.take_startup() == -1);
    }
    SECTION("a startup IPI while a guest hypervisor holds the INIT back is ignored") {
        Rig rig(1, false);
        rig.apic.accept({1, 0x01, DeliveryMode::startup, false, false});
        CHECK(rig.apic.take_startup() == 0x01);
        rig.apic.accept({1, 0, DeliveryMode::init, false, false});
        rig.apic.accept({1, 0x9A, DeliveryMode::startup, false, false});
        rig.apic.drop_startup();
        CHECK(rig.apic.init_pending());
        CHECK(rig.apic.take_init());
        CHECK(rig.apic.take_startup() == -1);
        rig.apic.accept({1, 0x9B, DeliveryMode::startup, false, false});
        CHECK(rig.apic.take_startup() == 0x9B);
    }
    SECTION("the bootstrap processor does not wait") {
        Rig rig;
        rig.apic.accept({kApicId, 0, DeliveryMode::init, false, false});
        CHECK(rig.apic.take_init());
        CHECK_FALSE(rig.apic.waiting_for_startup());
        rig.apic.accept({kApicId, 0x10, DeliveryMode::startup, false, false});
        CHECK(rig.apic.take_startup() == -1);
    }
    SECTION("INIT level de-assert, NMI, SMI, ExtINT") {
        Rig rig;
        rig.apic.accept({kApicId, 0, DeliveryMode::init, false, true, false});
        CHECK_FALSE(rig.apic.take_init());
        rig.apic.accept({kApicId, 0, DeliveryMode::nmi, false, false});
        CHECK(rig.apic.nmi_pending());
        CHECK(rig.apic.take_nmi());
        CHECK_FALSE(rig.apic.take_nmi());
        rig.enable();
        rig.apic.accept({kApicId, 0x30, DeliveryMode::smi, false, false});
        rig.apic.accept({kApicId, 0x30, DeliveryMode::extint, false, false});
        CHECK(rig.apic.pending_vector() == -1);
        CHECK_FALSE(rig.apic.nmi_pending());
    }
}

TEST_CASE("pc.lapic.matches") {
    Rig rig;
    auto physical = [](u32 destination) { return ApicMessage{destination, 0x40, DeliveryMode::fixed, false, false}; };
    auto logical = [](u32 destination) { return ApicMessage{destination, 0x40, DeliveryMode::fixed, true, false}; };
    CHECK(rig.apic.matches(physical(kApicId)));
    CHECK_FALSE(rig.apic.matches(physical(kApicId + 1)));
    CHECK_FALSE(rig.apic.matches(physical(kApicId + 0x100)));
    CHECK(rig.apic.matches(physical(0xFF)));
    CHECK(rig.apic.matches(physical(0xFFFFFFFF)));
    rig.write(L::kId, 0x21000000);  // the xAPIC ID is writable
    CHECK(rig.apic.matches(physical(0x21)));
    CHECK_FALSE(rig.apic.matches(physical(kApicId)));
    // Flat: a bit of eight.
    rig.write(L::kLdr, 0x24000000);
    CHECK(rig.apic.matches(logical(0x04)));
    CHECK(rig.apic.matches(logical(0x21)));
    CHECK_FALSE(rig.apic.matches(logical(0x42)));
    CHECK(rig.apic.matches(logical(0xFF)));
    // Cluster: the high nibble names the cluster, the low one a bit of four.
    rig.write(L::kDfr, 0x0FFFFFFF);
    CHECK(rig.apic.matches(logical(0x24)));
    CHECK(rig.apic.matches(logical(0x2C)));
    CHECK_FALSE(rig.apic.matches(logical(0x34)));
    CHECK_FALSE(rig.apic.matches(logical(0x23)));
    rig.write(L::kDfr, 0x5FFFFFFF);  // neither model
    CHECK_FALSE(rig.apic.matches(logical(0x24)));
    // Shorthands by the sender's ID.
    ApicMessage message = physical(0x77);
    message.source_apic = 0x21;
    message.shorthand = Shorthand::self;
    CHECK(rig.apic.matches(message));
    message.shorthand = Shorthand::all_excluding_self;
    CHECK_FALSE(rig.apic.matches(message));
    message.source_apic = 9;
    CHECK(rig.apic.matches(message));
    message.shorthand = Shorthand::all_including_self;
    CHECK(rig.apic.matches(message));
    // x2APIC: 32-bit IDs; logical is cluster (ID 31:4) << 16 | bit (ID 3:0).
    Rig x2(0x13);
    x2.to_x2apic();
    CHECK(x2.apic.matches(physical(0x13)));
    CHECK_FALSE(x2.apic.matches(physical(0x3)));
    CHECK(x2.apic.matches(physical(0xFFFFFFFF)));
    CHECK(x2.apic.matches(logical(0x00010008)));
    CHECK(x2.apic.matches(logical(0x0001FFFF)));
    CHECK_FALSE(x2.apic.matches(logical(0x00000008)));
    CHECK_FALSE(x2.apic.matches(logical(0x00010004)));
    CHECK(x2.apic.matches(logical(0xFFFFFFFF)));
}

TEST_CASE("pc.lapic.pic_interrupts_through_lint0") {
    Rig rig;
    CHECK_FALSE(rig.apic.accepts_pic_interrupts());  // LINT0 masked at reset
    rig.enable();
    rig.write(L::kLvtLint0, 0x700);
    CHECK(rig.apic.accepts_pic_interrupts());
    rig.write(L::kLvtLint0, 0x10700);
    CHECK_FALSE(rig.apic.accepts_pic_interrupts());
    rig.write(L::kLvtLint0, 0x400);  // NMI
    CHECK_FALSE(rig.apic.accepts_pic_interrupts());
    REQUIRE(rig.wrmsr(L::kMsrApicBase, rig.apic.apic_base() & ~L::kBaseEnable).action == Action::complete);
    CHECK(rig.apic.accepts_pic_interrupts());  // no APIC: the 8259A drives INTR
}

// LINT1, the platform's NMI line: as its LVT entry says (masked at reset), and straight to the
// processor's NMI input while the APIC is hardware-disabled.
TEST_CASE("pc.lapic.lint1_raises_what_its_lvt_says") {
    Rig rig;
    rig.enable();
    CHECK_FALSE(rig.apic.raise_lint1());  // masked at reset
    CHECK_FALSE(rig.apic.nmi_pending());
    rig.write(L::kLvtLint1, 4u << L::kLvtModeShift);  // NMI, as Linux programs the BSP's
    CHECK(rig.apic.raise_lint1());
    CHECK(rig.apic.take_nmi());
    CHECK(rig.apic.pending_vector() == -1);
    rig.write(L::kLvtLint1, 0x45);  // fixed, vector 0x45
    CHECK(rig.apic.raise_lint1());
    CHECK_FALSE(rig.apic.nmi_pending());
    CHECK(rig.take() == 0x45);
    rig.write(L::kLvtLint1, (7u << L::kLvtModeShift));  // ExtINT: nothing comes from LINT1 so
    CHECK_FALSE(rig.apic.raise_lint1());
    rig.write(L::kLvtLint1, (4u << L::kLvtModeShift) | L::kLvtMasked);
    CHECK_FALSE(rig.apic.raise_lint1());
    CHECK_FALSE(rig.apic.nmi_pending());
    REQUIRE(rig.wrmsr(L::kMsrApicBase, rig.apic.apic_base() & ~L::kBaseEnable).action == Action::complete);
    CHECK(rig.apic.raise_lint1());
    CHECK(rig.apic.take_nmi());
}

TEST_CASE("pc.lapic.reset_for_init") {
    Rig rig;
    rig.enable();
    rig.write(L::kId, 0x09000000);
    rig.write(L::kTpr, 0x20);
    rig.write(L::kLdr, 0x01000000);
    rig.write(L::kDfr, 0);
    rig.write(L::kIcrHigh, 0x01000000);
    rig.write(L::kLvtError, 0xEE);
    rig.write(L::kIcrLow, 0x00004001);  // an illegal vector: ESR and the error vector
    rig.write(L::kEsr, 0);
    CHECK(rig.take() == 0xEE);
    rig.write(L::kEoi, 0);
    rig.receive(0x80, true);
    CHECK(rig.take() == 0x80);
    rig.receive(0x90);
    rig.start_timer(kPeriodic | 0x40, kDivideBy16, 1000);
    rig.apic.accept({9, 0, DeliveryMode::nmi, false, false});
    rig.apic.reset_for_init();
    CHECK(rig.read(L::kId) == 0x09000000);
    CHECK(rig.apic.apic_base() == (0xFEE00000 | L::kBaseEnable | L::kBaseBsp));
    CHECK(rig.read(L::kSvr) == 0xFF);
    CHECK(rig.read(L::kDfr) == 0xFFFFFFFF);
    for (u32 offset : {L::kTpr, L::kPpr, L::kLdr, L::kEsr, L::kIcrLow, L::kIcrHigh, L::kTimerInitialCount,
                       L::kTimerCurrentCount, L::kTimerDivide})
        CHECK(rig.read(offset) == 0);
    for (u32 i = 0; i < 8; ++i)
        CHECK((rig.read(L::kIsr + i * 16) | rig.read(L::kTmr + i * 16) | rig.read(L::kIrr + i * 16)) == 0);
    for (u32 offset : kLvtOffsets) CHECK(rig.read(offset) == 0x00010000);
    CHECK(rig.apic.deadline() == kNoDeadline);
    CHECK_FALSE(rig.apic.nmi_pending());
    // In x2APIC mode the mode and the derived LDR stay.
    Rig x2(0x21);
    x2.to_x2apic();
    x2.apic.reset_for_init();
    CHECK(x2.apic.x2apic());
    CHECK(x2.msr(x2apic_msr(L::kLdr)) == ((2u << 16) | 2u));
}

// ---- Hostile guests ----

TEST_CASE("pc.lapic.hostile_mmio") {
    Rig rig;
    std::mt19937_64 random(14);
    for (int round = 0; round < 3; ++round) {
        rig.enable();
        for (u32 offset = 0; offset < 0x1000; ++offset)
            for (u8 size : {1, 2, 4, 8}) {
                const u64 address = rig.apic.base() + offset;
                u64 value = 0;
                CHECK(rig.apic.mmio_read(address, size, value, rig.host).action == Action::complete);
                if (size != 4 || offset % 16 != 0) CHECK(value == 0);
                CHECK(rig.apic.mmio_write(address, size, random(), rig.host).action == Action::complete);
            }
        rig.clock.tsc += random() % 1000000;
        rig.apic.advance(rig.clock.tsc);
    }
    CHECK(rig.read(L::kVersion) == 0x00060014);
    CHECK((rig.read(L::kIrr) & 0xFFFF) == 0);  // vectors 0-15 never requested
    CHECK(rig.apic.base() == 0xFEE00000);      // the page cannot move itself
}

TEST_CASE("pc.lapic.hostile_msrs") {
    Rig rig;
    std::mt19937_64 random(15);
    auto outcome_ok = [](virt::DeviceOutcome outcome) { return outcome.action == Action::complete || is_gp(outcome); };
    for (int round = 0; round < 3; ++round) {
        if (round == 1) rig.to_x2apic();
        for (u32 index = L::kMsrX2apicFirst; index < L::kMsrX2apicFirst + L::kMsrX2apicCount; ++index) {
            u64 value = 0;
            const virt::DeviceOutcome read = rig.rdmsr(index, value);
            CHECK(outcome_ok(read));
            if (round == 0) CHECK(is_gp(read));  // x2APIC MSRs need x2APIC mode
            const u64 values[] = {random(), random() & 0xFFFFFFFF, random() & 0xFF, 0};
            for (u64 written : values) CHECK(outcome_ok(rig.wrmsr(index, written)));
        }
        CHECK(outcome_ok(rig.wrmsr(L::kMsrTscDeadline, random())));
        rig.clock.tsc += random() % 1000000;
        rig.apic.advance(rig.clock.tsc);
        if (round >= 1) {
            CHECK(rig.apic.x2apic());
            CHECK(rig.msr(x2apic_msr(L::kVersion)) == 0x00060014);
            CHECK((rig.msr(x2apic_msr(L::kIrr)) & 0xFFFF) == 0);
        }
    }
    // IA32_APIC_BASE at random: only the SDM's states are ever reached.
    for (int i = 0; i < 10000; ++i) {
        const u64 value = random() & (random() | ~(u64{1} << 10));
        CHECK(outcome_ok(rig.wrmsr(L::kMsrApicBase, value)));
        CHECK((rig.apic.hardware_enabled() || !rig.apic.x2apic()));
        CHECK((rig.apic.apic_base() & ~(L::kBaseAddress | L::kBaseBsp | L::kBaseX2apic | L::kBaseEnable)) == 0);
    }
}

TEST_CASE("pc.lapic.timer_periodic_has_a_floor") {
    Rig rig;
    rig.enable();
    rig.apic.set_min_period(1000);
    const u64 start = rig.clock.tsc;
    rig.start_timer(kPeriodic | 0x40, kDivideBy1, 1);  // a period of 2 ticks
    rig.clock.tsc = rig.apic.deadline();
    rig.apic.advance(rig.clock.tsc);
    CHECK(rig.take() == 0x40);
    // The next period is the floor's, not 2 ticks.
    CHECK(rig.apic.deadline() == rig.clock.tsc + 1000);
    CHECK(rig.apic.deadline() > start + 2);
}
