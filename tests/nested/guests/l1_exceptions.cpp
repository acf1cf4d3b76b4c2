// An L1 hypervisor that intercepts exceptions of its L2 (the exception intercept vector): each
// fault L2 raises must reach L1 as #VMEXIT 0x40 + vector, with RIP at the faulting instruction,
// the error code in EXITINFO1 and, for #PF, the faulting address in EXITINFO2; L1 then steps L2
// over the instruction. L1 does not intercept MSRs, so L2's RDMSR of an MSR Nestor refuses raises
// #GP from L0's rule, and L1 does not intercept VMMCALL, so L2's VMMCALL raises #UD: both are L1's
// too, since L1 intercepts those vectors. HLT ends L2.
// No #BP: QEMU's TCG checks INT3 against the INTn intercept, not the #BP one, so under QEMU an L2's
// INT3 never exits, whoever runs the L2; #NM (an x87 instruction with L2's CR0.TS set) stands in
// as a second fault without an error code.
#include "l1_common.hpp"

using namespace l1;

// L2: one fault after another, each instruction labelled with the next so that L1 can step over
// it. The write to 4 GiB + 0x123 is above the runtime's identity map: a not-present #PF.
extern "C" char l2_exceptions_entry[], l2_ud[], l2_ud_next[], l2_nm[], l2_nm_next[], l2_de[], l2_de_next[], l2_gp[],
    l2_gp_next[], l2_pf[], l2_pf_next[], l2_msr[], l2_msr_next[], l2_vmmcall[], l2_vmmcall_next[];
asm(R"(
    .pushsection .text
    .globl l2_exceptions_entry, l2_ud, l2_ud_next, l2_nm, l2_nm_next, l2_de, l2_de_next, l2_gp, l2_gp_next
    .globl l2_pf, l2_pf_next, l2_msr, l2_msr_next, l2_vmmcall, l2_vmmcall_next
l2_exceptions_entry:
l2_ud:
    ud2
l2_ud_next:
l2_nm:
    fninit
l2_nm_next:
    xor %edx, %edx
    mov $1, %eax
    xor %ecx, %ecx
l2_de:
    div %ecx
l2_de_next:
    mov $0x1230, %eax
l2_gp:
    mov %ax, %fs
l2_gp_next:
    movabs $0x100000123, %rbx
l2_pf:
    movb $1, (%rbx)
l2_pf_next:
    mov $0x1b, %ecx
l2_msr:
    rdmsr
l2_msr_next:
l2_vmmcall:
    vmmcall
l2_vmmcall_next:
1:  hlt
    jmp 1b
    .popsection
)");

namespace {

alignas(4096) svm::Vmcb vmcb;
L2Stack l2_stack;

constexpr u64 kNotChecked = ~u64{0};

struct ExpectedFault {
    const char* what;
    u8 vector;
    const char* rip;
    const char* next;
    u64 info_1;  // the error code, or kNotChecked for vectors without one
    u64 info_2;  // #PF's address, or kNotChecked
};

constexpr u8 kVectorNM = 7;

const ExpectedFault kFaults[] = {
    {"ud2", kVectorUD, l2_ud, l2_ud_next, kNotChecked, kNotChecked},
    {"fninit with cr0.ts", kVectorNM, l2_nm, l2_nm_next, kNotChecked, kNotChecked},
    {"div by zero", kVectorDE, l2_de, l2_de_next, kNotChecked, kNotChecked},
    {"mov 0x1230 to fs", kVectorGP, l2_gp, l2_gp_next, 0x1230, kNotChecked},
    {"write to 4 GiB + 0x123", kVectorPF, l2_pf, l2_pf_next, 0x2, 0x100000123},
    {"rdmsr 0x1b, which L0 refuses", kVectorGP, l2_msr, l2_msr_next, 0x0, kNotChecked},
    {"vmmcall without its intercept", kVectorUD, l2_vmmcall, l2_vmmcall_next, kNotChecked, kNotChecked},
};

bool take_fault(const ExpectedFault& want) {
    u64 code = run(vmcb);
    if (!expect_exit(code, svm::exit_code::exception(want.vector), want.what)) return false;
    const svm::VmcbControl& c = vmcb.control;
    bool at_instruction = vmcb.save.rip == reinterpret_cast<u64>(want.rip);
    const char* at = at_instruction ? "yes" : "no";
    if (want.info_2 != kNotChecked)
        println("L2 exit ", hex(code, 1), ": ", want.what, ", rip at the instruction ", at, ", exitinfo1 ",
                hex(c.exit_info_1, 1), ", exitinfo2 ", hex(c.exit_info_2, 1));
    else if (want.info_1 != kNotChecked)
        println("L2 exit ", hex(code, 1), ": ", want.what, ", rip at the instruction ", at, ", exitinfo1 ",
                hex(c.exit_info_1, 1));
    else
        println("L2 exit ", hex(code, 1), ": ", want.what, ", rip at the instruction ", at);
    vmcb.save.rip = reinterpret_cast<u64>(want.next);
    return at_instruction && (want.info_1 == kNotChecked || c.exit_info_1 == want.info_1) &&
           (want.info_2 == kNotChecked || c.exit_info_2 == want.info_2);
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    enable_svm();
    set_up_l2(vmcb, l2_exceptions_entry, l2_stack);
    vmcb.save.cr0 |= kCr0Ts;
    vmcb.control.intercept_misc2 &= ~svm::intercept2::vmmcall;
    vmcb.control.intercept_misc1 |= svm::intercept1::hlt;
    for (const ExpectedFault& f : kFaults) vmcb.control.intercept_exceptions |= svm::intercept_exception(f.vector);

    for (const ExpectedFault& f : kFaults)
        if (!take_fault(f)) return 1;
    if (!expect_exit(run(vmcb), svm::exit_code::hlt, "HLT")) return 1;
    println("L2 done");
    return 0;
}
