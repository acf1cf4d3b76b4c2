// The frame exceptions.S builds on the stack, in push order reversed.
#pragma once

#include "nestor/lib/types.hpp"

namespace nestor::x86 {

struct ExceptionFrame {
    u64 r15, r14, r13, r12, r11, r10, r9, r8;
    u64 rbp, rdi, rsi, rdx, rcx, rbx, rax;
    u64 vector, error_code;
    u64 rip, cs, rflags, rsp, ss;  // pushed by the CPU
};

}  // namespace nestor::x86
