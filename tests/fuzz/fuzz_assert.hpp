// The fuzzers' invariant check: a failed one prints itself and aborts, which libFuzzer reports
// as a crash with the input that caused it.
#pragma once

#include <cstdlib>

#define FUZZ_ASSERT(cond)                                                          \
    do {                                                                           \
        if (!(cond)) {                                                             \
            __builtin_printf("invariant failed: %s (line %d)\n", #cond, __LINE__); \
            std::abort();                                                          \
        }                                                                          \
    } while (0)
