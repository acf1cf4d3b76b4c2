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

    movq 8(%rdx), %rcx      /* the guest's GPRs; RDX, the array's address, last */
    movq 24(%rdx), %rbx
    movq 40(%rdx), %rbp
    movq 48(%rdx), %rsi
    movq 56(%rdx), %rdi
    movq 64(%rdx), %r8
    movq 72(%rdx), %r9
    movq 80(%rdx), %r10
    movq 88(%rdx), %r11
    movq 96(%rdx), %r12
    movq 104(%rdx), %r13
    movq 112(%rdx), %r14
    movq 120(%rdx), %r15
    movq 16(%rdx), %rdx

    sti
    vmrun %rax
    cli
    vmsave %rax             /* RAX is the host's again: the guest VMCB address */

    movq 8(%rsp), %rax
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
