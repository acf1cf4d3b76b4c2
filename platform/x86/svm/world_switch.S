/* The SVM world switch.
 *
 *   void svm_world_switch(u64 guest_vmcb_pa, u64 host_vmcb_pa, u64* guest_gprs)
 *
 * guest_gprs: 16 registers in x86 encoding order (rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi,
 * r8..r15), 8 bytes each. RAX and RSP are not loaded from or stored to it: the guest's RAX, RSP,
 * RIP and RFLAGS live in the VMCB. VMRUN saves and restores the host's RSP, RIP, RFLAGS, RAX,
 * CR0/3/4, EFER, GDTR, IDTR and CS/SS/DS/ES itself; the host's FS, GS, TR, LDTR and syscall MSRs
 * are loaded with VMLOAD from host_vmcb_pa, where svm_enable() saved them once (they are set at
 * boot and never change). The callee-saved registers are saved on the stack.
 * GIF stays clear from before the guest's VMLOAD until the host state is back, so nothing can
 * interrupt the switch half-way. The host's IF is set only around VMRUN: with V_INTR_MASKING it
 * is what lets a physical interrupt (the preemption timer) end the guest's run with an INTR exit;
 * with GIF clear the host itself takes no interrupt here.
 */
#include "nestor/x86/guest_gprs.inc"

    .text
    .globl svm_world_switch
    .type svm_world_switch, @function
svm_world_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    pushq %rdx              /* 8(%rsp): guest GPR array */
    pushq %rsi              /* 0(%rsp): host VMCB */

    clgi
    movq %rdi, %rax         /* the guest VMCB, in RAX for VMLOAD, VMRUN and VMSAVE */
    vmload %rax             /* guest FS, GS, TR, LDTR, KernelGsBase, syscall MSRs */

    load_guest_gprs_but_base %rdx  /* the guest's GPRs; RDX, the array's address, last */
    movq 16(%rdx), %rdx

    sti
    vmrun %rax
    cli
    vmsave %rax             /* RAX is the host's again: the guest VMCB address */

    movq 8(%rsp), %rax
    store_guest_gprs %rax

    movq 0(%rsp), %rax
    vmload %rax
    stgi

    addq $16, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size svm_world_switch, . - svm_world_switch

    .section .note.GNU-stack, "", @progbits
