// Multiboot v1 entry of a Nestor guest: from the multiboot machine state (32-bit protected mode,
// paging off) to long mode with the first 4 GiB identity-mapped, then into the C++ runtime.
// Everything is linked at its physical address (guest.ld), so no relocation is ever needed.

#define MB1_MAGIC 0x1BADB002
#define MB1_FLAGS 0x00000003            // page-aligned modules, memory information wanted
#define STACK_BYTES 0x10000
#define PAGE_TABLE_PAGES 6              // PML4, PDPT, four page directories of 2 MiB pages

    .section .multiboot, "a"
    .balign 4
    .long MB1_MAGIC
    .long MB1_FLAGS
    .long -(MB1_MAGIC + MB1_FLAGS)

    .section .text.entry, "ax"
    .code32
    .global _start32
_start32:
    cli
    cld
    mov %eax, %ebp                      // multiboot magic: kept in registers because .bss,
    mov %ebx, %esi                      // where memory would be, is about to be zeroed

    // Loaders need not clear .bss; the stack and page tables live there.
    mov $__bss_start, %edi
    mov $__bss_end, %ecx
    sub %edi, %ecx
    shr $2, %ecx
    xor %eax, %eax
    rep stosl
    mov $guest_stack_top, %esp

    mov $0x80000000, %eax
    cpuid
    cmp $0x80000001, %eax
    jb no_long_mode
    mov $0x80000001, %eax
    cpuid
    test $(1 << 29), %edx
    jz no_long_mode
    mov %edx, %edi                      // extended features: NX is bit 20

    // PML4[0] -> PDPT; PDPT[0..3] -> four page directories; 2048 2-MiB pages cover 0..4 GiB.
    movl $(guest_pdpt + 0x3), guest_pml4
    mov $guest_pdpt, %ebx
    mov $(guest_page_directories + 0x3), %eax
    mov $4, %ecx
1:  mov %eax, (%ebx)
    add $4096, %eax
    add $8, %ebx
    loop 1b
    mov $guest_page_directories, %ebx
    mov $0x83, %eax                     // present, writable, 2 MiB
    mov $2048, %ecx
1:  mov %eax, (%ebx)
    add $0x200000, %eax
    add $8, %ebx
    loop 1b

    mov %cr4, %eax
    or $((1 << 5) | (1 << 9) | (1 << 10)), %eax  // PAE; OSFXSR and OSXMMEXCPT for guests using SSE
    mov %eax, %cr4
    mov $guest_pml4, %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx               // EFER: long mode, and NX when the CPU has it
    rdmsr
    or $(1 << 8), %eax
    test $(1 << 20), %edi
    jz 2f
    or $(1 << 11), %eax
2:  wrmsr
    mov %cr0, %eax
    and $~(1 << 2), %eax                // no FPU emulation
    or $((1 << 31) | (1 << 16) | (1 << 5) | (1 << 1) | 1), %eax  // PG, WP, NE, MP, PE
    mov %eax, %cr0

    lgdt guest_gdt_pointer
    ljmp $0x08, $long_mode_entry

no_long_mode:
    mov $no_long_mode_message, %esi
    mov $0x3F8, %dx
1:  lodsb
    test %al, %al
    jz 2f
    outb %al, %dx
    jmp 1b
2:  mov $0x7f, %al                      // the runtime's failure status, as if an exception hit
    outb %al, $0xF4
3:  hlt
    jmp 3b

    .code64
long_mode_entry:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    mov $guest_stack_top, %esp
    // The upper halves of the registers are undefined after the switch: zero-extend.
    mov %ebp, %edi                      // nestor_guest_start(magic, info)
    mov %esi, %esi
    xor %ebp, %ebp                      // the end of every frame chain
    call nestor_guest_start
1:  cli
    hlt
    jmp 1b

    .section .rodata.entry, "a"
    .balign 16
guest_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF            // 0x08: 64-bit code
    .quad 0x00CF92000000FFFF            // 0x10: data
guest_gdt_end:
    .balign 4
    .short 0
guest_gdt_pointer:
    .short guest_gdt_end - guest_gdt - 1
    .long guest_gdt
no_long_mode_message:
    .asciz "nestor guest: this CPU has no long mode\r\n"

    .bss
    .balign 4096
guest_pml4:             .skip 4096
guest_pdpt:             .skip 4096
guest_page_directories: .skip 4 * 4096
    .balign 16
    .global guest_stack_bottom
guest_stack_bottom:
    .skip STACK_BYTES
    .global guest_stack_top
guest_stack_top:
