// A 32-bit multiboot kernel with PAE paging, no SDK: it builds a PDPT and a page directory of
// 2 MiB pages (its own 4 MiB identity-mapped, and an alias at 1 GiB of the page that holds its
// data), then turns paging on with one MOV to CR0 that also sets NE, as i386 Linux's
// head_32.S does. The loader started it with NE clear, so on VMX that MOV is one the backend
// emulates: it must load the PDPTEs from memory as the CPU would. The kernel then reads its data
// through the alias and ends with the number of surprises as its status.
    .section .multiboot, "a"
    .balign 4
    .long 0x1BADB002
    .long 0
    .long -0x1BADB002

    .text
    .code32
    .globl _start
_start:
    mov $stack_top, %esp
    mov $msg_start, %esi
    call print
    xor %edi, %edi                     // surprises
    // PDPT[0] -> the page directory (0 - 1 GiB), PDPT[1] -> the alias directory (1 - 2 GiB).
    movl $page_directory + 1, pdpt
    movl $alias_directory + 1, pdpt + 8
    movl $0x00000083, page_directory          // 0 - 2 MiB, present, writable, 2 MiB
    movl $0x00200083, page_directory + 8      // 2 - 4 MiB: this kernel
    mov $data_word, %eax
    and $0xFFE00000, %eax
    or $0x83, %eax
    mov %eax, alias_directory                 // 1 GiB -> the 2 MiB page holding data_word
    mov %cr4, %eax
    or $0x20, %eax                            // PAE
    mov %eax, %cr4
    mov $pdpt, %eax
    mov %eax, %cr3
    mov %cr0, %eax
    bt $5, %eax                               // NE clear, as the loader left it
    jnc 1f
    inc %edi
1:  or $0x80000020, %eax                      // PG and NE in one MOV
    mov %eax, %cr0
    jmp 2f
2:  mov $msg_paging, %esi
    call print
    mov $data_word, %eax
    and $0x1FFFFF, %eax
    mov 0x40000000(%eax), %eax                // through the alias
    cmp $0x50414532, %eax                     // "2EAP"
    je 3f
    inc %edi
3:  mov $msg_done, %esi
    call print
    mov %edi, %eax
    out %al, $0xF4
    hlt
    jmp .

// Prints the NUL-terminated string at ESI on COM1.
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
    .asciz "pae32: started in protected mode\n"
msg_paging:
    .asciz "pae32: PAE paging on\n"
msg_done:
    .asciz "pae32: read its data through the alias at 1 GiB\n"

    .data
    .balign 4
data_word:
    .long 0x50414532

    .bss
    .balign 4096
page_directory:
    .skip 4096
alias_directory:
    .skip 4096
    .balign 32
pdpt:
    .skip 32
    .balign 16
    .skip 4096
stack_top:
