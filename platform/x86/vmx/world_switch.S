/* The VMX world switch.
 *
 *   u64 vmx_world_switch(u64* guest_gprs, u64 launched)
 *
 * Enters the guest of the current VMCS: VMLAUNCH when `launched` is 0, VMRESUME otherwise.
 * guest_gprs: 16 registers in x86 encoding order (rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi,
 * r8..r15), 8 bytes each; RSP is not loaded from or stored to it (the guest's RSP, RIP and RFLAGS
 * live in the VMCS). The host's callee-saved registers and the array's address stay on this
 * stack, whose pointer becomes the VMCS host RSP; the VMCS host RIP is vmx_exit_entry, where a VM
 * exit lands with the host's CR0/3/4, segments, GDTR/IDTR bases and EFER loaded by the CPU.
 *
 * Returns 0 after a VM exit (the guest's GPRs stored), 1 when the entry instruction failed with
 * VMfailInvalid (CF), 2 with VMfailValid (ZF; the VM-instruction error field says why).
 */
#include "nestor/x86/guest_gprs.inc"

#define VMCS_HOST_RSP 0x6C14

    .text
    .globl vmx_world_switch
    .type vmx_world_switch, @function
vmx_world_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    pushq %rdi                  /* 0(%rsp): guest GPR array, for the exit path */

    movl $VMCS_HOST_RSP, %eax
    vmwrite %rsp, %rax
    jna .Lfailed                /* flags of the failed VMWRITE decide the status */

    testq %rsi, %rsi            /* launched? The moves below keep the flags. */
    movq %rdi, %rax
    movq 16(%rax), %rdx
    load_guest_gprs_but_base %rax
    movq 0(%rax), %rax
    jnz 1f
    vmlaunch
    jmp .Lfailed
1:  vmresume
    /* Falling through: the entry failed. CF = VMfailInvalid, ZF = VMfailValid. */
.Lfailed:
    movl $2, %eax
    movl $1, %ecx
    cmovcl %ecx, %eax
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size vmx_world_switch, . - vmx_world_switch

    .globl vmx_exit_entry
    .type vmx_exit_entry, @function
vmx_exit_entry:
    pushq %rax                  /* the guest's RAX; 8(%rsp) is the guest GPR array */
    movq 8(%rsp), %rax
    store_guest_gprs %rax
    popq %rcx
    movq %rcx, 0(%rax)
    addq $8, %rsp
    xorl %eax, %eax
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size vmx_exit_entry, . - vmx_exit_entry

    .section .note.GNU-stack, "", @progbits
