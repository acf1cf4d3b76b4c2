// The built-in guests' code (builtin_guests.S) and where it goes in guest memory.
#include "nestor/virt/builtin_guest.hpp"

extern "C" const nestor::u8 nestor_builtin_guest_code[], nestor_builtin_guest_code_end[];
extern "C" const nestor::u64 nestor_smoke_guest_entry, nestor_npf_guest_entry, nestor_bench_guest_entry,
    nestor_spin_guest_entry;

namespace nestor::virt {
namespace {

constexpr u64 kGuestCodeBase = 0x1000;  // GUEST_BASE in builtin_guests.S
constexpr u64 kGuestStackTop = 0x1000;  // below the code, above the real-mode IVT
constexpr u64 kGuestMemoryBytes = 64 * 1024;

BuiltinGuest make(const char* name, u64 entry) {
    return BuiltinGuest{name,
                        nestor_builtin_guest_code,
                        static_cast<usize>(nestor_builtin_guest_code_end - nestor_builtin_guest_code),
                        kGuestCodeBase,
                        entry,
                        kGuestStackTop,
                        kGuestMemoryBytes,
                        CpuMode::real16};
}

bool same(const char* a, const char* b) { return __builtin_strcmp(a, b) == 0; }

}  // namespace

const BuiltinGuest* find_builtin_guest(const char* name) {
    // Filled on each call: the addresses are link-time symbols, and a global initialised from
    // them would need a constructor.
    static BuiltinGuest guest;
    if (same(name, "smoke"))
        guest = make("smoke", nestor_smoke_guest_entry);
    else if (same(name, "npf"))
        guest = make("npf", nestor_npf_guest_entry);
    else if (same(name, "cpuid-bench"))
        guest = make("cpuid-bench", nestor_bench_guest_entry);
    else if (same(name, "spin"))
        guest = make("spin", nestor_spin_guest_entry);
    else
        return nullptr;
    return &guest;
}

}  // namespace nestor::virt
