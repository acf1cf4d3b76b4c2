// The L2 of both backends' "L2 takes L1's interrupt" tests (nested.l2_takes_l1_interrupt on SVM,
// nested.vmx_l2_takes_l1_interrupt on VMX): a while with interrupts off, so that L0 waits for
// L2's interrupt window, then STI and, two instructions later, the exit instruction the including
// guest names (NESTOR_L2_LATE_STI("vmmcall") or ("vmcall")), after it noted in
// l2_interrupts_at_exit how many interrupts its handler had taken by then. The handler counts
// each in l2_interrupts and ends it with an x2APIC EOI (its L1 lets L2's WRMSR reach L0's local
// APIC).
#pragma once

#include "nestor/apic.hpp"

extern "C" char l2_late_sti[], l2_interrupt_handler[];
extern "C" volatile nestor::guest::u32 l2_interrupts, l2_interrupts_at_exit;
static_assert(nestor::guest::apic::kMsrX2apicEoi == 0x80B, "l2_interrupt_handler's WRMSR");

#define NESTOR_L2_LATE_STI(exit_instruction)            \
    asm(".pushsection .text\n"                          \
        ".globl l2_late_sti, l2_interrupt_handler\n"    \
        "l2_late_sti:\n"                                \
        "    mov $2000, %ecx\n"                         \
        "1:  pause\n"                                   \
        "    loop 1b\n"                                 \
        "    sti\n"                                     \
        "    nop\n"                                     \
        "    nop\n"                                     \
        "    mov l2_interrupts(%rip), %eax\n"           \
        "    mov %eax, l2_interrupts_at_exit(%rip)\n"   \
        "    " exit_instruction                         \
        "\n"                                            \
        "2:  jmp 2b\n"                                  \
        "l2_interrupt_handler:\n"                       \
        "    push %rax\n"                               \
        "    push %rcx\n"                               \
        "    push %rdx\n"                               \
        "    lock incl l2_interrupts(%rip)\n"           \
        "    mov $0x80B, %ecx\n"                        \
        "    xor %eax, %eax\n"                          \
        "    xor %edx, %edx\n"                          \
        "    wrmsr\n"                                   \
        "    pop %rdx\n"                                \
        "    pop %rcx\n"                                \
        "    pop %rax\n"                                \
        "    iretq\n"                                   \
        ".popsection\n"                                 \
        ".pushsection .data\n"                          \
        ".globl l2_interrupts, l2_interrupts_at_exit\n" \
        ".balign 4\n"                                   \
        "l2_interrupts: .long 0\n"                      \
        "l2_interrupts_at_exit: .long 0\n"              \
        ".popsection\n")
