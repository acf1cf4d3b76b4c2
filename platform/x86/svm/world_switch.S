/* The SVM world switch, called only from the inline assembly in svm.cpp (svm_run):
 *
 *   RDI = guest VMCB physical address, RSI = host VMCB physical address,
 *   RDX = guest GPR array (16 registers in x86 encoding order, 8 bytes each).
 *
 * Its own convention: it preserves only RBP and RSP. Every other general-purpose register holds
 * whatever the guest left in it on return, and the caller's inline assembly names them all as
 * clobbered, so the compiler saves only what the run function needs, once, in its own frame
 * (two sets of callee-saved pushes per exit otherwise). On return RDX holds the GPR array's
 * address again, for the caller to use.
 *
 * RAX and RSP are not loaded from or stored to the array: the guest's RAX, RSP, RIP and RFLAGS
 * live in the VMCB. VMRUN saves and restores the host's RSP, RIP, RFLAGS, RAX, CR0/3/4, EFER,
 * GDTR, IDTR and CS/SS/DS/ES itself; the host's FS, GS, TR, LDTR and syscall MSRs are loaded with
 * VMLOAD from the host VMCB, where svm_enable() saved them once (they are set at boot and never
 * change).
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
    pushq %rbp              /* the caller's frame pointer: the one register kept for it */
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

    popq %rax               /* the host VMCB */
    vmload %rax
    popq %rax               /* the guest GPR array */
    store_guest_gprs %rax
    stgi
    movq %rax, %rdx

    popq %rbp
    ret
    .size svm_world_switch, . - svm_world_switch

    .section .note.GNU-stack, "", @progbits
