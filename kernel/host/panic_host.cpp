// Host-build panic: report and abort, so a failed kernel ASSERT fails the unit test loudly.
#include <cstdio>
#include <cstdlib>

#include "nestor/lib/assert.hpp"

namespace nestor {
[[noreturn]] void panic_at(const char* file, int line, const char* what) {
    std::fprintf(stderr, "PANIC at %s:%d: %s\n", file, line, what);
    std::abort();
}
}  // namespace nestor
