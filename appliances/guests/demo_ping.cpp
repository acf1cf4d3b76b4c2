// The demo's sender: uses the one capability it was given, a signal to the "hello" domain.
#include "nestor/guest.hpp"

using namespace nestor::guest;

extern "C" int guest_main(const nestor_guest_boot*) {
    HypercallResult caps = physcaps();
    println("ping: physcaps ", hex(caps.value[0], 2), ", signalling hello");
    HypercallResult sent = invoke(NESTOR_HC_NOTIFICATION_SIGNAL, NESTOR_GUEST_SLOT_SIGNAL_BASE);
    if (!sent.ok()) {
        println("ping: signal refused, status ", sent.status);
        return 1;
    }
    println("ping: signal sent");
    return 0;
}
