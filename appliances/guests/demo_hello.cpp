// The demo's receiver: greets, then waits (halted, using no CPU) for another domain's signal on its
// notification.
#include "nestor/guest.hpp"

using namespace nestor::guest;

extern "C" int guest_main(const nestor_guest_boot*) {
    println("hello from a Nestor domain; waiting for a signal");
    // Halts until the kernel sees a signal pending on this domain's notification.
    u64 badge = wait_for_signal();
    if (!badge) {
        println("no signal arrived");
        return 1;
    }
    println("signal received, badge ", hex(badge, 4));
    return 0;
}
