// The demo's receiver: greets, then waits for another domain's signal on its notification.
#include "nestor/guest.hpp"

using namespace nestor::guest;

namespace {
constexpr u64 kPatience = 100000;  // polls (each gives up the CPU) before giving up

// The badge of the first signal that arrives, or 0 if none came in time.
u64 wait_for_signal() {
    for (u64 i = 0; i < kPatience; ++i) {
        HypercallResult poll = invoke(NESTOR_HC_NOTIFICATION_POLL, NESTOR_GUEST_SLOT_NOTIFICATION);
        if (!poll.ok()) {
            println("poll failed: status ", poll.status);
            return 0;
        }
        if (poll.value[1]) return poll.value[0];
        yield();
    }
    return 0;
}
}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    println("hello from a Nestor domain; waiting for a signal");
    u64 badge = wait_for_signal();
    if (!badge) {
        println("no signal arrived");
        return 1;
    }
    println("signal received, badge ", hex(badge, 4));
    return 0;
}
