// The platform as the kernel drives it: its devices on a bus, the local ones (local APIC, MSRs)
// those of the selected vCPU.
#include <catch2/catch.hpp>

#include "nestor/pc/pc_platform.hpp"
#include "pc_fakes.hpp"

using namespace nestor;
using namespace nestor::pc;
using namespace nestor::pc::testing;
using Action = virt::DeviceOutcome::Action;

namespace {

// A PC of two vCPUs on its bus, on a host TSC the test moves.
struct Pc {
    FakeClock host{7'000'000'000};
    MsrConfig config;
    PcPlatform platform{host, 2, config};
    virt::DeviceBus bus;
    NullHost console;

    Pc() { REQUIRE(platform.attach(bus).ok()); }
    u64 rdmsr(u32 vcpu, u32 index) {
        platform.select_vcpu(vcpu);
        u64 value = 0;
        REQUIRE(bus.msr_range(index)->device->msr_read(index, value, console).action == Action::complete);
        return value;
    }
    void wrmsr(u32 vcpu, u32 index, u64 value) {
        platform.select_vcpu(vcpu);
        REQUIRE(bus.msr_range(index)->device->msr_write(index, value, console).action == Action::complete);
    }
    virt::DeviceOutcome try_wrmsr(u32 vcpu, u32 index, u64 value) {
        platform.select_vcpu(vcpu);
        return bus.msr_range(index)->device->msr_write(index, value, console);
    }
    void apic_write(u32 vcpu, u32 offset, u32 value, u64 base = kLocalApicAddress) {
        platform.select_vcpu(vcpu);
        u64 address = base + offset;
        REQUIRE(bus.mmio_range(address)->device->mmio_write(address, 4, value, console).action == Action::complete);
    }
    // What vCPU `vcpu` reads at `address`; nullopt-like ~0ull when nothing on the bus claims it.
    u64 mmio_read(u32 vcpu, u64 address) {
        platform.select_vcpu(vcpu);
        const virt::BusRange<u64>* range = bus.mmio_range(address);
        if (!range) return ~u64{0};
        u64 value = 0;
        REQUIRE(range->device->mmio_read(address, 4, value, console).action == Action::complete);
        return value;
    }
};

}  // namespace

// One TSC for the domain: it starts at 0, reads the same on every vCPU, and a write on one vCPU
// moves it (and TSC_ADJUST) on all, so no vCPU sees another's TSC behind its own.
TEST_CASE("pc.guest_tsc.one_clock_for_every_vcpu_of_a_domain") {
    Pc pc;
    pc.host.tsc += 4000;
    CHECK(pc.rdmsr(0, x86_regs::kMsrTsc) == 4000);
    CHECK(pc.rdmsr(1, x86_regs::kMsrTsc) == 4000);
    pc.wrmsr(1, x86_regs::kMsrTsc, 1'000'000);
    CHECK(pc.rdmsr(0, x86_regs::kMsrTsc) == 1'000'000);
    CHECK(pc.rdmsr(0, x86_regs::kMsrTscAdjust) == 996'000);
    CHECK(pc.rdmsr(1, x86_regs::kMsrTscAdjust) == 996'000);
    pc.wrmsr(0, x86_regs::kMsrTscAdjust, 0);
    CHECK(pc.rdmsr(1, x86_regs::kMsrTsc) == 4000);
    CHECK(pc.host.tsc + pc.platform.tsc().offset() == 4000);  // RDTSC on either vCPU's backend
}

// The timers count in the guest's TSC: a TSC-deadline is the guest's value, the PIT's and the
// PM timer's ticks start with the domain, and the host is asked to wake at the matching host time.
TEST_CASE("pc.guest_tsc.timers_follow_the_guest_clock") {
    Pc pc;
    pc.apic_write(1, LocalApic::kSvr, 0x1FF);
    pc.apic_write(1, LocalApic::kLvtTimer, 0x40 | (2u << 17));  // TSC-deadline mode
    pc.wrmsr(1, LocalApic::kMsrTscDeadline, 50'000);
    CHECK(pc.platform.next_deadline() == 50'000);
    CHECK(pc.platform.tsc().host_time(pc.platform.next_deadline()) == 7'000'050'000);
    pc.wrmsr(0, x86_regs::kMsrTsc, 40'000);  // the deadline is the guest TSC's: it comes sooner
    CHECK(pc.platform.tsc().host_time(pc.platform.next_deadline()) == 7'000'010'000);
    pc.host.tsc += 10'000;
    pc.platform.advance(pc.platform.tsc().now());
    CHECK(pc.platform.apic(1).pending_vector() == 0x40);
    // The PM timer (3.579545 MHz) starts at 0 with the domain, not with the host's TSC.
    u32 pm = 0xFFFFFFFF;
    REQUIRE(pc.bus.port_range(kPmBase + kPmTimerOffset)
                ->device->io_read(kPmBase + kPmTimerOffset, 4, pm, pc.console)
                .action == Action::complete);
    CHECK(pm == static_cast<u32>(u64{50'000} * kPmTimerHz / (pc.host.khz * 1000)));
}

// IA32_APIC_BASE moves a vCPU's xAPIC page on the bus: its registers answer at the new page, not
// at the old one, and the other vCPUs' pages stay where they were.
TEST_CASE("pc.platform.apic_base_moves_the_page_on_the_bus") {
    Pc pc;
    constexpr u64 kMoved = 0xFED00000;
    constexpr u64 kEnabledBsp = LocalApic::kBaseEnable | LocalApic::kBaseBsp;
    CHECK(pc.bus.mmio_range(kMoved + LocalApic::kVersion) == nullptr);
    CHECK(pc.mmio_read(0, kLocalApicAddress + LocalApic::kId) == 0);
    pc.wrmsr(0, LocalApic::kMsrApicBase, kMoved | kEnabledBsp);
    CHECK(pc.rdmsr(0, LocalApic::kMsrApicBase) == (kMoved | kEnabledBsp));
    CHECK(pc.bus.mmio_range(kMoved + LocalApic::kVersion) != nullptr);
    CHECK(pc.mmio_read(0, kMoved + LocalApic::kVersion) == 0x00060014);
    CHECK(pc.mmio_read(0, kLocalApicAddress + LocalApic::kVersion) == 0xFFFFFFFF);  // the old page: nothing
    CHECK(pc.mmio_read(1, kLocalApicAddress + LocalApic::kId) == u64{1} << 24);     // vCPU 1's has not moved
    CHECK(pc.mmio_read(1, kMoved + LocalApic::kId) == 0xFFFFFFFF);
    pc.apic_write(0, LocalApic::kTpr, 0x20, kMoved);
    CHECK(pc.mmio_read(0, kMoved + LocalApic::kTpr) == 0x20);
    // Back home, and again to the same page: no second range for a page already claimed.
    pc.wrmsr(0, LocalApic::kMsrApicBase, kLocalApicAddress | kEnabledBsp);
    CHECK(pc.mmio_read(0, kLocalApicAddress + LocalApic::kTpr) == 0x20);
    const virt::BusRange<u64>* moved = pc.bus.mmio_range(kMoved);
    pc.wrmsr(0, LocalApic::kMsrApicBase, kMoved | kEnabledBsp);
    CHECK(pc.bus.mmio_range(kMoved) == moved);
    // Onto the I/O APIC's page: the I/O APIC keeps it.
    pc.wrmsr(1, LocalApic::kMsrApicBase, IoApic::kBase | LocalApic::kBaseEnable);
    CHECK(pc.bus.mmio_range(IoApic::kBase)->device != pc.bus.mmio_range(kMoved)->device);
}

// The SDM's transitions (vol. 3A 11.12.5) through the platform: xAPIC -> x2APIC, never back but
// through disabled; disabled -> x2APIC and EXTD without EN raise #GP and change nothing.
TEST_CASE("pc.platform.x2apic_transitions") {
    Pc pc;
    const u64 xapic = pc.rdmsr(1, LocalApic::kMsrApicBase);
    const u64 x2apic = xapic | LocalApic::kBaseX2apic;
    const u64 disabled = xapic & ~LocalApic::kBaseEnable;
    auto gp = [](virt::DeviceOutcome outcome) { return outcome.action == Action::fault && outcome.vector == 13; };
    CHECK(gp(pc.try_wrmsr(1, LocalApic::kMsrApicBase, disabled | LocalApic::kBaseX2apic)));  // EXTD without EN
    pc.wrmsr(1, LocalApic::kMsrApicBase, x2apic);
    CHECK(pc.rdmsr(1, LocalApic::kMsrX2apicFirst + 2) == 1);     // the x2APIC ID register
    CHECK(gp(pc.try_wrmsr(1, LocalApic::kMsrApicBase, xapic)));  // x2APIC -> xAPIC
    CHECK(pc.rdmsr(1, LocalApic::kMsrApicBase) == x2apic);
    pc.wrmsr(1, LocalApic::kMsrApicBase, disabled);
    CHECK(gp(pc.try_wrmsr(1, LocalApic::kMsrApicBase, x2apic)));  // disabled -> x2APIC
    pc.wrmsr(1, LocalApic::kMsrApicBase, xapic);
    CHECK(pc.mmio_read(1, kLocalApicAddress + LocalApic::kVersion) == 0x00060014);
    CHECK(pc.rdmsr(0, LocalApic::kMsrApicBase) == (kLocalApicAddress | LocalApic::kBaseEnable | LocalApic::kBaseBsp));
}

// CR8 is the selected vCPU's local APIC TPR class both ways: the guest writes it without an exit,
// so the APIC takes it before an access (a TPR or PPR read right after a MOV to CR8), and a TPR
// write through the xAPIC page or x2APIC MSR 0x808 is what the vCPU's CR8 holds after it.
TEST_CASE("pc.platform.cr8_follows_tpr_both_ways") {
    Pc pc;
    u8 cr8[2] = {0, 0};
    pc.apic_write(0, LocalApic::kSvr, 0x1FF);
    pc.platform.select_vcpu(0, &cr8[0]);
    cr8[0] = 5;  // MOV to CR8 while the guest ran
    u64 value = 0;
    u64 tpr = kLocalApicAddress + LocalApic::kTpr;
    REQUIRE(pc.bus.mmio_range(tpr)->device->mmio_read(tpr, 4, value, pc.console).action == Action::complete);
    CHECK(value == 0x50);
    REQUIRE(pc.bus.mmio_range(tpr)->device->mmio_write(tpr, 4, 0x73, pc.console).action == Action::complete);
    CHECK(cr8[0] == 7);
    CHECK(pc.platform.apic(0).tpr() == 0x73);
    CHECK(pc.platform.apic(1).tpr() == 0);  // the other vCPU's is its own
    // x2APIC: MSR 0x808.
    pc.platform.select_vcpu(1, &cr8[1]);
    u32 apic_base = LocalApic::kMsrApicBase;
    REQUIRE(pc.bus.msr_range(apic_base)
                ->device
                ->msr_write(apic_base, LocalApic::kDefaultBase | LocalApic::kBaseEnable | LocalApic::kBaseX2apic,
                            pc.console)
                .action == Action::complete);
    cr8[1] = 9;
    u32 x2apic_tpr = LocalApic::kMsrX2apicFirst + LocalApic::kTpr / 16;
    REQUIRE(pc.bus.msr_range(x2apic_tpr)->device->msr_read(x2apic_tpr, value, pc.console).action == Action::complete);
    CHECK(value == 0x90);
    REQUIRE(pc.bus.msr_range(x2apic_tpr)->device->msr_write(x2apic_tpr, 0x20, pc.console).action == Action::complete);
    CHECK(cr8[1] == 2);
}

// A vCPU's CR8 moves while it runs, without an exit: a lowest-priority IPI another vCPU sends
// later goes by the CR8 each vCPU holds (where the glue keeps it, VcpuState::cr8), not by the TPR
// its local APIC saw at its last exit.
TEST_CASE("pc.platform.lowest_priority_uses_each_vcpus_current_cr8") {
    Pc pc;
    u8 cr8[2] = {0, 0};
    pc.apic_write(0, LocalApic::kSvr, 0x1FF);
    pc.apic_write(1, LocalApic::kSvr, 0x1FF);
    pc.platform.select_vcpu(0, &cr8[0]);  // vCPU 0 enters
    cr8[0] = 6;                           // MOV to CR8 while it ran
    pc.platform.select_vcpu(1, &cr8[1]);  // then vCPU 1 runs and sends to every APIC
    auto send_lowest_priority = [&](u8 vector) {
        pc.apic_write(1, LocalApic::kIcrHigh, 0xFF000000);
        pc.apic_write(1, LocalApic::kIcrLow, vector | (u32{1} << LocalApic::kIcrModeShift));
    };
    send_lowest_priority(0x41);
    CHECK(pc.platform.apic(1).pending_vector() == 0x41);
    CHECK(pc.platform.apic(0).pending_vector() == -1);
    pc.platform.apic(1).acknowledge(0x41);
    pc.apic_write(1, LocalApic::kEoi, 0);
    // vCPU 0 lowered it again, vCPU 1 raised its own.
    cr8[0] = 0;
    cr8[1] = 3;
    send_lowest_priority(0x42);
    CHECK(pc.platform.apic(0).pending_vector() == 0x42);
    CHECK(pc.platform.apic(1).pending_vector() == -1);
}

// The NMI button: IOCHK# through port 0x61 to every local APIC's LINT1. Only a vCPU whose LVT
// LINT1 is an unmasked NMI takes it (Linux programs the BSP's so and masks the others'); port
// 0x61 bit 3 disables it and CMOS index bit 7 masks it.
TEST_CASE("pc.platform.nmi_button_reaches_lint1") {
    Pc pc;
    auto pio = [&](u16 port, bool write, u8 value = 0) {
        u32 data = value;
        const virt::BusRange<u16>* range = pc.bus.port_range(port);
        REQUIRE(range);
        virt::DeviceOutcome outcome = write ? range->device->io_write(port, 1, data, pc.console)
                                            : range->device->io_read(port, 1, data, pc.console);
        REQUIRE(outcome.action == Action::complete);
        return static_cast<u8>(data);
    };
    pc.apic_write(0, LocalApic::kSvr, 0x1FF);
    pc.apic_write(1, LocalApic::kSvr, 0x1FF);
    pc.apic_write(0, LocalApic::kLvtLint1, 4u << LocalApic::kLvtModeShift);  // NMI
    CHECK(pc.platform.press_nmi_button());
    CHECK(pc.platform.pending(0).kind == PendingEvent::Kind::nmi);
    CHECK(pc.platform.pending(1).kind == PendingEvent::Kind::none);  // LINT1 masked
    pc.platform.taken(0, pc.platform.pending(0));
    CHECK(pc.platform.pending(0).kind == PendingEvent::Kind::none);
    CHECK((pio(Pit8254::kSystemControlPort, false) & Pit8254::kIochk) != 0);  // the NMI's reason
    // Masked through the CMOS index port: no NMI, the reason still shows.
    pio(CmosRtc::kIndexPort, true, CmosRtc::kNmiMask);
    pio(Pit8254::kSystemControlPort, true, Pit8254::kIochkDisable);  // the handler clears it
    pio(Pit8254::kSystemControlPort, true, 0);
    CHECK_FALSE(pc.platform.press_nmi_button());
    CHECK(pc.platform.pending(0).kind == PendingEvent::Kind::none);
    CHECK((pio(Pit8254::kSystemControlPort, false) & Pit8254::kIochk) != 0);
    // Unmasked, but IOCHK NMIs disabled in port 0x61.
    pio(CmosRtc::kIndexPort, true, 0);
    pio(Pit8254::kSystemControlPort, true, Pit8254::kIochkDisable);
    CHECK_FALSE(pc.platform.press_nmi_button());
    CHECK(pc.platform.pending(0).kind == PendingEvent::Kind::none);
    pio(Pit8254::kSystemControlPort, true, 0);
    CHECK(pc.platform.press_nmi_button());
    CHECK(pc.platform.wakes(0));
    CHECK_FALSE(pc.platform.wakes(1));
}
