// Waits for a signal nobody can send: the kernel must notice and end the wait rather than idle
// for ever.
#include "nestor/guest.hpp"

using namespace nestor::guest;

extern "C" int guest_main(const nestor_guest_boot*) {
    println("waiter: waiting for a signal");
    u64 badge = wait_for_signal();
    println("waiter: woke with badge ", hex(badge, 4));
    return 0;
}
