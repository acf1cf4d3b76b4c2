// The other half of interrupt_listener.cpp (and of nested/guests/intr_l1.cpp): `rounds` times
// (cmdline "rounds=N", default 3), waits for a signal, answers with one.
#include "nestor/guest.hpp"

using namespace nestor::guest;

extern "C" int guest_main(const nestor_guest_boot*) {
    char buffer[8];
    const char* value = boot_info().cmdline_value("rounds", buffer, sizeof(buffer));
    int rounds = value && value[0] >= '1' && value[0] <= '9' ? value[0] - '0' : 3;
    for (int round = 1; round <= rounds; ++round) {
        if (!wait_for_signal()) return 1;
        if (!invoke(NESTOR_HC_NOTIFICATION_SIGNAL, NESTOR_GUEST_SLOT_SIGNAL_BASE).ok()) return 1;
        println("round ", round, ": signalled");
    }
    return 0;
}
