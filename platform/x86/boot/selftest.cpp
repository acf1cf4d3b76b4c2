#include "nestor/x86/selftest.hpp"

#include "nestor/lib/assert.hpp"
#include "nestor/lib/cmdline.hpp"
#include "nestor/log.hpp"
#include "nestor/platform.hpp"

namespace nestor::x86 {
namespace {

// Canonical but never mapped: the kernel maps nothing in the lower half above the first GiB.
constexpr uptr kUnmappedAddress = 0x0000700000000000;
// Bit 63 set without the upper bits: not canonical, so the access raises #GP.
constexpr uptr kNonCanonicalAddress = 0x8000000000000000;

u64 read_at(uptr address) { return *reinterpret_cast<volatile u64*>(address); }

// A "ret" in writable data: executing it must fault once data pages are non-executable.
u8 data_code[16] = {0xC3};

void write_kernel_text() { *reinterpret_cast<volatile u8*>(reinterpret_cast<uptr>(&run_selftest)) = 0xCC; }
void execute_kernel_data() { reinterpret_cast<void (*)()>(reinterpret_cast<uptr>(data_code))(); }

}  // namespace

void run_selftest(const char* cmdline) {
    char name[16];
    if (!cmdline_option(cmdline, "nestor.selftest", name, sizeof(name))) return;
    log::info("selftest: {}", name);
    if (__builtin_strcmp(name, "pf") == 0) {
        read_at(kUnmappedAddress);
    } else if (__builtin_strcmp(name, "gp") == 0) {
        read_at(kNonCanonicalAddress);
    } else if (__builtin_strcmp(name, "ud") == 0) {
        asm volatile("ud2");
    } else if (__builtin_strcmp(name, "write-text") == 0) {
        write_kernel_text();
    } else if (__builtin_strcmp(name, "exec-data") == 0) {
        execute_kernel_data();
    } else if (__builtin_strcmp(name, "panic") == 0) {
        PANIC("selftest panic");
    } else if (__builtin_strcmp(name, "assert") == 0) {
        volatile bool never = false;
        ASSERT(never);
        log::info("selftest: ASSERT is compiled out in this build");
    } else {
        log::error("selftest: unknown self-test '{}' (pf, gp, ud, write-text, exec-data, panic, assert)", name);
    }
    platform::shutdown(ExitStatus::failure);
}

}  // namespace nestor::x86
