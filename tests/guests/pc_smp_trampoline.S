// Where a PC domain's application processors start (tests/guests/pc_smp.cpp): the BSP copies
// this page to guest-physical 0x70000 and sends INIT-SIPI-SIPI with vector 0x70, so each AP
// begins here in real mode at CS = 0x7000, IP = 0. It turns its local APIC to x2APIC mode,
// software-enables it, counts itself in, points real-mode vectors 0x40 and 0x42 at its handlers
// and sleeps in HLT with interrupts on. A ping (vector 0x40 from the BSP) is answered with a pong:
// vector 0x41 to APIC 0. A park (vector 0x42) counts itself and halts for good with interrupts
// off, as an operating system parks a CPU it takes offline: only INIT-SIPI-SIPI brings it back.
// Each copy of the page (the BSP makes a second at 0x71000) has counters of its own.
#include "ap_x2apic.inc"

    .section .rodata.trampoline, "a"
    .code16
    .global pc_smp_trampoline_start, pc_smp_trampoline_end
    .global pc_smp_arrived_offset, pc_smp_pings_offset, pc_smp_parked_offset
pc_smp_trampoline_start:
    cli
    mov %cs, %ax
    mov %ax, %ds
    mov %ax, %ss
    mov $0xFF0, %sp
    enable_x2apic
    lock incl (arrived - pc_smp_trampoline_start)
    xor %ax, %ax
    mov %ax, %es
    movw $(ping - pc_smp_trampoline_start), %es:(0x40 * 4)
    movw %cs, %es:(0x40 * 4 + 2)
    movw $(park - pc_smp_trampoline_start), %es:(0x42 * 4)
    movw %cs, %es:(0x42 * 4 + 2)
1:  sti
    hlt
    jmp 1b

ping:
    push %eax
    push %ecx
    push %edx
    lock incl (pings - pc_smp_trampoline_start)
    mov $0x830, %ecx                // ICR: fixed, vector 0x41, to APIC 0
    mov $0x41, %eax
    xor %edx, %edx
    wrmsr
    mov $0x80B, %ecx                // EOI
    xor %eax, %eax
    wrmsr
    pop %edx
    pop %ecx
    pop %eax
    iret

park:
    lock incl (parked - pc_smp_trampoline_start)
2:  hlt
    jmp 2b

    .balign 4
arrived: .long 0
pings: .long 0
parked: .long 0
pc_smp_trampoline_end:

    .section .rodata
    .balign 4
pc_smp_arrived_offset: .long arrived - pc_smp_trampoline_start
pc_smp_pings_offset: .long pings - pc_smp_trampoline_start
pc_smp_parked_offset: .long parked - pc_smp_trampoline_start
