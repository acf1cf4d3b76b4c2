/* The SVM world switch.
 *
 *   void svm_world_switch(u64 guest_vmcb_pa, u64 host_vmcb_pa, u64* guest_gprs)
 *
 * guest_gprs: 16 registers in x86 encoding order (rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi,
 * r8..r15), 8 bytes each. RAX and RSP are not loaded from or stored to it: the guest's RAX, RSP,
 * RIP and RFLAGS live in the VMCB. VMRUN saves and restores the host's RSP, RIP, RFLAGS, RAX,
 * CR0/3/4, EFER, GDTR, IDTR and CS/SS/DS/ES itself; the host's FS, GS, TR, LDTR and syscall MSRs
 * are kept with VMSAVE/VMLOAD in host_vmcb_pa. The callee-saved registers are saved on the stack.
 * GIF stays clear from before the host VMSAVE until the host state is back, so nothing can
 * interrupt the switch half-way. The host's IF is set only around VMRUN: with V_INTR_MASKING it
 * is what lets a physical interrupt (the preemption timer) end the guest's run with an INTR exit;
 * with GIF clear the host itself takes no interrupt here.
 */
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
    pushq %rdx              /* 16(%rsp): guest GPR array */
    pushq %rdi              /*  8(%rsp): guest VMCB */
    pushq %rsi              /*  0(%rsp): host VMCB */

    clgi
    movq %rsi, %rax
    vmsave %rax             /* host FS, GS, TR, LDTR, KernelGsBase, STAR/LSTAR/CSTAR/SFMASK, SYSENTER */

    movq %rdx, %rax
    movq 8(%rax), %rcx
    movq 16(%rax), %rdx
    movq 24(%rax), %rbx
    movq 40(%rax), %rbp
    movq 48(%rax), %rsi
    movq 56(%rax), %rdi
    movq 64(%rax), %r8
    movq 72(%rax), %r9
    movq 80(%rax), %r10
    movq 88(%rax), %r11
    movq 96(%rax), %r12
    movq 104(%rax), %r13
    movq 112(%rax), %r14
    movq 120(%rax), %r15

    movq 8(%rsp), %rax      /* guest VMCB */
    vmload %rax
    sti
    vmrun %rax
    cli
    vmsave %rax             /* RAX is the host's again: the guest VMCB address */

    movq 16(%rsp), %rax
    movq %rcx, 8(%rax)
    movq %rdx, 16(%rax)
    movq %rbx, 24(%rax)
    movq %rbp, 40(%rax)
    movq %rsi, 48(%rax)
    movq %rdi, 56(%rax)
    movq %r8, 64(%rax)
    movq %r9, 72(%rax)
    movq %r10, 80(%rax)
    movq %r11, 88(%rax)
    movq %r12, 96(%rax)
    movq %r13, 104(%rax)
    movq %r14, 112(%rax)
    movq %r15, 120(%rax)

    movq 0(%rsp), %rax
    vmload %rax
    stgi

    addq $24, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size svm_world_switch, . - svm_world_switch

    .section .note.GNU-stack, "", @progbits
