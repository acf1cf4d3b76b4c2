// Runtime internals shared by the runtime's own files; not part of the guest API.
#pragma once

#include "nestor/guest.hpp"

namespace nestor::guest::detail {

// The stack layout exceptions.S builds: saved registers, then the vector and error code, then what
// the CPU pushed.
struct ExceptionFrame {
    u64 rax, rbx, rcx, rdx, rsi, rdi, rbp, r8, r9, r10, r11, r12, r13, r14, r15;
    u64 vector, error_code;
    u64 rip, cs, rflags, rsp, ss;
};
static_assert(sizeof(ExceptionFrame) == 22 * 8);

// What nestor_guest_probe_arm saves (offsets fixed by exceptions.S), plus the probe's bookkeeping.
struct ProbeContext {
    u64 rbx, rbp, r12, r13, r14, r15, rsp, rip;
    ProbeContext* previous;
    ExceptionRecord record;
};

void console_init();
void exceptions_init();
void hypercall_init();
void boot_info_parse(u32 magic, u64 info_address);

}  // namespace nestor::guest::detail
