// A VM's hypercalls: the queries answered straight from the registers, every other call through
// the capability dispatch, and the calls the platform serves itself (CONSOLE_WRITE, YIELD,
// SHUTDOWN). A built-in guest has no domain and no capabilities: only the null call (0) exists.
#include "nestor/abi/abi.h"
#include "nestor/cap/hypercall.hpp"
#include "nestor/virt/vm_environment.hpp"

namespace nestor::virt {
namespace {

constexpr u32 kFailureStatus = 1;
constexpr u64 kConsoleWriteMax = 4096;

// The registers that carry a call's results (sdk/include/nestor/abi/hypercall.h).
void write_results(VcpuState& state, const cap::HypercallResult& out) {
    state.rax() = out.status;
    state.reg(Gpr::rdi) = out.value[0];
    state.reg(Gpr::rsi) = out.value[1];
    state.reg(Gpr::rdx) = out.value[2];
}

}  // namespace

ExitOutcome VmEnvironment::hypercall(VcpuState& state) {
    // A query (no object, no argument) is answered straight from the registers: no HypercallArgs
    // to build, no dispatch to call. The same answer as dispatch() gives (cap::query_result()).
    if (u64 number = state.rax(); cap::is_query(number) && vm_.domain) {
        u64 any_argument = state.reg(Gpr::rdi) | state.reg(Gpr::rsi) | state.reg(Gpr::rdx) | state.reg(Gpr::r10) |
                           state.reg(Gpr::r8) | state.reg(Gpr::r9);
        write_results(state, cap::query_result(number, any_argument, vm_.physcaps));
        return {};
    }
    return dispatch_hypercall(state);
}

// Every other call, through the capability dispatch. Out of line, so that the queries' path above
// saves no registers and builds no frame.
[[gnu::noinline]] ExitOutcome VmEnvironment::dispatch_hypercall(VcpuState& state) {
    if (!vm_.domain) [[unlikely]] {
        state.rax() = state.rax() == 0 ? NESTOR_E_OK : NESTOR_E_INVALID_HYPERCALL;
        return {};
    }
    cap::HypercallArgs in{state.rax(),
                          {state.reg(Gpr::rdi), state.reg(Gpr::rsi), state.reg(Gpr::rdx), state.reg(Gpr::r10),
                           state.reg(Gpr::r8), state.reg(Gpr::r9)}};
    cap::HypercallResult out;
    cap::Disposition disposition = cap::dispatch(*vm_.domain, in, out);
    if (disposition == cap::Disposition::caller_destroyed) [[unlikely]]
        return ExitOutcome{.stop = true, .reason = StopReason::shutdown, .status = kFailureStatus};
    ExitOutcome outcome = disposition == cap::Disposition::platform ? platform_call(in, out) : ExitOutcome{};
    write_results(state, out);
    return outcome;
}

ExitOutcome VmEnvironment::platform_call(const cap::HypercallArgs& in, cap::HypercallResult& out) {
    switch (in.number) {
    case NESTOR_HC_CONSOLE_WRITE: out.status = console_write(in.arg[0], in.arg[1]); return {};
    case NESTOR_HC_YIELD: return ExitOutcome{.yield = true};
    case NESTOR_HC_SHUTDOWN:
        vm_.devices.bus.flush(*this);
        return ExitOutcome{.stop = true, .reason = StopReason::shutdown, .status = static_cast<u32>(in.arg[0] & 0xFF)};
    default: break;
    }
    out.status = NESTOR_E_INVALID_HYPERCALL;
    return {};
}

// The text must lie entirely in guest RAM the domain may read; nothing is printed otherwise.
u64 VmEnvironment::console_write(u64 gpa, u64 length) {
    if (length > kConsoleWriteMax) return NESTOR_E_INVALID_ARGUMENT;
    bool readable = vm_.memory.each_piece(gpa, static_cast<usize>(length), NESTOR_RIGHT_MEMORY_READ, [&](GuestPiece p) {
        for (usize i = 0; i < p.bytes; ++i) vm_.devices.console.put(p.host[i], *this);
    });
    return readable ? NESTOR_E_OK : NESTOR_E_INVALID_ARGUMENT;
}

}  // namespace nestor::virt
