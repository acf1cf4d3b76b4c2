// A plain ELF64 kernel, no multiboot header and no SDK: it must start in 64-bit long mode at its
// entry, with paging on, RSP set and RDI pointing at the multiboot information block. It prints
// what it found on the domain's console and ends with the number of surprises as its status.
    .text
    .code64
    .globl _start
_start:
    xor %r12d, %r12d                  // surprises
    mov %cs, %ax
    lea msg_start(%rip), %rsi
    call print
    // Long mode: CS.L is what lets this code run at all; check EFER.LMA and CR0.PG too.
    mov $0xC0000080, %ecx
    rdmsr
    bt $10, %eax
    jc 1f
    inc %r12d
1:  mov %cr0, %rax
    bt $31, %rax
    jc 2f
    inc %r12d
2:  // The stack works: a call above already used it. RDI: the information block's flags word
    // has the memory-map bit (6).
    mov (%rdi), %eax
    bt $6, %eax
    jc 3f
    inc %r12d
3:  lea msg_done(%rip), %rsi
    call print
    mov %r12d, %eax
    out %al, $0xF4
    hlt
    jmp .

// Prints the NUL-terminated string at RSI on COM1.
print:
    mov $0x3F8, %dx
1:  lodsb
    test %al, %al
    jz 2f
    out %al, %dx
    jmp 1b
2:  ret

    .section .rodata
msg_start:
    .asciz "plain ELF64: started in long mode\n"
msg_done:
    .asciz "plain ELF64: checked EFER.LMA, CR0.PG, RSP and RDI\n"
