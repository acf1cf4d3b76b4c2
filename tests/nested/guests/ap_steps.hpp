// What an L1's application processor has done, for the BSP that drives it with INITs
// (vmx_l1_init_signal.cpp, l1_init_signal.cpp): each side waits for the other's step, and the
// two sides of what both tests do.
#pragma once

#include "ap_long_mode.hpp"
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

inline const char* yes(bool b) { return b ? "yes" : "no"; }

// The AP, back in L1 with an INIT held: it runs on once the BSP says go, then runs `release`
// (VMXOFF, STGI), which lets the INIT in before the instruction after it.
[[noreturn]] inline void run_on_then(void (*release)()) {
    step = kHeld;
    while (!go) asm volatile("pause" ::: "memory");
    step = kRanOn;
    step = kReleaseNext;
    release();
    after_release = 1;
    halt_forever();
}

// The BSP starts AP 1 at `ap_main`, waits until its L2 runs (`l2_running`), sends it an INIT and
// waits for its L1 to run again. False, said why, when either does not happen.
inline bool interrupt_l2(void (*ap_main)(), u64 stack_top, const volatile u32& l2_running) {
    ap_long_mode::start(1, ap_main, stack_top);
    if (!wait_for(l2_running, 1)) {
        println("the AP's L2 did not run, step ", step);
        return false;
    }
    ap_long_mode::send_init(1);
    if (!wait_for(step, kHeld)) {
        println("the AP's L1 did not run after the INIT, step ", step);
        return false;
    }
    return true;
}

// A startup IPI that must be ignored, sent while the INIT is held (the AP is not in
// wait-for-SIPI): its vector's page counts a start in a dword at offset 0x100 and halts.
inline constexpr u64 kIgnoredStartupPage = 0x71000;
inline volatile u32& ignored_startup_count() { return *reinterpret_cast<volatile u32*>(kIgnoredStartupPage + 0x100); }
inline void send_ignored_startup() {
    static constexpr u8 kCountAndHalt[] = {0x66, 0x2E, 0xC7, 0x06, 0x00,
                                           0x01, 0x01, 0x00, 0x00, 0x00,  // mov dword cs:[0x100], 1
                                           0xFA, 0xF4, 0xEB, 0xFD};       // cli; hlt; jmp $-3
    u8* page = reinterpret_cast<u8*>(kIgnoredStartupPage);
    for (u8 byte : kCountAndHalt) *page++ = byte;
    ignored_startup_count() = 0;
    nestor::guest::apic::send_ipi(1,
                                  ap_long_mode::kIcrStartup | ap_long_mode::kIcrAssert | (kIgnoredStartupPage >> 12));
}

// The BSP sends a startup IPI while the INIT is held, says go, sees the AP run on to its release,
// and starts it again with startup IPIs once the INIT took it. Prints "HELD yes", "RELEASE let the
// INIT in: ...", whether the first startup IPI was ignored, "the startup IPI started the AP
// again: ..." and "done"; true if all went as the CPU's would.
inline bool release_and_restart(const char* held, const char* release, u64 stack_top) {
    send_ignored_startup();
    go = 1;
    const bool ran_on = wait_for(step, kReleaseNext);
    println(held, yes(ran_on));
    // Time for the AP to take the INIT (its slices come between the BSP's): a startup IPI kept
    // from while it was held would start it now, before the BSP's next.
    (void)wait_for(ignored_startup_count(), 1, 50);
    ap_long_mode::prepare(started_again, stack_top);
    for (int i = 0; i < 10 && step != kStartedAgain; ++i) {
        ap_long_mode::send_startup(1);
        (void)wait_for(step, kStartedAgain, 1000);
    }
    println(release, " let the INIT in: the instruction after it did not run: ", yes(after_release == 0));
    println("the startup IPI sent while the INIT waited was ignored: ", yes(ignored_startup_count() == 0));
    println("the startup IPI started the AP again: ", yes(step == kStartedAgain));
    println("done");
    return ran_on && after_release == 0 && ignored_startup_count() == 0 && step == kStartedAgain;
}

}  // namespace ap_steps
