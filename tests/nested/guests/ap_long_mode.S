// Where an L1's application processor starts (ap_long_mode.hpp): the BSP copies this page to
// AP_LONG_MODE_BASE, writes its CR3, IDTR, the AP's stack top and entry point into the page's
// last words, and sends INIT-SIPI-SIPI with vector AP_LONG_MODE_BASE >> 12. The AP goes from real
// mode through 32-bit protected mode into 64-bit mode on the BSP's page tables, with the segments
// the guest runtime's BSP has (64-bit code 0x08, data 0x10), and calls the entry point, which
// never returns.
#define AP_LONG_MODE_BASE 0x70000
#define AT(label) (AP_LONG_MODE_BASE + (label) - ap_long_mode_start)

    .section .rodata.ap_long_mode, "a"
    .global ap_long_mode_start, ap_long_mode_end
    .global ap_long_mode_cr3, ap_long_mode_stack, ap_long_mode_entry, ap_long_mode_idtr
    .code16
ap_long_mode_start:
    cli
    mov %cs, %ax
    mov %ax, %ds
    lgdtl (gdt_pointer - ap_long_mode_start)
    mov %cr0, %eax
    or $1, %eax                         // PE
    mov %eax, %cr0
    ljmpl $0x18, $AT(protected32)

    .code32
protected32:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov %cr4, %eax
    or $((1 << 5) | (1 << 9) | (1 << 10)), %eax  // PAE; OSFXSR and OSXMMEXCPT, as the BSP
    mov %eax, %cr4
    mov AT(ap_long_mode_cr3), %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx               // EFER.LME
    rdmsr
    or $(1 << 8), %eax
    wrmsr
    mov %cr0, %eax
    and $~(1 << 2), %eax                // no FPU emulation
    or $((1 << 31) | (1 << 16) | (1 << 5) | (1 << 1) | 1), %eax  // PG, WP, NE, MP, PE
    mov %eax, %cr0
    ljmp $0x08, $AT(long64)

    .code64
long64:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    lidt AT(ap_long_mode_idtr)
    mov AT(ap_long_mode_stack), %rsp
    xor %ebp, %ebp
    call *AT(ap_long_mode_entry)
1:  cli
    hlt
    jmp 1b

    .balign 8
gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF            // 0x08: 64-bit code
    .quad 0x00CF92000000FFFF            // 0x10: data
    .quad 0x00CF9A000000FFFF            // 0x18: 32-bit code, on the way
gdt_end:
    .balign 4
    .short 0
gdt_pointer:
    .short gdt_end - gdt - 1
    .long AT(gdt)
    .balign 8
ap_long_mode_cr3:   .quad 0
ap_long_mode_stack: .quad 0
ap_long_mode_entry: .quad 0
    .short 0, 0, 0
ap_long_mode_idtr:  .short 0
                    .quad 0
ap_long_mode_end:
