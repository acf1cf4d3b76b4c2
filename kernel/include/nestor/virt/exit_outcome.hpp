// What handling an exit decided for the vCPU: carry on, inject an exception, or stop the guest.
// The exit handler returns it, and so does every device model an exit reaches (device_bus.hpp).
#pragma once

#include "nestor/lib/types.hpp"

namespace nestor::virt {

enum class StopReason : u8 {
    none,
    exit_port,          // OUT to the guest's exit port; status = the value written
    halted,             // HLT
    triple_fault,       // shutdown
    bad_memory_access,  // nested page fault
    invalid_state,      // the hardware refused the guest state
    undecodable,        // an exit that needs the instruction length, which is unknown
    unsupported,        // an exit the kernel cannot emulate yet (string I/O, ...)
    unknown_exit,
    shutdown,       // the shutdown hypercall, or the domain was destroyed
    watchdog,       // ran too many time slices without an exit (set by the run loop)
    waits_forever,  // waits for a signal, and no running domain could send one (set by the run loop)
    reset,          // the guest reset its machine (keyboard controller, port 0xCF9, the ACPI reset register)
};

const char* stop_reason_name(StopReason reason);

// The status a domain ends with when it resets its machine (StopReason::reset): not 0, so that a
// reboot is never mistaken for a clean power-off, and not the failure status 1.
inline constexpr u32 kResetStatus = 0x52;

// The flags first and no padding anywhere (the flags fill their word): "carry on" ({}) is three
// 8-byte stores, and every exit returns one.
struct ExitOutcome {
    bool stop = false;
    StopReason reason = StopReason::none;
    bool inject = false;
    u8 vector = 0;
    bool has_error_code = false;
    bool yield = false;  // the guest gave up the rest of its time slice
    bool wait = false;   // the guest halted with interrupts enabled: it waits for an event
    u8 reserved = 0;     // fills the flags' word, so that it is stored whole
    u32 status = 0;      // the guest's exit status (stop only; non-zero for every abnormal stop)
    u32 error_code = 0;
    const char* detail = nullptr;  // stop: a sentence saying why, for the log (e.g. from the nested component)
};
static_assert(sizeof(ExitOutcome) == 24 && __builtin_offsetof(ExitOutcome, status) == 8);

}  // namespace nestor::virt
