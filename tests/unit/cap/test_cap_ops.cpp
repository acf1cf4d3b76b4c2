// Unit tests of the capability operations, through the hypercall dispatch (decode + invoke).
#include <catch2/catch.hpp>

#include "host_memory.hpp"
#include "nestor/abi/abi.h"
#include "nestor/cap/memory_region.hpp"
#include "nestor/cap/notification.hpp"

using namespace nestor;
using namespace nestor::cap;
using namespace nestor::cap::test;

namespace {
constexpr u64 R = NESTOR_CSPACE_ROOT;
constexpr u64 U = kBootSlotUntyped;
constexpr u64 kFree = kBootFirstFreeSlot;

u64 retype(Booted& b, ObjectType type, u32 bits, u64 dst, u64 untyped = U) {
    return b.call(NESTOR_HC_UNTYPED_RETYPE, untyped, static_cast<u64>(type), bits, R, dst);
}
}  // namespace

TEST_CASE("cap.bootstrap_layout") {
    Booted b;
    struct Expect {
        u64 slot;
        u32 type;
    };
    for (auto e : {Expect{U, NESTOR_CAP_UNTYPED}, Expect{kBootSlotDomain, NESTOR_CAP_DOMAIN},
                   Expect{kBootSlotCSpace, NESTOR_CAP_CNODE}, Expect{kBootSlotIoPorts, NESTOR_CAP_IOPORT_RANGE},
                   Expect{kBootSlotIrqControl, NESTOR_CAP_IRQ}, Expect{kFree, NESTOR_CAP_NULL}}) {
        REQUIRE(b.call(NESTOR_HC_CAP_IDENTIFY, R, e.slot) == NESTOR_E_OK);
        CHECK(b.result.value[0] == e.type);
    }
    CHECK(b.system.live_objects() == 6);  // untyped, domain, cnode, vcpu, ioports, irq
    CHECK(b.untyped().used() <= b.untyped().watermark());
}

TEST_CASE("cap.bootstrap_refuses_bad_config_and_small_memory") {
    HostPhysicalMemory memory(1 << 16);
    System system(memory, full_platform());
    DomainConfig config;
    config.vcpus = 0;
    auto refused = bootstrap(system, HostPhysicalMemory::kBase, memory.size(), config);
    REQUIRE(!refused);
    CHECK(refused.error() == Error::cfg_no_vcpus);
    config.vcpus = 1;
    config.cspace_bits = 2;
    CHECK(bootstrap(system, HostPhysicalMemory::kBase, memory.size(), config).error() == Error::cfg_cspace_size);
    config.cspace_bits = 4;
    CHECK(bootstrap(system, HostPhysicalMemory::kBase, 8192, config).error() == Error::untyped_exhausted);
    CHECK(system.live_objects() == 0);
}

TEST_CASE("cap.copy_keeps_rights_and_is_a_child") {
    Booted b;
    REQUIRE(retype(b, ObjectType::notification, 0, kFree) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_CAP_COPY, R, kFree, R, kFree + 1) == NESTOR_E_OK);
    CHECK(b.slot(kFree + 1).cap.rights == b.slot(kFree).cap.rights);
    CHECK(b.slot(kFree + 1).cdt_parent == &b.slot(kFree));
    CHECK(b.slot(kFree).cap.object->cap_refs == 2);
}

TEST_CASE("cap.copy_error_paths") {
    Booted b;
    REQUIRE(retype(b, ObjectType::notification, 0, kFree) == NESTOR_E_OK);
    CHECK(b.call(NESTOR_HC_CAP_COPY, R, kFree + 5, R, kFree + 1) == NESTOR_E_SLOT_EMPTY);
    CHECK(b.call(NESTOR_HC_CAP_COPY, R, kFree, R, U) == NESTOR_E_SLOT_OCCUPIED);
    CHECK(b.call(NESTOR_HC_CAP_COPY, R, kFree, R, kFree) == NESTOR_E_SAME_SLOT);
    CHECK(b.call(NESTOR_HC_CAP_COPY, R, 64, R, kFree + 1) == NESTOR_E_INDEX_OUT_OF_RANGE);
    CHECK(b.call(NESTOR_HC_CAP_COPY, kFree, 0, R, kFree + 1) == NESTOR_E_WRONG_TYPE);
    CHECK(b.call(NESTOR_HC_CAP_COPY, kFree + 9, 0, R, kFree + 1) == NESTOR_E_SLOT_EMPTY);
    CHECK(b.call(NESTOR_HC_CAP_COPY, u64{1} << 40, 0, R, kFree + 1) == NESTOR_E_GUARD_MISMATCH);
    CHECK(b.call(NESTOR_HC_CAP_COPY, R, kFree, R, kFree + 1, 1) == NESTOR_E_INVALID_ARGUMENT);
    CHECK(b.call(NESTOR_HC_CAP_COPY, R, kFree, R, kFree + 1, 0, 1) == NESTOR_E_INVALID_ARGUMENT);
    CHECK(b.slot(kFree + 1).empty());
}

TEST_CASE("cap.cnode_rights_gate_slot_access") {
    Booted b;
    // A read-only and a write-only view of the root CNode.
    REQUIRE(b.call(NESTOR_HC_CAP_MINT, R, kBootSlotCSpace, R, 10, NESTOR_RIGHT_CNODE_READ, 0) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_CAP_MINT, R, kBootSlotCSpace, R, 11, NESTOR_RIGHT_CNODE_WRITE, 0) == NESTOR_E_OK);
    CHECK(b.call(NESTOR_HC_CAP_COPY, 10, U, 10, 12) == NESTOR_E_INSUFFICIENT_RIGHTS);
    CHECK(b.call(NESTOR_HC_CAP_COPY, 11, U, 11, 12) == NESTOR_E_INSUFFICIENT_RIGHTS);
    CHECK(b.call(NESTOR_HC_CAP_COPY, 10, U, 11, 12) == NESTOR_E_OK);
    CHECK(b.call(NESTOR_HC_CAP_DELETE, 10, 12) == NESTOR_E_INSUFFICIENT_RIGHTS);
    CHECK(b.call(NESTOR_HC_CAP_DELETE, 11, 12) == NESTOR_E_OK);
    CHECK(b.call(NESTOR_HC_CAP_MOVE, 10, U, R, 12) == NESTOR_E_INSUFFICIENT_RIGHTS);
    CHECK(b.call(NESTOR_HC_CAP_IDENTIFY, 11, U) == NESTOR_E_INSUFFICIENT_RIGHTS);
}

TEST_CASE("cap.mint_diminishes_rights") {
    Booted b;
    REQUIRE(retype(b, ObjectType::memory, 12, kFree) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_CAP_MINT, R, kFree, R, kFree + 1, NESTOR_RIGHT_MEMORY_READ, 0) == NESTOR_E_OK);
    CHECK(b.slot(kFree + 1).cap.rights == NESTOR_RIGHT_MEMORY_READ);
    // And the diminished capability cannot regain what it lost.
    CHECK(b.call(NESTOR_HC_CAP_MINT, R, kFree + 1, R, kFree + 2, NESTOR_RIGHTS_VALID_MEMORY, 0) ==
          NESTOR_E_RIGHTS_ESCALATION);
    CHECK(b.call(NESTOR_HC_CAP_MINT, R, kFree, R, kFree + 2, 1u << 7, 0) == NESTOR_E_INVALID_RIGHTS);
    CHECK(b.call(NESTOR_HC_CAP_MINT, R, kFree, R, kFree + 2, u64{1} << 32, 0) == NESTOR_E_INVALID_RIGHTS);
    CHECK(b.call(NESTOR_HC_CAP_MINT, R, kFree, R, kFree + 2, NESTOR_RIGHT_MEMORY_READ, 5) ==
          NESTOR_E_BADGE_NOT_SUPPORTED);
}

TEST_CASE("cap.mint_badges_notifications_once") {
    Booted b;
    REQUIRE(retype(b, ObjectType::notification, 0, kFree) == NESTOR_E_OK);
    u32 all = NESTOR_RIGHTS_VALID_NOTIFICATION;
    REQUIRE(b.call(NESTOR_HC_CAP_MINT, R, kFree, R, kFree + 1, all, 0x10) == NESTOR_E_OK);
    CHECK(b.slot(kFree + 1).cap.badge == 0x10);
    CHECK(b.call(NESTOR_HC_CAP_MINT, R, kFree + 1, R, kFree + 2, all, 0x20) == NESTOR_E_BADGE_ALREADY_SET);
    REQUIRE(b.call(NESTOR_HC_CAP_MINT, R, kFree + 1, R, kFree + 2, all, 0x10) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_CAP_MINT, R, kFree + 1, R, kFree + 3, NESTOR_RIGHT_NOTIFICATION_SIGNAL, 0) == NESTOR_E_OK);
    CHECK(b.slot(kFree + 3).cap.badge == 0x10);  // badge 0 keeps the badge
}

TEST_CASE("cap.mint_sets_cnode_guard") {
    Booted b;
    REQUIRE(retype(b, ObjectType::cnode, 4, kFree) == NESTOR_E_OK);
    u32 all = NESTOR_RIGHTS_VALID_CNODE;
    REQUIRE(b.call(NESTOR_HC_CAP_MINT, R, kFree, R, kFree + 1, all, NESTOR_CNODE_GUARD(8, 0xab)) == NESTOR_E_OK);
    CHECK(b.slot(kFree + 1).cap.guard_bits == 8);
    CHECK(b.slot(kFree + 1).cap.guard == 0xab);
    CHECK(b.call(NESTOR_HC_CAP_MINT, R, kFree, R, kFree + 2, all, NESTOR_CNODE_GUARD(4, 0x1f)) ==
          NESTOR_E_INVALID_GUARD);
    CHECK(b.call(NESTOR_HC_CAP_MINT, R, kFree, R, kFree + 2, all, NESTOR_CNODE_GUARD(61, 0)) == NESTOR_E_INVALID_GUARD);
    CHECK(b.call(NESTOR_HC_CAP_MINT, R, kFree, R, kFree + 2, all, 0x80) == NESTOR_E_INVALID_GUARD);
}

TEST_CASE("cap.move_transfers_children_and_position") {
    Booted b;
    REQUIRE(retype(b, ObjectType::notification, 0, kFree) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_CAP_COPY, R, kFree, R, kFree + 1) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_CAP_MOVE, R, kFree, R, kFree + 2) == NESTOR_E_OK);
    CHECK(b.slot(kFree).empty());
    CHECK(b.slot(kFree + 1).cdt_parent == &b.slot(kFree + 2));
    CHECK(b.slot(kFree + 2).cdt_parent == &b.slot(U));
    CHECK(b.call(NESTOR_HC_CAP_MOVE, R, kFree, R, kFree + 3) == NESTOR_E_SLOT_EMPTY);
    CHECK(b.call(NESTOR_HC_CAP_MOVE, R, kFree + 2, R, kFree + 1) == NESTOR_E_SLOT_OCCUPIED);
    CHECK(b.call(NESTOR_HC_CAP_MOVE, R, kFree + 2, R, kFree + 2) == NESTOR_E_SAME_SLOT);
    CHECK(b.call(NESTOR_HC_CAP_MOVE, R, kFree + 2, R, kFree + 3, 0, 9) == NESTOR_E_INVALID_ARGUMENT);
}

TEST_CASE("cap.delete_reparents_children_and_destroys_last") {
    Booted b;
    u64 used = b.untyped().used();
    u64 live = b.system.live_objects();
    REQUIRE(retype(b, ObjectType::notification, 0, kFree) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_CAP_COPY, R, kFree, R, kFree + 1) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_CAP_DELETE, R, kFree) == NESTOR_E_OK);
    CHECK(b.slot(kFree + 1).cdt_parent == &b.slot(U));
    CHECK(b.system.live_objects() == live + 1);
    REQUIRE(b.call(NESTOR_HC_CAP_DELETE, R, kFree + 1) == NESTOR_E_OK);
    CHECK(b.system.live_objects() == live);
    CHECK(b.untyped().used() == used);
    CHECK(b.call(NESTOR_HC_CAP_DELETE, R, kFree + 1) == NESTOR_E_SLOT_EMPTY);
    CHECK(b.call(NESTOR_HC_CAP_DELETE, R, 99) == NESTOR_E_INDEX_OUT_OF_RANGE);
    CHECK(b.call(NESTOR_HC_CAP_DELETE, R, 1, 1) == NESTOR_E_INVALID_ARGUMENT);
}

TEST_CASE("cap.revoke_deletes_every_descendant") {
    Booted b;
    REQUIRE(retype(b, ObjectType::notification, 0, kFree) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_CAP_COPY, R, kFree, R, kFree + 1) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_CAP_COPY, R, kFree + 1, R, kFree + 2) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_CAP_COPY, R, kFree, R, kFree + 3) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_CAP_REVOKE, R, kFree) == NESTOR_E_OK);
    CHECK(!b.slot(kFree).empty());
    CHECK(!b.slot(kFree).has_children());
    for (u64 i = 1; i <= 3; ++i) CHECK(b.slot(kFree + i).empty());
    CHECK(b.slot(kFree).cap.object->cap_refs == 1);
    CHECK(b.call(NESTOR_HC_CAP_REVOKE, R, kFree + 1) == NESTOR_E_SLOT_EMPTY);
    CHECK(b.call(NESTOR_HC_CAP_REVOKE, R, kFree, 0, 1) == NESTOR_E_INVALID_ARGUMENT);
}

TEST_CASE("cap.revoke_of_a_deep_chain_needs_no_recursion") {
    // 4095 nested copies, spread through a big CNode: recursion this deep would be a bug.
    Booted b(16u << 20);
    REQUIRE(retype(b, ObjectType::cnode, 12, kFree) == NESTOR_E_OK);
    REQUIRE(retype(b, ObjectType::notification, 0, kFree + 1) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_CAP_COPY, R, kFree + 1, kFree, 0) == NESTOR_E_OK);
    for (u64 i = 1; i < 4096; ++i) REQUIRE(b.call(NESTOR_HC_CAP_COPY, kFree, i - 1, kFree, i) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_CAP_REVOKE, R, kFree + 1) == NESTOR_E_OK);
    CHECK(b.slot(kFree + 1).cap.object->cap_refs == 1);
    CHECK(!b.slot(kFree + 1).has_children());
}

TEST_CASE("cap.revoke_untyped_destroys_everything_carved") {
    Booted b;
    u64 live = b.system.live_objects();
    REQUIRE(retype(b, ObjectType::untyped, 20, kFree) == NESTOR_E_OK);
    auto& child = static_cast<Untyped&>(*b.slot(kFree).cap.object);
    REQUIRE(retype(b, ObjectType::cnode, 3, kFree + 1, kFree) == NESTOR_E_OK);
    REQUIRE(retype(b, ObjectType::memory, 13, kFree + 2, kFree) == NESTOR_E_OK);
    REQUIRE(retype(b, ObjectType::notification, 0, kFree + 3, kFree) == NESTOR_E_OK);
    // Caps stored inside the carved CNode go too, even though that CNode dies in the revoke.
    REQUIRE(b.call(NESTOR_HC_CAP_COPY, R, kFree + 3, kFree + 1, 0) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_CAP_MOVE, R, kFree + 2, kFree + 1, 1) == NESTOR_E_OK);
    CHECK(child.children() == 3);
    REQUIRE(b.call(NESTOR_HC_CAP_REVOKE, R, kFree) == NESTOR_E_OK);
    CHECK(child.children() == 0);
    CHECK(child.used() == 0);
    CHECK(child.watermark() == 0);
    CHECK(b.system.live_objects() == live + 1);
    REQUIRE(b.call(NESTOR_HC_CAP_DELETE, R, kFree) == NESTOR_E_OK);
    CHECK(b.system.live_objects() == live);
}

TEST_CASE("cap.untyped_outlives_its_last_cap_while_children_live") {
    Booted b;
    u64 live = b.system.live_objects();
    REQUIRE(retype(b, ObjectType::untyped, 16, kFree) == NESTOR_E_OK);
    REQUIRE(retype(b, ObjectType::notification, 0, kFree + 1, kFree) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_CAP_DELETE, R, kFree) == NESTOR_E_OK);
    CHECK(b.system.live_objects() == live + 2);
    CHECK(b.slot(kFree + 1).cdt_parent == &b.slot(U));  // handed up to the boot untyped
    REQUIRE(b.call(NESTOR_HC_CAP_DELETE, R, kFree + 1) == NESTOR_E_OK);
    CHECK(b.system.live_objects() == live);
}

TEST_CASE("cap.retype_error_paths") {
    Booted b;
    CHECK(retype(b, ObjectType::domain, 0, kFree) == NESTOR_E_INVALID_TYPE);
    CHECK(retype(b, ObjectType::vcpu, 0, kFree) == NESTOR_E_INVALID_TYPE);
    CHECK(retype(b, ObjectType::null, 0, kFree) == NESTOR_E_INVALID_TYPE);
    CHECK(retype(b, ObjectType::irq, 0, kFree) == NESTOR_E_INVALID_TYPE);
    CHECK(retype(b, ObjectType::ioport_range, 0, kFree) == NESTOR_E_INVALID_TYPE);
    CHECK(retype(b, static_cast<ObjectType>(77), 0, kFree) == NESTOR_E_INVALID_TYPE);
    CHECK(retype(b, ObjectType::cnode, 0, kFree) == NESTOR_E_INVALID_SIZE);
    CHECK(retype(b, ObjectType::cnode, 13, kFree) == NESTOR_E_INVALID_SIZE);
    CHECK(retype(b, ObjectType::memory, 11, kFree) == NESTOR_E_INVALID_SIZE);
    CHECK(retype(b, ObjectType::memory, 31, kFree) == NESTOR_E_INVALID_SIZE);
    CHECK(retype(b, ObjectType::untyped, 11, kFree) == NESTOR_E_INVALID_SIZE);
    CHECK(retype(b, ObjectType::untyped, 64, kFree) == NESTOR_E_INVALID_SIZE);
    CHECK(retype(b, ObjectType::notification, 1, kFree) == NESTOR_E_INVALID_SIZE);
    CHECK(retype(b, ObjectType::memory, 24, kFree) == NESTOR_E_UNTYPED_EXHAUSTED);
    CHECK(retype(b, ObjectType::notification, 0, U) == NESTOR_E_SLOT_OCCUPIED);
    CHECK(retype(b, ObjectType::notification, 0, kFree, kBootSlotDomain) == NESTOR_E_WRONG_TYPE);
    CHECK(retype(b, ObjectType::notification, 0, kFree, kFree + 3) == NESTOR_E_SLOT_EMPTY);
    CHECK(b.call(NESTOR_HC_UNTYPED_RETYPE, U, NESTOR_CAP_NOTIFICATION, 0, R, kFree, 1) == NESTOR_E_INVALID_ARGUMENT);
    REQUIRE(b.call(NESTOR_HC_CAP_MINT, R, U, R, kFree + 1, 0, 0) == NESTOR_E_OK);
    CHECK(retype(b, ObjectType::notification, 0, kFree, kFree + 1) == NESTOR_E_INSUFFICIENT_RIGHTS);
}

TEST_CASE("cap.retype_charges_untyped_and_resets_when_empty") {
    Booted b;
    REQUIRE(retype(b, ObjectType::untyped, 16, kFree) == NESTOR_E_OK);
    auto& child = static_cast<Untyped&>(*b.slot(kFree).cap.object);
    u64 capacity = child.capacity();
    REQUIRE(retype(b, ObjectType::memory, 12, kFree + 1, kFree) == NESTOR_E_OK);
    REQUIRE(retype(b, ObjectType::notification, 0, kFree + 2, kFree) == NESTOR_E_OK);
    CHECK(child.used() == sizeof(MemoryRegion) + 4096 + sizeof(Notification));
    // Memory is zeroed for the guest.
    auto& region = static_cast<MemoryRegion&>(*b.slot(kFree + 1).cap.object);
    for (u64 i = 0; i < region.size(); ++i) REQUIRE(b.memory.bytes(region.backing())[i] == 0);
    // Fill the rest; then nothing more fits until objects die.
    u64 next = 20;
    while (next < 64 && retype(b, ObjectType::memory, 12, next, kFree) == NESTOR_E_OK) ++next;
    REQUIRE(next < 64);
    CHECK(b.result.status == NESTOR_E_UNTYPED_EXHAUSTED);
    u64 watermark = child.watermark();
    REQUIRE(b.call(NESTOR_HC_CAP_DELETE, R, next - 1) == NESTOR_E_OK);
    CHECK(child.watermark() < watermark);  // the newest freed: the watermark rewinds
    REQUIRE(retype(b, ObjectType::memory, 12, next - 1, kFree) == NESTOR_E_OK);
    CHECK(child.watermark() == watermark);
    for (u64 i = 20; i < next; ++i) REQUIRE(b.call(NESTOR_HC_CAP_DELETE, R, i) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_CAP_DELETE, R, kFree + 1) == NESTOR_E_OK);
    CHECK(child.watermark() > 0);  // not the newest: its memory waits for the reset
    REQUIRE(b.call(NESTOR_HC_CAP_DELETE, R, kFree + 2) == NESTOR_E_OK);
    CHECK(child.watermark() == 0);
    CHECK(child.used() == 0);
    CHECK(child.capacity() == capacity);
}

// The untyped pool is not cleared when it is handed to the runtime (its memory holds 0xA5 here):
// a memory object must be zero when it is made, and again when its memory comes back to another
// owner after the first one's object died.
TEST_CASE("cap.memory_retype_never_shows_old_data") {
    Booted b;
    REQUIRE(retype(b, ObjectType::untyped, 16, kFree) == NESTOR_E_OK);
    REQUIRE(retype(b, ObjectType::memory, 12, kFree + 1, kFree) == NESTOR_E_OK);
    auto* first = &static_cast<MemoryRegion&>(*b.slot(kFree + 1).cap.object);
    paddr backing = first->backing();
    u64 size = first->size();
    for (u64 i = 0; i < size; ++i) REQUIRE(b.memory.bytes(backing)[i] == 0);
    std::memset(b.memory.bytes(backing), 0x5C, size);  // the first owner's data
    REQUIRE(b.call(NESTOR_HC_CAP_DELETE, R, kFree + 1) == NESTOR_E_OK);
    REQUIRE(retype(b, ObjectType::memory, 12, kFree + 1, kFree) == NESTOR_E_OK);
    auto& second = static_cast<MemoryRegion&>(*b.slot(kFree + 1).cap.object);
    REQUIRE(second.backing() == backing);  // the same memory, a new owner
    for (u64 i = 0; i < size; ++i) REQUIRE(b.memory.bytes(backing)[i] == 0);
}

TEST_CASE("cap.cnode_self_reference_does_not_keep_it_alive") {
    Booted b;
    u64 live = b.system.live_objects();
    REQUIRE(retype(b, ObjectType::cnode, 2, kFree) == NESTOR_E_OK);
    auto* cnode = b.slot(kFree).cap.object;
    REQUIRE(b.call(NESTOR_HC_CAP_COPY, R, kFree, kFree, 0) == NESTOR_E_OK);  // it holds itself
    CHECK(cnode->cap_refs == 1);
    REQUIRE(b.call(NESTOR_HC_CAP_DELETE, R, kFree) == NESTOR_E_OK);
    CHECK(b.system.live_objects() == live);
    // Moving the last outside capability into the CNode itself destroys it as well.
    REQUIRE(retype(b, ObjectType::cnode, 2, kFree) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_CAP_MOVE, R, kFree, kFree, 1) == NESTOR_E_OK);
    CHECK(b.system.live_objects() == live);
}

TEST_CASE("cap.cnode_cycles_are_refused") {
    Booted b;
    REQUIRE(retype(b, ObjectType::cnode, 2, kFree) == NESTOR_E_OK);                     // A
    REQUIRE(retype(b, ObjectType::cnode, 2, kFree + 1) == NESTOR_E_OK);                 // B
    REQUIRE(retype(b, ObjectType::cnode, 2, kFree + 2) == NESTOR_E_OK);                 // C
    REQUIRE(b.call(NESTOR_HC_CAP_COPY, R, kFree + 1, kFree, 0) == NESTOR_E_OK);         // A holds B
    REQUIRE(b.call(NESTOR_HC_CAP_COPY, R, kFree + 2, kFree + 1, 0) == NESTOR_E_OK);     // B holds C
    CHECK(b.call(NESTOR_HC_CAP_COPY, R, kFree, kFree + 2, 0) == NESTOR_E_CNODE_CYCLE);  // C holds A?
    CHECK(b.call(NESTOR_HC_CAP_MINT, R, kFree, kFree + 1, 1, NESTOR_RIGHT_CNODE_READ, 0) == NESTOR_E_CNODE_CYCLE);
    CHECK(b.call(NESTOR_HC_CAP_MOVE, R, kFree, kFree + 2, 1) == NESTOR_E_CNODE_CYCLE);
    CHECK(b.call(NESTOR_HC_CAP_COPY, R, kFree + 2, kFree, 1) == NESTOR_E_OK);  // a DAG is fine
    // A domain whose CSpace would contain its own CSpace root through another CNode.
    REQUIRE(b.call(NESTOR_HC_DOMAIN_CREATE, U, R, kFree + 3, NESTOR_DOMAIN_CREATE_PACK(1, 2, 0, 0), 4096) ==
            NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_DOMAIN_CSPACE, kFree + 3, R, kFree + 4) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_CAP_COPY, R, kFree + 4, kFree + 2, 2) == NESTOR_E_OK);  // C holds D's root
    CHECK(b.call(NESTOR_HC_CAP_COPY, R, kFree + 2, kFree + 4, 0) == NESTOR_E_CNODE_CYCLE);
}

TEST_CASE("cap.notification_vector_raises_once_per_poll") {
    Booted b;
    REQUIRE(retype(b, ObjectType::notification, 0, kFree) == NESTOR_E_OK);
    auto& n = static_cast<Notification&>(*b.slot(kFree).cap.object);
    REQUIRE(b.call(NESTOR_HC_NOTIFICATION_SET_VECTOR, kFree, 0x40) == NESTOR_E_OK);
    CHECK(n.vector() == 0x40);
    CHECK(n.interrupt_due() == 0);  // nothing pending yet
    REQUIRE(b.call(NESTOR_HC_NOTIFICATION_SIGNAL, kFree) == NESTOR_E_OK);
    CHECK(n.interrupt_due() == 0x40);
    n.interrupt_raised();
    REQUIRE(b.call(NESTOR_HC_NOTIFICATION_SIGNAL, kFree) == NESTOR_E_OK);
    CHECK(n.interrupt_due() == 0);  // one interrupt until the handler polls
    REQUIRE(b.call(NESTOR_HC_NOTIFICATION_POLL, kFree) == NESTOR_E_OK);
    CHECK(n.interrupt_due() == 0);  // polled empty
    REQUIRE(b.call(NESTOR_HC_NOTIFICATION_SIGNAL, kFree) == NESTOR_E_OK);
    CHECK(n.interrupt_due() == 0x40);  // re-armed by the poll
    REQUIRE(b.call(NESTOR_HC_NOTIFICATION_SET_VECTOR, kFree, 0) == NESTOR_E_OK);
    CHECK(n.interrupt_due() == 0);
}

TEST_CASE("cap.notification_set_vector_refuses_bad_input") {
    Booted b;
    REQUIRE(retype(b, ObjectType::notification, 0, kFree) == NESTOR_E_OK);
    for (u64 vector : {u64{1}, u64{31}, u64{256}, ~u64{0}})
        CHECK(b.call(NESTOR_HC_NOTIFICATION_SET_VECTOR, kFree, vector) == NESTOR_E_INVALID_ARGUMENT);
    CHECK(b.call(NESTOR_HC_NOTIFICATION_SET_VECTOR, kFree, 32, 1) == NESTOR_E_INVALID_ARGUMENT);
    CHECK(b.call(NESTOR_HC_NOTIFICATION_SET_VECTOR, kFree, 255) == NESTOR_E_OK);
    // Signalling alone is not enough: only a waiter chooses how it is woken.
    REQUIRE(b.call(NESTOR_HC_CAP_MINT, R, kFree, R, kFree + 1, NESTOR_RIGHT_NOTIFICATION_SIGNAL, 0) == NESTOR_E_OK);
    CHECK(b.call(NESTOR_HC_NOTIFICATION_SET_VECTOR, kFree + 1, 32) == NESTOR_E_INSUFFICIENT_RIGHTS);
    CHECK(b.call(NESTOR_HC_NOTIFICATION_SET_VECTOR, U, 32) == NESTOR_E_WRONG_TYPE);
}
