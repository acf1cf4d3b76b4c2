// Notifications, I/O ports, IRQs and guarded CSpace lookup.
#include <catch2/catch.hpp>

#include "host_memory.hpp"
#include "nestor/abi/abi.h"
#include "nestor/cap/cspace.hpp"
#include "nestor/cap/irq.hpp"
#include "nestor/cap/notification.hpp"

using namespace nestor;
using namespace nestor::cap;
using namespace nestor::cap::test;

namespace {
constexpr u64 R = NESTOR_CSPACE_ROOT;
constexpr u64 U = kBootSlotUntyped;
constexpr u64 kFree = kBootFirstFreeSlot;
}  // namespace

TEST_CASE("notification.signal_ors_badges_and_poll_clears") {
    Booted b;
    REQUIRE(b.call(NESTOR_HC_UNTYPED_RETYPE, U, NESTOR_CAP_NOTIFICATION, 0, R, kFree) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_CAP_MINT, R, kFree, R, kFree + 1, NESTOR_RIGHT_NOTIFICATION_SIGNAL, 0x1) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_CAP_MINT, R, kFree, R, kFree + 2, NESTOR_RIGHT_NOTIFICATION_SIGNAL, 0x4) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_NOTIFICATION_SIGNAL, kFree + 1) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_NOTIFICATION_SIGNAL, kFree + 2) == NESTOR_E_OK);
    CHECK(b.call(NESTOR_HC_NOTIFICATION_POLL, kFree + 1) == NESTOR_E_INSUFFICIENT_RIGHTS);
    REQUIRE(b.call(NESTOR_HC_NOTIFICATION_POLL, kFree) == NESTOR_E_OK);
    CHECK(b.result.value[0] == 0x5);
    CHECK(b.result.value[1] == 1);
    REQUIRE(b.call(NESTOR_HC_NOTIFICATION_POLL, kFree) == NESTOR_E_OK);
    CHECK(b.result.value[1] == 0);
    CHECK(b.call(NESTOR_HC_NOTIFICATION_SIGNAL, kFree, 1) == NESTOR_E_INVALID_ARGUMENT);
    CHECK(b.call(NESTOR_HC_NOTIFICATION_SIGNAL, U) == NESTOR_E_WRONG_TYPE);
}

TEST_CASE("ioport.issue_narrows_the_range") {
    Booted b;
    constexpr u64 P = kBootSlotIoPorts;
    REQUIRE(b.call(NESTOR_HC_IOPORT_ISSUE, P, 0x3f8, 8, R, kFree) == NESTOR_E_OK);
    CHECK(b.slot(kFree).cap.first_port == 0x3f8);
    CHECK(b.slot(kFree).cap.port_count == 8);
    CHECK(b.call(NESTOR_HC_IOPORT_ISSUE, kFree, 0x3f8, 9, R, kFree + 1) == NESTOR_E_PORT_RANGE);
    CHECK(b.call(NESTOR_HC_IOPORT_ISSUE, kFree, 0x3f7, 1, R, kFree + 1) == NESTOR_E_PORT_RANGE);
    CHECK(b.call(NESTOR_HC_IOPORT_ISSUE, kFree, 0x3ff, 2, R, kFree + 1) == NESTOR_E_PORT_RANGE);
    CHECK(b.call(NESTOR_HC_IOPORT_ISSUE, kFree, 0x3f8, 0, R, kFree + 1) == NESTOR_E_PORT_RANGE);
    CHECK(b.call(NESTOR_HC_IOPORT_ISSUE, P, 0xffff, 2, R, kFree + 1) == NESTOR_E_PORT_RANGE);
    REQUIRE(b.call(NESTOR_HC_IOPORT_ISSUE, kFree, 0x3fc, 4, R, kFree + 1) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_CAP_MINT, R, kFree, R, kFree + 2, NESTOR_RIGHT_IOPORT_USE, 0) == NESTOR_E_OK);
    CHECK(b.call(NESTOR_HC_IOPORT_ISSUE, kFree + 2, 0x3f8, 1, R, kFree + 3) == NESTOR_E_INSUFFICIENT_RIGHTS);
    REQUIRE(b.call(NESTOR_HC_CAP_REVOKE, R, kFree) == NESTOR_E_OK);
    CHECK(b.slot(kFree + 1).empty());
}

TEST_CASE("irq.issue_bind_and_raise") {
    Booted b;
    constexpr u64 I = kBootSlotIrqControl;
    REQUIRE(b.call(NESTOR_HC_UNTYPED_RETYPE, U, NESTOR_CAP_NOTIFICATION, 0, R, kFree) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_CAP_MINT, R, kFree, R, kFree + 1, NESTOR_RIGHTS_VALID_NOTIFICATION, 0x80) == NESTOR_E_OK);
    CHECK(b.call(NESTOR_HC_IRQ_ISSUE, I, Irq::kLineCount, R, kFree + 2) == NESTOR_E_IRQ_LINE);
    REQUIRE(b.call(NESTOR_HC_IRQ_ISSUE, I, 4, R, kFree + 2) == NESTOR_E_OK);
    CHECK(b.call(NESTOR_HC_IRQ_ISSUE, kFree + 2, 5, R, kFree + 3) == NESTOR_E_INSUFFICIENT_RIGHTS);
    CHECK(b.call(NESTOR_HC_IRQ_BIND, I, kFree + 1) == NESTOR_E_WRONG_TYPE);
    REQUIRE(b.call(NESTOR_HC_IRQ_BIND, kFree + 2, kFree + 1) == NESTOR_E_OK);
    CHECK(b.call(NESTOR_HC_IRQ_BIND, kFree + 2, kFree) == NESTOR_E_ALREADY_BOUND);
    REQUIRE(b.call(NESTOR_HC_IRQ_ISSUE, I, 5, R, kFree + 3) == NESTOR_E_OK);
    CHECK(b.call(NESTOR_HC_IRQ_BIND, kFree + 3, kFree) == NESTOR_E_ALREADY_BOUND);  // the notification is
    auto& irq = static_cast<Irq&>(*b.slot(I).cap.object);
    CHECK(irq.raise(4));
    CHECK(!irq.raise(5));
    REQUIRE(b.call(NESTOR_HC_NOTIFICATION_POLL, kFree) == NESTOR_E_OK);
    CHECK(b.result.value[0] == 0x80);
    // Destroying the notification unbinds the line.
    REQUIRE(b.call(NESTOR_HC_CAP_REVOKE, R, kFree) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_CAP_DELETE, R, kFree) == NESTOR_E_OK);
    CHECK(irq.target(4) == nullptr);
    CHECK(!irq.raise(4));
}

TEST_CASE("cspace.guarded_lookup_through_two_levels") {
    Booted b;
    REQUIRE(b.call(NESTOR_HC_UNTYPED_RETYPE, U, NESTOR_CAP_CNODE, 4, R, kFree) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_UNTYPED_RETYPE, U, NESTOR_CAP_CNODE, 4, R, kFree + 1) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_UNTYPED_RETYPE, U, NESTOR_CAP_NOTIFICATION, 0, R, kFree + 2) == NESTOR_E_OK);
    u32 all = NESTOR_RIGHTS_VALID_CNODE;
    // Level 1: guard 0x5 (4 bits) + 4 index bits. Level 2: guard 0 (52 bits) + 4 index bits.
    REQUIRE(b.call(NESTOR_HC_CAP_MINT, R, kFree + 1, kFree, 3, all, NESTOR_CNODE_GUARD(52, 0)) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_CAP_COPY, R, kFree + 2, kFree + 1, 9) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_CAP_MINT, R, kFree, R, kFree + 3, all, NESTOR_CNODE_GUARD(4, 0x5)) == NESTOR_E_OK);
    Slot& root = b.slot(kFree + 3);

    u64 cptr = (u64{0x5} << 60) | (u64{3} << 56) | 9;
    auto found = resolve(root, cptr);
    REQUIRE(found);
    CHECK(found->slot->cap.type == ObjectType::notification);
    CHECK(resolve(root, cptr ^ (u64{1} << 63)).error() == Error::guard_mismatch);             // level-1 guard
    CHECK(resolve(root, cptr | (u64{1} << 20)).error() == Error::guard_mismatch);             // level-2 guard
    CHECK(resolve(root, (u64{0x5} << 60) | (u64{4} << 56)).error() == Error::lookup_failed);  // empty, bits left
    CHECK(resolve(root, (u64{0x5} << 60) | (u64{kFree} << 56)).error() == Error::lookup_failed);
    auto object = resolve_object(root, cptr, ObjectType::notification, NESTOR_RIGHT_NOTIFICATION_WAIT);
    CHECK(object);
    CHECK(resolve_object(root, cptr, ObjectType::cnode, 0).error() == Error::wrong_type);
    CHECK(resolve_object(root, cptr ^ 1, ObjectType::notification, 0).error() == Error::slot_empty);
    // A guard too long for the remaining depth fails the lookup instead of reading past it.
    Slot deep;
    Capability too_deep = b.slot(kFree).cap;
    too_deep.guard_bits = 61;
    install(deep, too_deep, nullptr);
    CHECK(resolve(deep, 0).error() == Error::lookup_failed);
    Reaper reaper;
    clear(deep, reaper);
    reaper.reap();
}

TEST_CASE("cap.every_status_code_has_a_name") {
    const u64 codes[] = {NESTOR_E_OK,          NESTOR_E_INVALID_HYPERCALL,           NESTOR_E_INSUFFICIENT_RIGHTS,
                         NESTOR_E_CNODE_CYCLE, NESTOR_E_CFG_NESTED_VIRT_UNAVAILABLE, NESTOR_E_CFG_CSPACE_SIZE};
    for (u64 code : codes) CHECK(std::string(status_name(code)) != "unknown status");
    CHECK(std::string(status_name(NESTOR_E_OK)) == "success");
    CHECK(std::string(status_name(NESTOR_E_INSUFFICIENT_RIGHTS)) == "the capability lacks a right the call needs");
    CHECK(std::string(status_name(NESTOR_E_CFG_NESTED_VIRT_UNAVAILABLE)) == "NESTED_VIRT asked, platform cannot nest");
    CHECK(std::string(status_name(9999)) == "unknown status");
}
