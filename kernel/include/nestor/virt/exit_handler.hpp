// The vendor-neutral exit handler: from a decoded VmExit and the guest's registers, decide
// what happens (complete the instruction, inject an exception, stop the guest). It has no
// hardware access and is tested on the host; the kernel's run loop applies the outcome.
#pragma once

#include "nestor/virt/exit.hpp"
#include "nestor/virt/vcpu_state.hpp"
#include "nestor/virt/virt_ops.hpp"

namespace nestor::virt {

// The guest's own exit port (like QEMU's isa-debug-exit): OUT writes the guest's exit status.
inline constexpr u16 kGuestExitPort = 0xF4;
// The guest console: a 16550 at COM1; THR writes are printed line by line.
inline constexpr u16 kGuestConsolePort = 0x3F8;
inline constexpr u16 kGuestConsoleLsr = 0x3FD;
inline constexpr u8 kConsoleLsrIdle = 0x60;  // THR empty and transmitter idle

// MSRs a guest may touch without a #GP: reads return 0, writes are ignored.
inline constexpr u32 kMsrBiosSignId = 0x8B;  // microcode revision, read by every OS

enum class StopReason : u8 {
    none,
    exit_port,            // OUT to kGuestExitPort; status = the value written
    halted,               // HLT
    triple_fault,         // shutdown
    bad_memory_access,    // nested page fault
    invalid_state,        // the hardware refused the guest state
    undecodable,          // an exit that needs the instruction length, which is unknown
    unsupported,          // an exit the kernel cannot emulate yet (string I/O, ...)
    unknown_exit,
    exit_limit,           // too many exits (set by the run loop)
};

const char* stop_reason_name(StopReason reason);

// Line-buffered guest console output.
struct GuestConsole {
    static constexpr usize kLineCapacity = 120;
    char line[kLineCapacity + 1];
    usize length;
};

struct ExitOutcome {
    bool stop = false;
    StopReason reason = StopReason::none;
    u32 status = 0;  // the guest's exit status (stop only; non-zero for every abnormal stop)
    bool inject = false;
    u8 vector = 0;
    bool has_error_code = false;
    u32 error_code = 0;
    bool yield = false;  // the guest gave up the rest of its time slice
};

// What the handler needs from the world outside the guest (the kernel or a test double).
class ExitEnvironment {
public:
    virtual CpuidValues host_cpuid(u32 leaf, u32 subleaf) = 0;
    // One complete guest console line, without the newline.
    virtual void console_line(const char* text, usize length) = 0;
    // A hypercall whose instruction is already completed: the registers carry the call (see
    // sdk/include/nestor/abi/hypercall.h) and receive its result.
    virtual ExitOutcome hypercall(VcpuState& state, GuestConsole& console) = 0;

protected:
    ~ExitEnvironment() = default;
};

inline constexpr u8 kVectorUd = 6;
inline constexpr u8 kVectorGp = 13;

// Handles one exit. Completing an instruction advances state.rip by its length; an injected
// fault leaves RIP on the faulting instruction.
ExitOutcome handle_exit(const VmExit& exit, VcpuState& state, GuestConsole& console, ExitEnvironment& env);

// Flushes a partial console line (when the guest stops).
void flush_console(GuestConsole& console, ExitEnvironment& env);
// Adds one byte to the console line, flushing it at a newline or when full.
void console_put(GuestConsole& console, ExitEnvironment& env, u8 byte);

}  // namespace nestor::virt
