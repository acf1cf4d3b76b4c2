// Where the application processor of tests/guests/pc_short_tick.cpp starts: the BSP copies this
// page to guest-physical 0x70000 and sends INIT-SIPI-SIPI with vector 0x70, so the AP begins here
// in real mode at CS = 0x7000, IP = 0. It counts itself in, then spins (PAUSE, no exit) until the
// BSP sets `go`, says it saw it in `done` and sleeps with interrupts off.
    .section .rodata.trampoline, "a"
    .code16
    .global pc_short_tick_ap_start, pc_short_tick_ap_end
    .global pc_short_tick_arrived_offset, pc_short_tick_go_offset, pc_short_tick_done_offset
pc_short_tick_ap_start:
    cli
    mov %cs, %ax
    mov %ax, %ds
    lock incl (arrived - pc_short_tick_ap_start)
1:  pause
    cmpl $0, (go - pc_short_tick_ap_start)
    je 1b
    lock incl (done - pc_short_tick_ap_start)
2:  hlt
    jmp 2b

    .balign 4
arrived: .long 0
go: .long 0
done: .long 0
pc_short_tick_ap_end:

    .section .rodata
    .balign 4
pc_short_tick_arrived_offset: .long arrived - pc_short_tick_ap_start
pc_short_tick_go_offset: .long go - pc_short_tick_ap_start
pc_short_tick_done_offset: .long done - pc_short_tick_ap_start
