// The smallest useful guest: a greeting, the command line and a memory map summary.
#include "nestor/guest.hpp"

using namespace nestor::guest;

extern "C" int guest_main(const nestor_guest_boot* boot) {
    println("hello from a Nestor guest");
    println("cmdline: \"", boot->cmdline, "\"");
    println("memory: ", boot->memory_range_count, " ranges, ", boot->usable_bytes() >> 10, " KiB usable");
    return 0;
}
