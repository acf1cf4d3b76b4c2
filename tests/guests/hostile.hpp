// Small helpers shared by the hostile test guests (tests/boot/hostile.cmake).
#pragma once

#include "nestor/guest.hpp"

namespace hostile {

using namespace nestor::guest;

// print() of several arguments, without the newline println() adds.
template <typename... Args> void print_all(const Args&... args) { (print(args), ...); }

// A number from the command line ("key=0x1f" or "key=31"), or `fallback`.
inline u64 number_option(const char* key, u64 fallback) {
    char text[32];
    const char* v = boot_info().cmdline_value(key, text, sizeof(text));
    if (!v || !*v) return fallback;
    u64 value = 0;
    u64 base = 10;
    if (v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) {
        base = 16;
        v += 2;
    }
    for (; *v; ++v) {
        u64 digit;
        if (*v >= '0' && *v <= '9')
            digit = static_cast<u64>(*v - '0');
        else if (base == 16 && *v >= 'a' && *v <= 'f')
            digit = static_cast<u64>(*v - 'a') + 10;
        else if (base == 16 && *v >= 'A' && *v <= 'F')
            digit = static_cast<u64>(*v - 'A') + 10;
        else
            return fallback;
        value = value * base + digit;
    }
    return value;
}

// The outcome of a probe in one word: "#UD", "#GP(0x0)", "no exception".
inline void print_outcome(const ExceptionRecord& r) {
    if (!r.raised) {
        print("no exception");
        return;
    }
    switch (r.vector) {
    case kVectorUD: print("#UD"); return;
    case kVectorGP: print("#GP("), print(hex(r.error_code)), print(")"); return;
    case kVectorPF: print("#PF("), print(hex(r.error_code)), print(") cr2 "), print(hex(r.cr2)); return;
    default: print("vector "), print(r.vector), print(" error code "), print(hex(r.error_code)); return;
    }
}

// NESTOR_E_* by name, as errors.h spells them.
inline const char* status_name(u64 status) {
    switch (status) {
    case NESTOR_E_OK: return "NESTOR_E_OK";
    case NESTOR_E_INVALID_HYPERCALL: return "NESTOR_E_INVALID_HYPERCALL";
    case NESTOR_E_INVALID_ARGUMENT: return "NESTOR_E_INVALID_ARGUMENT";
    case NESTOR_E_LOOKUP_FAILED: return "NESTOR_E_LOOKUP_FAILED";
    case NESTOR_E_GUARD_MISMATCH: return "NESTOR_E_GUARD_MISMATCH";
    case NESTOR_E_SLOT_EMPTY: return "NESTOR_E_SLOT_EMPTY";
    case NESTOR_E_SLOT_OCCUPIED: return "NESTOR_E_SLOT_OCCUPIED";
    case NESTOR_E_WRONG_TYPE: return "NESTOR_E_WRONG_TYPE";
    case NESTOR_E_INSUFFICIENT_RIGHTS: return "NESTOR_E_INSUFFICIENT_RIGHTS";
    case NESTOR_E_RIGHTS_ESCALATION: return "NESTOR_E_RIGHTS_ESCALATION";
    case NESTOR_E_INVALID_RIGHTS: return "NESTOR_E_INVALID_RIGHTS";
    case NESTOR_E_BADGE_ALREADY_SET: return "NESTOR_E_BADGE_ALREADY_SET";
    case NESTOR_E_BADGE_NOT_SUPPORTED: return "NESTOR_E_BADGE_NOT_SUPPORTED";
    case NESTOR_E_INDEX_OUT_OF_RANGE: return "NESTOR_E_INDEX_OUT_OF_RANGE";
    case NESTOR_E_SAME_SLOT: return "NESTOR_E_SAME_SLOT";
    case NESTOR_E_INVALID_TYPE: return "NESTOR_E_INVALID_TYPE";
    case NESTOR_E_INVALID_SIZE: return "NESTOR_E_INVALID_SIZE";
    case NESTOR_E_INVALID_GUARD: return "NESTOR_E_INVALID_GUARD";
    case NESTOR_E_UNTYPED_EXHAUSTED: return "NESTOR_E_UNTYPED_EXHAUSTED";
    case NESTOR_E_PORT_RANGE: return "NESTOR_E_PORT_RANGE";
    case NESTOR_E_CNODE_CYCLE: return "NESTOR_E_CNODE_CYCLE";
    default: return "another status";
    }
}

}  // namespace hostile
