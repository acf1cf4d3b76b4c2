// The dispatch's short cuts (the exit path's hot hypercalls): the queries answered without an
// Invocation, and the calls that release nothing run without pinning the caller. Each must
// answer exactly what decode() + invoke() answer, and change no reference count.
#include <catch2/catch.hpp>
#include <vector>

#include "host_memory.hpp"
#include "nestor/abi/abi.h"
#include "nestor/cap/notification.hpp"

using namespace nestor;
using namespace nestor::cap;
using namespace nestor::cap::test;

namespace {
constexpr u64 R = NESTOR_CSPACE_ROOT;
constexpr u64 U = kBootSlotUntyped;
constexpr u64 kFree = kBootFirstFreeSlot;

HypercallArgs args(u64 number, std::vector<u64> values) {
    HypercallArgs in;
    in.number = number;
    for (usize i = 0; i < values.size() && i < NESTOR_HYPERCALL_ARGS; ++i) in.arg[i] = values[i];
    return in;
}

// What the slow path answers: decode, then invoke with the caller pinned.
HypercallResult reference(Domain& caller, const HypercallArgs& in) {
    HypercallResult out;
    auto decoded = decode(caller, in);
    if (!decoded) {
        out.status = static_cast<u64>(decoded.error());
        return out;
    }
    Reaper reaper;
    acquire(caller);
    invoke(decoded.value(), out, reaper);
    release(caller, reaper);
    REQUIRE(reaper.empty());
    return out;
}

void check_same(const HypercallResult& a, const HypercallResult& b) {
    CHECK(a.status == b.status);
    for (usize i = 0; i < NESTOR_HYPERCALL_VALUES; ++i) CHECK(a.value[i] == b.value[i]);
}
}  // namespace

TEST_CASE("dispatch.queries_answer_as_decode_and_invoke") {
    PlatformCaps caps = full_platform();
    caps.nested_virt = false;
    Booted b(8u << 20, caps);
    for (u64 number : {u64{NESTOR_HC_ABI_VERSION}, u64{NESTOR_HC_PHYSCAPS}}) {
        HypercallArgs none = args(number, {});
        HypercallResult expected = reference(*b.root, none);
        REQUIRE(b.call(number) == NESTOR_E_OK);
        CHECK(b.disposition == Disposition::done);
        check_same(b.result, expected);
        // Every argument is unused: any one of them set is refused, as decode refuses it.
        for (usize i = 0; i < NESTOR_HYPERCALL_ARGS; ++i) {
            std::vector<u64> values(NESTOR_HYPERCALL_ARGS, 0);
            values[i] = u64{1} << (i * 9);
            HypercallArgs in = args(number, values);
            HypercallResult out;
            out.value[0] = 0xdead;  // dispatch clears what a refused call leaves
            CHECK(dispatch(*b.root, in, out) == Disposition::done);
            check_same(out, reference(*b.root, in));
            CHECK(out.status == NESTOR_E_INVALID_ARGUMENT);
            CHECK(out.value[0] == 0);
        }
    }
    CHECK(b.call(NESTOR_HC_ABI_VERSION) == NESTOR_E_OK);
    CHECK(b.result.value[0] == NESTOR_ABI_VERSION);
    CHECK(b.call(NESTOR_HC_PHYSCAPS) == NESTOR_E_OK);
    CHECK(b.result.value[0] == physcaps_bits(caps));
}

TEST_CASE("dispatch.calls_that_release_nothing_answer_as_decode_and_invoke") {
    Booted b;
    REQUIRE(b.call(NESTOR_HC_UNTYPED_RETYPE, U, NESTOR_CAP_NOTIFICATION, 0, R, kFree) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_DOMAIN_VCPU, kBootSlotDomain, 0, R, kFree + 1) == NESTOR_E_OK);
    KernelObject& notification = *b.slot(kFree).cap.object;
    u32 caller_refs = b.root->cap_refs;
    u32 notification_refs = notification.cap_refs;
    usize live = b.system.live_objects();

    struct Case {
        u64 number;
        std::vector<u64> values;
    };
    std::vector<Case> cases = {
        {NESTOR_HC_CAP_IDENTIFY, {R, kFree}},
        {NESTOR_HC_CAP_IDENTIFY, {R, kBootSlotDomain}},
        {NESTOR_HC_CAP_IDENTIFY, {R, kFree + 7}},     // an empty slot
        {NESTOR_HC_CAP_IDENTIFY, {R, kFree, 1}},      // an unused argument set
        {NESTOR_HC_NOTIFICATION_SIGNAL, {R, kFree}},  // wrong: the CPtr is one argument
        {NESTOR_HC_NOTIFICATION_SIGNAL, {kFree}},
        {NESTOR_HC_NOTIFICATION_POLL, {kFree}},
        {NESTOR_HC_NOTIFICATION_POLL, {kFree}},              // the word was cleared
        {NESTOR_HC_NOTIFICATION_SIGNAL, {kBootSlotDomain}},  // wrong type
        {NESTOR_HC_VCPU_READ, {kFree + 1, 0}},
        {NESTOR_HC_VCPU_READ, {kFree + 1, NESTOR_VCPU_REG_COUNT}},  // no such register
        {NESTOR_HC_VCPU_READ, {kFree, 0}},                          // not a vCPU
    };
    for (const Case& c : cases) {
        HypercallArgs in = args(c.number, c.values);
        // Poll clears the word and signal sets it: compare against a reference taken on the
        // same state, then replay the call through dispatch.
        HypercallResult expected;
        if (c.number == NESTOR_HC_NOTIFICATION_POLL) {
            u64 word = 0;
            bool pending = static_cast<Notification&>(notification).poll(word);
            expected.status = NESTOR_E_OK;
            expected.value[0] = word;
            expected.value[1] = pending ? 1 : 0;
            if (pending) static_cast<Notification&>(notification).signal(word);  // put it back
        } else if (c.number == NESTOR_HC_NOTIFICATION_SIGNAL) {
            expected = reference(*b.root, in);
            u64 word = 0;
            static_cast<Notification&>(notification).poll(word);  // undo the reference's signal
        } else {
            expected = reference(*b.root, in);
        }
        HypercallResult out;
        CHECK(dispatch(*b.root, in, out) == Disposition::done);
        check_same(out, expected);
        CHECK(b.root->cap_refs == caller_refs);
        CHECK(!b.root->doomed);
        CHECK(notification.cap_refs == notification_refs);
        CHECK(b.system.live_objects() == live);
    }
}

TEST_CASE("dispatch.a_signal_through_the_short_cut_reaches_the_poller") {
    Booted b;
    REQUIRE(b.call(NESTOR_HC_UNTYPED_RETYPE, U, NESTOR_CAP_NOTIFICATION, 0, R, kFree) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_CAP_MINT, R, kFree, R, kFree + 1, NESTOR_RIGHT_NOTIFICATION_SIGNAL, 0x40) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_NOTIFICATION_SIGNAL, kFree + 1) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_NOTIFICATION_POLL, kFree) == NESTOR_E_OK);
    CHECK(b.result.value[0] == 0x40);
    CHECK(b.result.value[1] == 1);
    // A capability without the right is refused the same way on both paths.
    CHECK(b.call(NESTOR_HC_NOTIFICATION_POLL, kFree + 1) == NESTOR_E_INSUFFICIENT_RIGHTS);
}

TEST_CASE("dispatch.deleting_calls_still_reap") {
    // The slow path stays for everything else: deleting the last capability frees the object.
    Booted b;
    usize live = b.system.live_objects();
    REQUIRE(b.call(NESTOR_HC_UNTYPED_RETYPE, U, NESTOR_CAP_NOTIFICATION, 0, R, kFree) == NESTOR_E_OK);
    CHECK(b.system.live_objects() == live + 1);
    REQUIRE(b.call(NESTOR_HC_CAP_DELETE, R, kFree) == NESTOR_E_OK);
    CHECK(b.system.live_objects() == live);
}

TEST_CASE("dispatch.query_result_is_what_dispatch_answers") {
    // The exit path answers queries with query_result() from the guest's registers, before any
    // HypercallArgs exist, with the PHYSCAPS bits it kept for the domain: the same answer as
    // dispatch() for every argument pattern, and only the two argument-free queries go that way.
    for (bool nested : {false, true}) {
        PlatformCaps caps = full_platform();
        caps.nested_virt = nested;
        Booted b(8u << 20, caps);
        u64 physcaps = physcaps_answer(*b.root);
        CHECK(physcaps == physcaps_bits(caps));
        for (u64 number = 0; number < 64; ++number)
            CHECK(is_query(number) == (number == NESTOR_HC_ABI_VERSION || number == NESTOR_HC_PHYSCAPS));
        for (u64 number : {u64{NESTOR_HC_ABI_VERSION}, u64{NESTOR_HC_PHYSCAPS}}) {
            for (usize set = 0; set <= NESTOR_HYPERCALL_ARGS; ++set) {  // set == ARGS: none set
                std::vector<u64> values(NESTOR_HYPERCALL_ARGS, 0);
                if (set < NESTOR_HYPERCALL_ARGS) values[set] = ~u64{0} << set;
                HypercallArgs in = args(number, values);
                u64 any = 0;
                for (u64 v : values) any |= v;
                HypercallResult out;
                REQUIRE(dispatch(*b.root, in, out) == Disposition::done);
                check_same(query_result(number, any, physcaps), out);
                check_same(query_result(number, any, physcaps), reference(*b.root, in));
            }
        }
    }
}
