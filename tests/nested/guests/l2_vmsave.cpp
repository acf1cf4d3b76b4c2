// VMLOAD / VMSAVE executed by L2 when L1 does not intercept them (nested SVM): they act on L2's
// CPU with RAX an address in L2's physical memory (L1's, as L1 uses no nested paging). L1 gives
// its CPU LSTAR 0x1111 with its own VMLOAD; L2 saves its CPU (which starts as L1's) to area A,
// loads STAR 0x2222 from area B, saves again to C, and reports with VMMCALL. An unaligned VMLOAD
// raises #GP in L2, which L1 intercepts.
#include "l1_common.hpp"

using namespace l1;

extern "C" {
alignas(4096) svm::Vmcb l1_state, area_a, area_b, area_c;
extern char l2_save_load[];
extern char l2_unaligned[];
}

asm(R"(
    .pushsection .text
    .globl l2_save_load
l2_save_load:
    lea area_a(%rip), %rax
    vmsave %rax
    lea area_b(%rip), %rax
    vmload %rax
    lea area_c(%rip), %rax
    vmsave %rax
    vmmcall
    .globl l2_unaligned
l2_unaligned:
    lea area_b+8(%rip), %rax
    vmload %rax
    vmmcall
    .popsection
)");

namespace {

alignas(4096) svm::Vmcb vmcb;
L2Stack stack;

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    enable_svm();
    l1_state.save.lstar = 0x1111;
    svm::vmload(&l1_state);
    area_b.save.star = 0x2222;

    set_up_l2(vmcb, l2_save_load, stack);
    vmcb.control.intercept_exceptions = 1u << kVectorGP;
    u64 code = run(vmcb);
    println("L2 vmsave, vmload, vmsave: exit ", hex(code, 1), ", A.lstar ", hex(area_a.save.lstar, 1), ", C.star ",
            hex(area_c.save.star, 1));

    set_up_l2(vmcb, l2_unaligned, stack);
    vmcb.control.intercept_exceptions = 1u << kVectorGP;
    code = run(vmcb);
    println("L2 vmload unaligned: exit ", hex(code, 1));
    return 0;
}
