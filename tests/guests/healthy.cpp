// The well-behaved neighbour of every hostile test: prints, makes hypercalls, yields a few times
// (cmdline "yields=N", default 5) and exits 0. It must finish whatever the other domain does.
// With "wait=1" it first waits for a signal, so that its yields happen while the domain that
// sends it does what the test is about (tests/boot/linux_kvm.cmake: a VMRUN storm).
#include "hostile.hpp"

using namespace nestor::guest;

extern "C" int guest_main(const nestor_guest_boot*) {
    println("healthy: started");
    if (hostile::number_option("wait", 0)) {
        println("healthy: waiting for a signal");
        u64 badge = wait_for_signal();
        println("healthy: woken, badge ", hex(badge, 4));
    }
    HypercallResult version = abi_version();
    println("healthy: abi_version status ", version.status);
    HypercallResult caps = physcaps();
    println("healthy: physcaps status ", caps.status);
    static const char kLine[] = "healthy: console_write through a hypercall\n";
    HypercallResult written = console_write(kLine, sizeof(kLine) - 1);
    println("healthy: console_write status ", written.status);
    u64 yields = hostile::number_option("yields", 5);
    u64 refused = 0;
    for (u64 i = 0; i < yields; ++i)
        if (!yield().ok()) ++refused;
    println("healthy: yielded ", yields, " times, ", refused, " refused");
    bool ok = version.ok() && caps.ok() && written.ok() && refused == 0;
    println(ok ? "healthy: done" : "healthy: something failed");
    return ok ? 0 : 1;
}
