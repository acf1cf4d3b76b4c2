// Touches a guest-physical address outside its memory (the SDK identity-maps 4 GiB, so the access
// reaches the nested page tables): cmdline "access=read|write|exec address=0x...". Nestor must
// stop the domain with a bad-memory-access report; nothing after the access may run.
#include "hostile.hpp"

using namespace nestor::guest;

extern "C" int guest_main(const nestor_guest_boot* boot) {
    u64 address = hostile::number_option("address", 0x40000000);
    char access[16];
    const char* what = boot->cmdline_value("access", access, sizeof(access));
    if (!what) what = "read";
    println("wild: ", what, " of guest-physical ", hex(address));
    // The wild access is this guest's purpose, at whatever address it is told (0 included).
    // NOLINTBEGIN(clang-analyzer-core.NullDereference,clang-analyzer-core.CallAndMessage)
    if (string_equal(what, "write")) {
        *reinterpret_cast<volatile u64*>(address) = 0x5a5a5a5a5a5a5a5a;
        println("wild: the write went through");
    } else if (string_equal(what, "exec")) {
        reinterpret_cast<void (*)()>(address)();
        println("wild: the call returned");
    } else {
        u64 value = *reinterpret_cast<volatile u64*>(address);
        println("wild: read ", hex(value));
    }
    // NOLINTEND(clang-analyzer-core.NullDereference,clang-analyzer-core.CallAndMessage)
    println("wild: still running: the access was not stopped");
    return 1;
}
