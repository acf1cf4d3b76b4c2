// An L1 hypervisor's own interrupt arriving while its L2 runs (nested SVM): L1 takes its signals
// as interrupt 0x50 (NOTIFICATION_SET_VECTOR), intercepts INTR with V_INTR_MASKING, and runs
// an L2 that spins. The sender's signal becomes a #VMEXIT(INTR) into L1; the interrupt itself
// waits while GIF is clear and arrives right after L1's STGI, as on the CPU.
#include "l1_common.hpp"

using namespace l1;

extern "C" char intr_l2_spin[];
asm(R"(
    .pushsection .text
    .globl intr_l2_spin
intr_l2_spin:
    pause
    jmp intr_l2_spin
    .popsection
)");

namespace {

constexpr u8 kVector = 0x50;
constexpr u32 kVIntrMasking = 1u << 24;

alignas(4096) svm::Vmcb vmcb;
L2Stack stack;

volatile u32 interrupts = 0;
volatile u64 badges = 0;

void on_signal(u8) {
    badges = badges | poll_signals();
    interrupts = interrupts + 1;
}

// L2 spins with interrupts disabled; L1 intercepts INTR and masks with its own IF (V_INTR_MASKING).
void set_up_spinning_l2() {
    set_up_l2(vmcb, intr_l2_spin, stack);
    vmcb.control.intercept_misc1 = svm::intercept1::intr;
    vmcb.control.int_ctl = kVIntrMasking;
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    set_interrupt_handler(kVector, on_signal);
    if (!set_signal_vector(kVector).ok()) return 1;
    enable_svm();
    set_up_spinning_l2();

    // Ask the sender for a signal, then run L2 with GIF clear around VMRUN and IF set.
    if (!invoke(NESTOR_HC_NOTIFICATION_SIGNAL, NESTOR_GUEST_SLOT_SIGNAL_BASE).ok()) return 1;
    svm::clgi();
    enable_interrupts();
    svm::vmrun(&vmcb);
    u64 code = vmcb.control.exit_code;
    u64 rip = vmcb.save.rip;
    bool in_l2 = rip >= reinterpret_cast<u64>(intr_l2_spin) && rip < reinterpret_cast<u64>(intr_l2_spin) + 4;
    println("L2 exit ", hex(code, 1), (code == 0x60 ? ": intr" : ": unexpected"),
            ", L2 rip in its loop: ", in_l2 ? "yes" : "no");
    println("before stgi: ", interrupts, " interrupts");  // GIF clear: held
    svm::stgi();
    disable_interrupts();
    println("after stgi: ", interrupts, " interrupt, badges ", hex(badges, 4));
    return code == 0x60 && interrupts == 1 ? 0 : 1;
}
