// Exception entry for vectors 0..31, interrupt entry for 32..255, and the register snapshot
// behind probe().
// Every stub makes the stack look the same (an error code, real or 0, and the vector), saves the
// general registers as an ExceptionFrame (exceptions.hpp) and calls nestor_guest_exception, which
// may rewrite the frame to resume somewhere else.

    .text
    .code64

// Vectors for which the CPU pushes an error code.
.macro STUB vector
    .balign 16
stub_\vector:
    .if (\vector == 8) || (\vector >= 10 && \vector <= 14) || (\vector == 17) || (\vector == 21) || (\vector == 29) || (\vector == 30)
    .else
    push $0
    .endif
    push $\vector
    jmp exception_common
.endm

.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    STUB \v
.endr

// Interrupts: one 16-byte stub a vector from 32 on (the IDT gate of vector v points at
// nestor_guest_interrupt_stubs + 16 * (v - 32)), shaped like an exception without error code.
    .balign 16
    .global nestor_guest_interrupt_stubs
nestor_guest_interrupt_stubs:
    .set vector, 32
    .rept 224
    .balign 16
    push $0
    push $vector
    jmp exception_common
    .set vector, vector + 1
    .endr

exception_common:
    push %r15
    push %r14
    push %r13
    push %r12
    push %r11
    push %r10
    push %r9
    push %r8
    push %rbp
    push %rdi
    push %rsi
    push %rdx
    push %rcx
    push %rbx
    push %rax
    cld
    mov %rsp, %rdi                      // 22 quadwords above a 16-byte aligned RSP: still aligned
    call nestor_guest_exception
    pop %rax
    pop %rbx
    pop %rcx
    pop %rdx
    pop %rsi
    pop %rdi
    pop %rbp
    pop %r8
    pop %r9
    pop %r10
    pop %r11
    pop %r12
    pop %r13
    pop %r14
    pop %r15
    add $16, %rsp                       // vector and error code
    iretq

// u64 nestor_guest_probe_arm(ProbeContext*): saves what a function call must preserve and returns
// 0. When an exception hits while the probe is armed, the handler restores these into the frame
// and resumes at the return address with RAX = 1, so the call appears to return a second time.
    .global nestor_guest_probe_arm
nestor_guest_probe_arm:
    mov %rbx, 0(%rdi)
    mov %rbp, 8(%rdi)
    mov %r12, 16(%rdi)
    mov %r13, 24(%rdi)
    mov %r14, 32(%rdi)
    mov %r15, 40(%rdi)
    lea 8(%rsp), %rax                   // RSP as the caller sees it after the return
    mov %rax, 48(%rdi)
    mov (%rsp), %rax
    mov %rax, 56(%rdi)
    xor %eax, %eax
    ret

    .section .rodata
    .balign 8
    .global nestor_guest_exception_stubs
nestor_guest_exception_stubs:
.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad stub_\v
.endr
