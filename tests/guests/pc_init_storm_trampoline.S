// Where the INIT storm's application processor starts, each time (tests/guests/pc_hostile.cpp,
// case initstorm): the BSP copies this page to guest-physical 0x70000 and sends INIT-SIPI-SIPI
// with vector 0x70 again and again. Each start turns the local APIC to x2APIC mode, software-
// enables it, counts itself in, tells the BSP with vector 0x51 and halts with interrupts off,
// as a CPU parked by an operating system: only the next INIT-SIPI-SIPI moves it.
#include "ap_x2apic.inc"

    .section .rodata.init_storm_trampoline, "a"
    .code16
    .global pc_init_storm_trampoline_start, pc_init_storm_trampoline_end, pc_init_storm_arrived_offset
pc_init_storm_trampoline_start:
    cli
    mov %cs, %ax
    mov %ax, %ds
    enable_x2apic
    lock incl (arrived - pc_init_storm_trampoline_start)
    mov $0x830, %ecx                // ICR: fixed, vector 0x51, to APIC 0
    mov $0x51, %eax
    xor %edx, %edx
    wrmsr
1:  hlt
    jmp 1b

    .balign 4
arrived: .long 0
pc_init_storm_trampoline_end:

    .section .rodata
    .balign 4
pc_init_storm_arrived_offset: .long arrived - pc_init_storm_trampoline_start
