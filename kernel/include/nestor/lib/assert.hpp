// Kernel assertions. A failed ASSERT is a kernel bug: it panics with file:line in debug builds.
// ASSERT_UNREACHABLE marks code that must never run (e.g. nested-virtualization stubs whose
// callers are refused earlier); reaching it panics in debug builds too.
#pragma once

namespace nestor {
[[noreturn]] void panic_at(const char* file, int line, const char* what);
}

#if defined(NESTOR_DEBUG)
#define ASSERT(cond)                                                            \
    do {                                                                        \
        if (!(cond)) [[unlikely]]                                               \
            ::nestor::panic_at(__FILE__, __LINE__, "assertion failed: " #cond); \
    } while (0)
#else
#define ASSERT(cond)        \
    do {                    \
        (void)sizeof(cond); \
    } while (0)
#endif

// Unreachable code panics in every build: continuing past it would be undefined behaviour.
#define ASSERT_UNREACHABLE() ::nestor::panic_at(__FILE__, __LINE__, "unreachable code reached")
#define PANIC(msg) ::nestor::panic_at(__FILE__, __LINE__, msg)
