// Built-in guests: tiny programs carried in the kernel image, run with the kernel command line
// option nestor.builtin-guest=NAME to prove the virtualization path end to end.
#pragma once

#include "nestor/virt/vcpu_state.hpp"

namespace nestor::virt {

struct BuiltinGuest {
    const char* name;
    const u8* code;
    usize code_size;
    u64 code_gpa;      // where the code is copied in guest-physical memory
    u64 entry;         // initial RIP (CS base 0)
    u64 stack_top;     // initial RSP
    u64 memory_bytes;  // guest RAM from guest-physical 0
    CpuMode mode;
};

// Provided by the platform: the built-in guest called `name`, or nullptr.
const BuiltinGuest* find_builtin_guest(const char* name);

// Runs the built-in guest `name` to completion on this CPU with the backend for this CPU and
// returns its exit status: what it wrote to its exit port, 0 if it halted, non-zero if it was
// stopped for cause or could not be started. Each entry lasts at most `time_slice` timestamp
// ticks (0 = until the guest exits); a guest preempted kMaxPreemptions times in a row without
// any exit of its own is stopped, so a guest spinning with interrupts off cannot keep the CPU.
// A BUILTIN_GUESTS=OFF image has no built-in guest: its run_builtin_guest (runner_absent.cpp)
// reports that and fails.
inline constexpr u64 kDefaultTimeSlice = 5'000'000;
inline constexpr u64 kMaxPreemptions = 200;
u32 run_builtin_guest(const char* name, u64 time_slice);

}  // namespace nestor::virt
