// Hypercall dispatch: the kernel side of the ABI in sdk/include/nestor/abi. The VMMCALL/VMCALL
// exit path copies the guest registers into HypercallArgs, calls dispatch() for the calling
// domain, and copies HypercallResult back. Decoding (every argument validated against the
// caller's CSpace) is separate from invoking (acting), so a refused call changes nothing.
#pragma once

#include "nestor/abi/hypercall.h"
#include "nestor/abi/version.h"
#include "nestor/cap/capability.hpp"
#include "nestor/cap/domain_config.hpp"
#include "nestor/cap/error.hpp"

namespace nestor::cap {

class Domain;

struct HypercallArgs {
    u64 number = 0;
    u64 arg[NESTOR_HYPERCALL_ARGS] = {};
};

struct HypercallResult {
    u64 status = NESTOR_E_OK;
    u64 value[NESTOR_HYPERCALL_VALUES] = {};
};

enum class Disposition : u8 {
    done,              // out holds the result
    platform,          // a platform hypercall (console, yield, shutdown): the exit path serves it
    caller_destroyed,  // done, but the call destroyed the calling domain: do not resume it
};

// A decoded hypercall: every operand resolved and checked.
struct Invocation {
    u64 number = 0;
    Domain* caller = nullptr;
    Slot* target = nullptr;  // the invoked object's capability, or the operated-on slot
    Slot* source = nullptr;
    Slot* dest = nullptr;
    Slot* other = nullptr;  // a second object operand (memory for map, notification for bind)
    ObjectType type = ObjectType::null;
    u32 size_bits = 0;
    u32 rights = 0;
    u64 badge = 0;
    u64 value[3] = {};
    DomainConfig config;
};

// The calls that name no object and take no argument (ABI_VERSION, PHYSCAPS): answered from the
// ABI and the caller's System alone, with no Invocation decoded. dispatch() answers them through
// query_result(); an exit path may too, before it has built HypercallArgs (no other call may be
// answered so).
inline bool is_query(u64 number) { return number == NESTOR_HC_ABI_VERSION || number == NESTOR_HC_PHYSCAPS; }
// PHYSCAPS' answer: the caller's System's platform capabilities, fixed when the System was made
// (an exit path may keep it per domain).
u64 physcaps_answer(const Domain& caller);
// The complete result of query `number` (is_query()) whose six arguments OR together to
// `any_argument` (every argument must be zero, as decode() requires of every unused one), for a
// caller whose physcaps_answer() is `physcaps`.
inline HypercallResult query_result(u64 number, u64 any_argument, u64 physcaps) {
    HypercallResult out;
    if (any_argument != 0)
        out.status = static_cast<u64>(Error::invalid_argument);
    else
        out.value[0] = number == NESTOR_HC_PHYSCAPS ? physcaps : u64{NESTOR_ABI_VERSION};
    return out;
}

CapResult<Invocation> decode(Domain& caller, const HypercallArgs& in);
// Acts on a decoded invocation; objects that lost their last capability are left on reaper.
void invoke(const Invocation& invocation, HypercallResult& out, Reaper& reaper);
Disposition dispatch(Domain& caller, const HypercallArgs& in, HypercallResult& out);

}  // namespace nestor::cap
