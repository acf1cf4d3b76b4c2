// Exit round trips, timed by the guest with rdtsc around many iterations. Under QEMU -icount a
// TSC tick is one instruction, so the figures count the hypervisor's instructions (plus the few
// of the guest's loop). Prints "bench NAME TICKS" lines for bench/run-benchmarks.
#include "nestor/guest.hpp"

using namespace nestor::guest;

namespace {

constexpr u64 kIterations = 1000;

template <typename F> u64 ticks_per_iteration(F body) {
    body();  // the first round trip warms what the hypervisor caches
    u64 start = rdtsc();
    for (u64 i = 0; i < kIterations; ++i) body();
    return (rdtsc() - start) / kIterations;
}

// bench/profile-exits traces Nestor through one row at a time: "profile-ROW" on the command line
// runs that row's 1001 round trips alone (the warm-up included), "profile-none" none of them, so
// the difference between the two traces is the round trips. ROW is cpuid, hypercall or console.
// True if the command line asked for a profile.
bool profile_row(const nestor_guest_boot& boot) {
    if (boot.cmdline_has("profile-cpuid"))
        (void)ticks_per_iteration([] { cpuid(0); });
    else if (boot.cmdline_has("profile-hypercall"))
        (void)ticks_per_iteration([] { abi_version(); });
    else if (boot.cmdline_has("profile-console"))
        (void)ticks_per_iteration([] { outb(0x3F8, '\r'); });
    else if (!boot.cmdline_has("profile-none"))
        return false;
    return true;
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot* boot) {
    if (profile_row(*boot)) return 0;
    u64 cpuid_ticks = ticks_per_iteration([] { cpuid(0); });
    // The cheapest real hypercall: decoded and answered by the capability dispatch.
    u64 hypercall_ticks = ticks_per_iteration([] { abi_version(); });
    // A byte to the emulated console that prints nothing (a carriage return): the I/O exit alone.
    u64 console_ticks = ticks_per_iteration([] { outb(0x3F8, '\r'); });
    println("bench cpuid_roundtrip ", cpuid_ticks);
    println("bench hypercall_roundtrip ", hypercall_ticks);
    println("bench console_io_roundtrip ", console_ticks);
    return 0;
}
