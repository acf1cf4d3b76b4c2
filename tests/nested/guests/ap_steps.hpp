// What an L1's application processor has done, for the BSP that drives it with INITs
// (vmx_l1_init_signal.cpp, l1_init_signal.cpp): each side waits for the other's step.
#pragma once

#include "nestor/guest.hpp"

namespace ap_steps {

using namespace nestor;
using namespace nestor::guest;

enum Step : u32 {
    kNone,
    kFailed,        // the AP could not set up its L1 side
    kHeld,          // back in L1 after the first INIT, which is still held or was taken by the exit
    kRanOn,         // the AP ran on after the BSP's "go": the INIT did not reset it
    kReleaseNext,   // the next instruction (VMXOFF, STGI) lets the INIT in
    kStartedAgain,  // the startup IPI after it started the AP again
};

inline volatile u32 step = kNone;
inline volatile u32 go = 0;             // the BSP's word to the AP, after an INIT it sent
inline volatile u32 after_release = 0;  // set by the instruction after the release: must stay 0
inline u64 tsc_khz = 0;

// Spins until `value` is at least `target`, for at most `ms` milliseconds of TSC.
inline bool wait_for(const volatile u32& value, u32 target, u64 ms = 30000) {
    const u64 start = rdtsc();
    while (value < target)
        if (rdtsc() - start > ms * tsc_khz) return false;
    return true;
}

[[noreturn]] inline void halt_forever() {
    for (;;) asm volatile("cli; hlt" ::: "memory");
}

inline void started_again() {
    step = kStartedAgain;
    halt_forever();
}

}  // namespace ap_steps
