// Entry stubs for the interrupts the kernel enables: the local APIC timer and its spurious vector.
// The kernel opens interrupts only for a moment after a guest exit, to let a pending timer
// interrupt through; the stub saves what the C ABI lets the handler clobber.
    .text
    .code64
    .global x86_timer_interrupt_stub
x86_timer_interrupt_stub:
    push %rax
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %r8
    push %r9
    push %r10
    push %r11
    cld
    call x86_timer_interrupt
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rax
    iretq

    // A spurious interrupt needs no end-of-interrupt.
    .global x86_spurious_interrupt_stub
x86_spurious_interrupt_stub:
    iretq
