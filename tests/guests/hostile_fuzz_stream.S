// Running one random instruction stream of hostile_fuzz.cpp and getting back from it, however it
// ends: through the jump at its end to fuzz_stream_done, or through any of the 256 IDT vectors
// (an exception, a software interrupt, an injected interrupt), whose gates all run on the TSS's
// IST1 stack, so that delivery works whatever the stream did to RSP.
//
// Either way the guest's critical state is put back from the copies in FuzzSaved, at the start of
// fuzz_critical (a read-only page while streams run): GDTR, IDTR, CR4, CR3, CR0, EFER, XCR0, the
// segments, LDTR, DR7 and CR8; then the driver's stack and callee-saved registers, and
// fuzz_run_stream returns how the stream ended.

    .text
    .code64

// FuzzSaved (hostile_fuzz.cpp): offsets of its fields.
#define SAVED_GDTR 0
#define SAVED_IDTR 16
#define SAVED_CR0 32
#define SAVED_CR3 40
#define SAVED_CR4 48
#define SAVED_EFER 56
#define SAVED_XCR0 64
#define SAVED_HAS_XCR0 72

// FuzzRegisters (hostile_fuzz.cpp): a stream's starting registers.
#define REG_RAX 0
#define REG_RBX 8
#define REG_RCX 16
#define REG_RDX 24
#define REG_RSI 32
#define REG_RDI 40
#define REG_RBP 48
#define REG_RSP 56
#define REG_R8 64
#define REG_R9 72
#define REG_R10 80
#define REG_R11 88
#define REG_R12 96
#define REG_R13 104
#define REG_R14 112
#define REG_R15 120
#define REG_RFLAGS 128

#define KERNEL_CODE 0x08
#define KERNEL_DATA 0x10
#define MSR_EFER 0xC0000080
#define STREAM_COMPLETED 0x100

// u64 fuzz_run_stream(const FuzzRegisters* regs (rdi), u64 entry (rsi)): runs the stream at
// `entry` with `regs`; returns STREAM_COMPLETED, or the vector that ended it.
    .global fuzz_run_stream
fuzz_run_stream:
    push %rbx
    push %rbp
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, fuzz_driver_rsp(%rip)
    mov %rsi, fuzz_stream_entry(%rip)
    mov REG_RSP(%rdi), %rsp
    pushq REG_RFLAGS(%rdi)
    mov REG_RAX(%rdi), %rax
    mov REG_RBX(%rdi), %rbx
    mov REG_RCX(%rdi), %rcx
    mov REG_RDX(%rdi), %rdx
    mov REG_RSI(%rdi), %rsi
    mov REG_RBP(%rdi), %rbp
    mov REG_R8(%rdi), %r8
    mov REG_R9(%rdi), %r9
    mov REG_R10(%rdi), %r10
    mov REG_R11(%rdi), %r11
    mov REG_R12(%rdi), %r12
    mov REG_R13(%rdi), %r13
    mov REG_R14(%rdi), %r14
    mov REG_R15(%rdi), %r15
    mov REG_RDI(%rdi), %rdi
    popfq                               // may set TF: the #DB comes after the jump, in the stream
    jmp *fuzz_stream_entry(%rip)

// The jump at the end of every stream (and every return address on its stack) comes here.
    .global fuzz_stream_done
fuzz_stream_done:
    cli
    mov $STREAM_COMPLETED, %eax
    jmp restore

// One stub a vector: its number in EAX, then the common path. No frame is read: a software
// INT n to a vector with an error code pushes none, so the frame's shape is not known.
    .balign 16
    .global fuzz_vector_stubs
fuzz_vector_stubs:
    .set vector, 0
    .rept 256
    .balign 16
    mov $vector, %eax
    jmp restore
    .set vector, vector + 1
    .endr

restore:
    cld
    mov %rax, fuzz_stream_end(%rip)
    lgdt fuzz_critical + SAVED_GDTR(%rip)
    lidt fuzz_critical + SAVED_IDTR(%rip)
    mov fuzz_critical + SAVED_CR4(%rip), %rax
    mov %rax, %cr4
    mov fuzz_critical + SAVED_CR3(%rip), %rax
    mov %rax, %cr3
    mov fuzz_critical + SAVED_CR0(%rip), %rax
    mov %rax, %cr0
    xor %eax, %eax
    mov %rax, %dr7
    mov %rax, %cr8
    mov $KERNEL_DATA, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    lldt %ax
    mov $MSR_EFER, %ecx
    mov fuzz_critical + SAVED_EFER(%rip), %eax
    mov fuzz_critical + SAVED_EFER + 4(%rip), %edx
    wrmsr
    cmpq $0, fuzz_critical + SAVED_HAS_XCR0(%rip)
    je 1f
    xor %ecx, %ecx
    mov fuzz_critical + SAVED_XCR0(%rip), %eax
    mov fuzz_critical + SAVED_XCR0 + 4(%rip), %edx
    xsetbv
1:  mov fuzz_driver_rsp(%rip), %rsp
    pushq $KERNEL_CODE                  // CS as the driver had it, whatever the stream loaded
    lea 2f(%rip), %rax
    push %rax
    lretq
2:  pushq $2                            // interrupts off, flags clear
    popfq
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbp
    pop %rbx
    mov fuzz_stream_end(%rip), %rax
    ret

    .bss
    .balign 8
fuzz_driver_rsp:
    .quad 0
fuzz_stream_entry:
    .quad 0
fuzz_stream_end:
    .quad 0
