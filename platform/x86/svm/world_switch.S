/* The SVM world switch, called only from the inline assembly in svm.cpp (svm_run):
 *
 *   RDI = guest VMCB physical address (the one VMRUN runs),
 *   RAX = the VMCB holding the guest's VMLOAD state: RDI's own, but for a vCPU running an L2,
 *         whose CPU keeps L1's (VMRUN and #VMEXIT leave that state alone; see svm.cpp),
 *   RDX = guest GPR array (16 registers in x86 encoding order, 8 bytes each).
 * The host VMCB's physical address is the global svm_host_vmcb, read here rather than passed:
 * one register fewer to set up and keep across the guest's run on every exit.
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
    pushq %rax              /* 0(%rsp): the guest's VMLOAD state */

    clgi
    vmload %rax             /* guest FS, GS, TR, LDTR, KernelGsBase, syscall MSRs */
    movq %rdi, %rax         /* the guest VMCB, in RAX for VMRUN */

    load_guest_gprs_but_base %rdx  /* the guest's GPRs; RDX, the array's address, last */
    movq 16(%rdx), %rdx

    sti
    vmrun %rax
    cli
    popq %rax               /* the guest's VMLOAD state */
    vmsave %rax

    movq svm_host_vmcb(%rip), %rax
    vmload %rax
    popq %rax               /* the guest GPR array */
    store_guest_gprs %rax
    stgi
    movq %rax, %rdx

    popq %rbp
    ret
    .size svm_world_switch, . - svm_world_switch

    .section .note.GNU-stack, "", @progbits
