// Exits as often as it can and never gives the CPU back on its own: CPUID in a loop, `cpuids`
// times (cmdline "cpuids=N", default 200000), then exits 0. Each CPUID exits to the hypervisor,
// which answers and enters it again at once: only a time slice counted across those runs lets the
// other domains run before the loop ends.
#include "hostile.hpp"

using namespace nestor::guest;

extern "C" int guest_main(const nestor_guest_boot*) {
    u64 cpuids = hostile::number_option("cpuids", 200000);
    println("cpuidloop: ", cpuids, " CPUIDs in a loop");
    for (u64 i = 0; i < cpuids; ++i) cpuid(0);
    println("cpuidloop: done");
    return 0;
}
