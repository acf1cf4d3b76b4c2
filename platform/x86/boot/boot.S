// 32-bit multiboot entry: check for long mode, map the first GiB twice (identity and at the
// higher-half kernel base), enable long mode and jump into the higher half.
// Everything here runs at physical addresses; .boot sections are linked there.

#include "platform/x86/boot/layout.h"

    .section .boot.text, "ax"
    .code32
    .global _start32
_start32:
    cli
    cld
    mov %eax, %edi                      // multiboot magic (1 or 2): preserved for the kernel
    mov %ebx, %esi                      // physical address of the multiboot information
    rdtsc                               // for the boot-time benchmark
    mov %eax, boot_entry_tsc
    mov %edx, boot_entry_tsc + 4
    mov $boot_stack_top, %esp

    // Long mode must exist, or nothing below can work: report on COM1 and halt.
    mov $0x80000000, %eax
    cpuid
    cmp $0x80000001, %eax
    jb no_long_mode
    mov $0x80000001, %eax
    cpuid
    test $(1 << 29), %edx
    jz no_long_mode

    // Clear the boot page tables: the loader need not zero NOLOAD sections.
    push %edi
    mov $boot_page_tables, %edi
    mov $(BOOT_PAGE_TABLE_BYTES / 4), %ecx
    xor %eax, %eax
    rep stosl
    pop %edi

    // PML4[0] and PML4[511] -> PDPTs; both PDPTs -> one PD of 512 2-MiB pages (the first GiB).
    movl $(boot_pdpt_low + 0x3), boot_pml4
    movl $(boot_pdpt_high + 0x3), boot_pml4 + 511 * 8
    movl $(boot_pd + 0x3), boot_pdpt_low
    movl $(boot_pd + 0x3), boot_pdpt_high + 510 * 8
    mov $boot_pd, %ebx
    mov $0x83, %eax                     // present, writable, 2 MiB
    mov $512, %ecx
1:  mov %eax, (%ebx)
    add $0x200000, %eax
    add $8, %ebx
    loop 1b

    mov %cr4, %eax
    or $((1 << 5) | (1 << 7)), %eax     // PAE, PGE
    mov %eax, %cr4
    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx               // EFER: long mode enable, no-execute enable
    rdmsr
    or $((1 << 8) | (1 << 11)), %eax
    wrmsr
    mov %cr0, %eax
    or $((1 << 31) | (1 << 16) | 1), %eax  // paging, write protect, protected mode
    mov %eax, %cr0

    lgdt boot_gdt_pointer
    ljmp $0x08, $long_mode_entry

no_long_mode:
    mov $no_long_mode_message, %esi
    mov $0x3F8, %dx
1:  lodsb
    test %al, %al
    jz 2f
    outb %al, %dx
    jmp 1b
2:  hlt
    jmp 2b

    .code64
long_mode_entry:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    movabs $higher_half_entry, %rax
    jmp *%rax

    .section .boot.data, "aw"
    .balign 8
    .global boot_entry_tsc
boot_entry_tsc:
    .quad 0
    .balign 16
boot_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF            // 64-bit code
    .quad 0x00CF92000000FFFF            // data
boot_gdt_end:
    .balign 4
    .short 0
boot_gdt_pointer:
    .short boot_gdt_end - boot_gdt - 1
    .long boot_gdt
no_long_mode_message:
    .asciz "nestor: this CPU has no long mode\r\n"

    // Page-aligned by kernel.ld, which places .boot.bss at a page boundary.
    .section .boot.bss, "aw", @nobits
boot_page_tables:
boot_pml4:      .skip 4096
boot_pdpt_low:  .skip 4096
boot_pdpt_high: .skip 4096
boot_pd:        .skip 4096
    .skip 4096
boot_stack_top:

    .text
    .code64
higher_half_entry:
    movabs $kernel_stack_top, %rsp
    xor %ebp, %ebp
    // Zero .bss ourselves: not every loader clears it. The stack lives in .bss too, so the
    // boot arguments wait in a register rather than on it. kernel.ld aligns both ends to 8, so
    // it is cleared a quadword at a time.
    mov %rdi, %r12
    movabs $__bss_start, %rdi
    movabs $__bss_end, %rcx
    sub %rdi, %rcx
    shr $3, %rcx
    xor %eax, %eax
    rep stosq
    mov %r12, %rdi
    // rdi = magic, rsi = physical address of the boot information
    call x86_boot_main
1:  cli
    hlt
    jmp 1b

    .bss
    .balign 16
    .global kernel_stack_bottom
kernel_stack_bottom:
    .skip KERNEL_STACK_BYTES
    .global kernel_stack_top
kernel_stack_top:
