// From the entry stub to guest_main and back out through the exit port.
#include "runtime.hpp"

using namespace nestor::guest;

namespace {

constexpr u16 kExitPort = 0xF4;

}  // namespace

extern "C" [[noreturn]] void nestor_guest_start(u32 magic, u32 info_address) {
    detail::console_init();
    detail::exceptions_init();
    detail::hypercall_init();
    detail::boot_info_parse(magic, info_address);
    int status = guest_main(&boot_info());
    exit(static_cast<u8>(status));
}

namespace nestor::guest {

void exit(u8 status) {
    outb(kExitPort, status);
    // Nothing behind the exit port: stop here for good.
    for (;;) asm volatile("cli; hlt");
}

}  // namespace nestor::guest

// The compiler may emit calls to these for copies and fills.
extern "C" {

void* memcpy(void* dst, const void* src, unsigned long n) {
    auto* d = static_cast<u8*>(dst);
    auto* s = static_cast<const u8*>(src);
    for (unsigned long i = 0; i < n; ++i) d[i] = s[i];
    return dst;
}

void* memmove(void* dst, const void* src, unsigned long n) {
    auto* d = static_cast<u8*>(dst);
    auto* s = static_cast<const u8*>(src);
    if (d < s) {
        for (unsigned long i = 0; i < n; ++i) d[i] = s[i];
    } else {
        for (unsigned long i = n; i > 0; --i) d[i - 1] = s[i - 1];
    }
    return dst;
}

void* memset(void* dst, int value, unsigned long n) {
    auto* d = static_cast<u8*>(dst);
    for (unsigned long i = 0; i < n; ++i) d[i] = static_cast<u8>(value);
    return dst;
}

int memcmp(const void* a, const void* b, unsigned long n) {
    auto* x = static_cast<const u8*>(a);
    auto* y = static_cast<const u8*>(b);
    for (unsigned long i = 0; i < n; ++i) {
        if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
    }
    return 0;
}

// A pure virtual call is a bug in the guest: end it loudly.
void __cxa_pure_virtual() {
    print("guest: pure virtual call\n");
    exit(kUnexpectedExceptionStatus);
}

}  // extern "C"
