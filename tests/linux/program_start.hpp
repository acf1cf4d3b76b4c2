// What each static program of tests/linux/ needs without a libc, once: memset and memcpy, which
// the compiler may call for structure copies and zeroing, and the entry point, which calls the
// program's program_main(argc, argv) and exits with what it returns. One program includes it once.
#pragma once

#include "linux_syscalls.hpp"

int program_main(int argc, char** argv);

extern "C" void* memset(void* destination, int byte, kvm_client::usize count) {
    void* start = destination;
    asm volatile("rep stosb" : "+D"(destination), "+c"(count) : "a"(byte) : "memory");
    return start;
}
extern "C" void* memcpy(void* destination, const void* source, kvm_client::usize count) {
    void* start = destination;
    asm volatile("rep movsb" : "+D"(destination), "+S"(source), "+c"(count) : : "memory");
    return start;
}

// `stack` is where the kernel left argc, then argv.
extern "C" [[noreturn]] void program_start(long* stack) {
    kvm_client::sys_exit_group(program_main(static_cast<int>(stack[0]), reinterpret_cast<char**>(stack + 1)));
}

// The entry point: the kernel starts it with RSP 16-byte aligned, at argc, and no return address.
asm(".globl _start\n"
    "_start:\n"
    "  xor %ebp, %ebp\n"
    "  mov %rsp, %rdi\n"
    "  and $-16, %rsp\n"
    "  call program_start\n"
    "  ud2\n");
