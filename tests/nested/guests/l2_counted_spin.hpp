// An L2 that spins, in its code (l2_spin) and in the handler (l2_counted_handler) of an event its
// L1 injects, which counts its loops in l2_handler_steps: how far L2 got into the handler before
// its L1's exit (nested.l1_interrupt_after_event on SVM, nested.vmx_l1_interrupt_window on VMX).
#pragma once

#include "nestor/guest.hpp"

extern "C" char l2_spin[], l2_counted_handler[];
extern "C" volatile nestor::guest::u32 l2_handler_steps;
asm(R"(
    .pushsection .text
    .globl l2_spin, l2_counted_handler
l2_spin:
    pause
    jmp l2_spin
l2_counted_handler:
    lock incl l2_handler_steps(%rip)
    pause
    jmp l2_counted_handler
    .popsection
    .pushsection .data
    .globl l2_handler_steps
    .balign 4
l2_handler_steps:
    .long 0
    .popsection
)");
