#include <catch2/catch.hpp>
#include <memory>
#include <vector>

#include "nestor/pc/apic_router.hpp"
#include "pc_fakes.hpp"

using namespace nestor;
using namespace nestor::pc;
using namespace nestor::pc::testing;
using Action = virt::DeviceOutcome::Action;
using L = LocalApic;

namespace {

class RecordingWakeup final : public VcpuWakeup {
public:
    void interrupt_arrived(usize apic_index) override { woken.push_back(apic_index); }
    std::vector<usize> woken;
};

// A bus of APICs with the given IDs, software-enabled, in xAPIC mode.
class Machine {
public:
    explicit Machine(std::initializer_list<u32> ids) : router(wakeup) {
        for (u32 id : ids) {
            apics.push_back(std::make_unique<LocalApic>(id, clock, router, eoi, 1000000, apics.empty()));
            REQUIRE(router.add(*apics.back()));
            write(apics.size() - 1, L::kSvr, 0x1FF);
        }
    }

    void write(usize index, u32 offset, u32 value) {
        LocalApic& apic = *apics[index];
        CHECK(apic.mmio_write(apic.base() + offset, 4, value, host).action == Action::complete);
    }
    void to_x2apic(usize index) {
        LocalApic& apic = *apics[index];
        REQUIRE(apic.msr_write(L::kMsrApicBase, apic.apic_base() | L::kBaseX2apic, host).action == Action::complete);
    }
    void send(u32 destination, bool logical, DeliveryMode mode = DeliveryMode::fixed, u8 vector = 0x40) {
        wakeup.woken.clear();
        router.deliver({destination, vector, mode, logical, false});
    }
    // Which APICs have `vector` pending.
    std::vector<usize> holding(u8 vector = 0x40) const {
        std::vector<usize> result;
        for (usize i = 0; i < apics.size(); ++i)
            if (apics[i]->pending_vector() == vector) result.push_back(i);
        return result;
    }
    void clear() {
        for (auto& apic : apics) apic->reset_for_init();
        for (usize i = 0; i < apics.size(); ++i) write(i, L::kSvr, 0x1FF);
    }

    FakeClock clock{1000};
    NullEoi eoi;
    NullHost host;
    RecordingWakeup wakeup;
    ApicRouter router;
    std::vector<std::unique_ptr<LocalApic>> apics;
};

using Indices = std::vector<usize>;

}  // namespace

TEST_CASE("pc.apic_router.physical_and_broadcast") {
    Machine machine{0, 1, 2};
    machine.send(1, false);
    CHECK(machine.holding() == Indices{1});
    CHECK(machine.wakeup.woken == Indices{1});
    machine.clear();
    machine.send(7, false);
    CHECK(machine.holding().empty());
    CHECK(machine.wakeup.woken.empty());
    machine.send(0xFF, false);
    CHECK(machine.holding() == Indices{0, 1, 2});
    CHECK(machine.wakeup.woken == Indices{0, 1, 2});
}

TEST_CASE("pc.apic_router.flat_logical") {
    Machine machine{0, 1, 2};
    for (usize i = 0; i < 3; ++i) machine.write(i, L::kLdr, (1u << i) << 24);
    machine.send(0x05, true);
    CHECK(machine.holding() == Indices{0, 2});
    machine.clear();
    for (usize i = 0; i < 3; ++i) machine.write(i, L::kLdr, (1u << i) << 24);
    machine.send(0x08, true);
    CHECK(machine.holding().empty());
}

TEST_CASE("pc.apic_router.cluster_logical") {
    Machine machine{0, 1, 2};
    const u32 ldrs[] = {0x11, 0x12, 0x21};
    for (usize i = 0; i < 3; ++i) {
        machine.write(i, L::kDfr, 0x0FFFFFFF);
        machine.write(i, L::kLdr, ldrs[i] << 24);
    }
    machine.send(0x13, true);
    CHECK(machine.holding() == Indices{0, 1});
    machine.send(0x21, true, DeliveryMode::fixed, 0x50);
    CHECK(machine.holding(0x50) == Indices{2});
}

TEST_CASE("pc.apic_router.x2apic_logical") {
    Machine machine{0, 1, 17};
    for (usize i = 0; i < 3; ++i) machine.to_x2apic(i);
    machine.send(0x00000003, true);
    CHECK(machine.holding() == Indices{0, 1});
    machine.send(0x00010002, true, DeliveryMode::fixed, 0x50);
    CHECK(machine.holding(0x50) == Indices{2});
    machine.send(17, false, DeliveryMode::fixed, 0x60);
    CHECK(machine.holding(0x60) == Indices{2});
}

TEST_CASE("pc.apic_router.lowest_priority") {
    Machine machine{0, 1, 2};
    machine.write(0, L::kTpr, 0x40);
    machine.write(1, L::kTpr, 0x20);
    machine.write(2, L::kTpr, 0x20);
    machine.send(0xFF, false, DeliveryMode::lowest_priority);
    CHECK(machine.holding() == Indices{1});  // the lowest priority; of equals, the first
    CHECK(machine.wakeup.woken == Indices{1});
    machine.send(0x05, true, DeliveryMode::lowest_priority, 0x50);  // flat LDRs are 0: no match
    CHECK(machine.holding(0x50).empty());
    // A software-disabled APIC takes no part.
    machine.write(1, L::kSvr, 0xFF);
    machine.send(0xFF, false, DeliveryMode::lowest_priority, 0x30);
    CHECK(machine.apics[2]->pending_vector() == 0x30);
    for (usize i = 0; i < 3; ++i) machine.write(i, L::kSvr, 0xFF);
    machine.send(0xFF, false, DeliveryMode::lowest_priority, 0x70);
    CHECK(machine.wakeup.woken.empty());
}

// The guest moves CR8 without an exit: arbitration takes each APIC's TPR class from the CR8 its
// vCPU holds, not from what its model saw last.
TEST_CASE("pc.apic_router.lowest_priority_reads_the_vcpus_cr8") {
    Machine machine{0, 1, 2};
    u8 cr8[3] = {0, 0, 0};
    for (usize i = 0; i < 3; ++i) machine.apics[i]->set_cr8_source(&cr8[i]);
    cr8[0] = 4;  // vCPU 0 raised its CR8 while it ran; its model's TPR is still 0
    machine.send(0xFF, false, DeliveryMode::lowest_priority);
    CHECK(machine.holding() == Indices{1});
    CHECK(machine.apics[0]->tpr() == 0);  // arbitration reads CR8; the model keeps its own
    CHECK(machine.apics[0]->arbitration_priority() == 0x40);
    // Same class as the model's: the model's TPR, bits 3:0 included, is the vCPU's.
    machine.write(2, L::kTpr, 0x2F);
    cr8[1] = 3;
    cr8[2] = 2;
    CHECK(machine.apics[2]->arbitration_priority() == 0x2F);
    machine.send(0xFF, false, DeliveryMode::lowest_priority, 0x50);
    CHECK(machine.holding(0x50) == Indices{2});
    // Every CR8 lowered: the lowest index wins again.
    cr8[0] = cr8[1] = cr8[2] = 0;
    machine.send(0xFF, false, DeliveryMode::lowest_priority, 0x60);
    CHECK(machine.holding(0x60) == Indices{0});
}

// The focus processor: an APIC that already has the vector pending or in service takes the
// message, though arbitration would choose another; SVR bit 9 set turns that off.
TEST_CASE("pc.apic_router.lowest_priority_focus_processor") {
    Machine machine{0, 1, 2};
    // Pending: APIC 2's IRR holds 0x40 (its APR is 0x40 now, APIC 0's and 1's 0).
    machine.send(2, false, DeliveryMode::fixed, 0x40);
    machine.send(0xFF, false, DeliveryMode::lowest_priority, 0x40);
    CHECK(machine.wakeup.woken == Indices{2});
    CHECK(machine.holding(0x40) == Indices{2});
    // In service, behind a higher TPR: APIC 1 took 0x50 and raised its TPR above everyone's.
    machine.send(1, false, DeliveryMode::fixed, 0x50);
    machine.apics[1]->acknowledge(0x50);
    machine.write(1, L::kTpr, 0xE0);
    machine.send(0xFF, false, DeliveryMode::lowest_priority, 0x50);
    CHECK(machine.wakeup.woken == Indices{1});
    // Another vector has no focus: arbitration's choice, APIC 0.
    machine.send(0xFF, false, DeliveryMode::lowest_priority, 0x60);
    CHECK(machine.wakeup.woken == Indices{0});
    CHECK(machine.holding(0x60) == Indices{0});
    // Focus checking off at APIC 1 (SVR bit 9): arbitration again, now APIC 2 (APR 0x40 from
    // 0x40 in IRR; APIC 0's is 0x60).
    machine.write(1, L::kSvr, 0x3FF);
    machine.send(0xFF, false, DeliveryMode::lowest_priority, 0x50);
    CHECK(machine.wakeup.woken == Indices{2});
    // A focus that the message does not address is none.
    machine.send(0x01, false, DeliveryMode::lowest_priority, 0x40);
    CHECK(machine.wakeup.woken == Indices{1});
}

TEST_CASE("pc.apic_router.ipis_between_apics") {
    Machine machine{0, 1, 2};
    // APIC 0 sends a fixed IPI to ID 2 through its ICR.
    machine.write(0, L::kIcrHigh, 0x02000000);
    machine.write(0, L::kIcrLow, 0x00004041);
    CHECK(machine.holding(0x41) == Indices{2});
    // All but self, from APIC 1.
    machine.write(1, L::kIcrLow, 0x000C4042);
    CHECK(machine.holding(0x42) == Indices{0, 2});
    CHECK(machine.wakeup.woken == Indices{2, 0, 2});
    // Self.
    machine.write(1, L::kIcrLow, 0x00044043);
    CHECK(machine.apics[1]->pending_vector() == 0x43);
    // NMI and INIT reach every addressed APIC, software-enabled or not.
    machine.write(2, L::kSvr, 0xFF);
    machine.write(0, L::kIcrLow, 0x00084400);  // NMI, all including self
    for (auto& apic : machine.apics) CHECK(apic->take_nmi());
    machine.write(0, L::kIcrLow, 0x000C4500);  // INIT, all excluding self
    CHECK_FALSE(machine.apics[0]->take_init());
    CHECK(machine.apics[1]->take_init());
    CHECK(machine.apics[2]->take_init());
    machine.write(0, L::kIcrLow, 0x000C4608);  // startup, all excluding self
    CHECK(machine.apics[1]->take_startup() == 0x08);
    CHECK(machine.apics[2]->take_startup() == 0x08);
}

TEST_CASE("pc.apic_router.capacity") {
    FakeClock clock{1000};
    NullEoi eoi;
    ApicRouter router;
    std::vector<std::unique_ptr<LocalApic>> apics;
    for (u32 id = 0; id <= ApicRouter::kMaxApics; ++id)
        apics.push_back(std::make_unique<LocalApic>(id, clock, router, eoi, 1000000, id == 0));
    for (usize i = 0; i < ApicRouter::kMaxApics; ++i) CHECK(router.add(*apics[i]));
    CHECK_FALSE(router.add(*apics.back()));
    CHECK(router.size() == ApicRouter::kMaxApics);
    router.deliver({0xFF, 0, DeliveryMode::nmi, false, false});  // no wake-up hook: fine
    CHECK(apics[63]->take_nmi());
    CHECK_FALSE(apics[64]->take_nmi());
}
