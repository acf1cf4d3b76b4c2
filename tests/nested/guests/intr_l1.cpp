// An L1 hypervisor's own interrupt arriving while its L2 runs (nested SVM): L1 takes its signals
// as interrupt 0x50 (NOTIFICATION_SET_VECTOR), intercepts INTR with V_INTR_MASKING, and runs
// an L2 that spins. The sender's signal becomes a #VMEXIT(INTR) into L1; the interrupt itself
// waits while GIF is clear and arrives right after L1's STGI, as on the CPU.
#include "nestor/guest.hpp"
#include "nestor/svm.hpp"

using namespace nestor::guest;
namespace svm = nestor::guest::svm;

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
alignas(4096) u8 host_save_area[4096];
alignas(16) u8 l2_stack[4096];

volatile u32 interrupts = 0;
volatile u64 badges = 0;

void on_signal(u8) {
    badges = badges | poll_signals();
    interrupts = interrupts + 1;
}

u16 selector(bool code) {
    u16 v;
    if (code) asm volatile("mov %%cs, %0" : "=r"(v));
    else asm volatile("mov %%ss, %0" : "=r"(v));
    return v;
}

void set_up_l2() {
    svm::VmcbControl& c = vmcb.control;
    c.intercept_misc1 = svm::intercept1::intr;
    c.intercept_misc2 = svm::intercept2::vmrun | svm::intercept2::vmmcall;
    c.guest_asid = 1;
    c.int_ctl = kVIntrMasking;
    svm::VmcbSave& s = vmcb.save;
    s.cs = svm::VmcbSegment{selector(true), svm::kAttribCode64, 0xFFFFFFFF, 0};
    s.ss = s.ds = s.es = svm::VmcbSegment{selector(false), svm::kAttribData, 0xFFFFFFFF, 0};
    s.gdtr = svm::read_gdtr();
    s.idtr = svm::read_idtr();
    s.efer = rdmsr(svm::kMsrEfer);
    s.cr0 = read_cr0();
    s.cr3 = read_cr3();
    s.cr4 = read_cr4();
    s.dr6 = 0xFFFF0FF0;
    s.dr7 = 0x400;
    s.rflags = 2;  // L2 runs with interrupts disabled: L1's own IF decides (V_INTR_MASKING)
    s.rip = reinterpret_cast<u64>(intr_l2_spin);
    s.rsp = reinterpret_cast<u64>(l2_stack + sizeof(l2_stack));
    s.g_pat = svm::kResetPat;
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    set_interrupt_handler(kVector, on_signal);
    if (!set_signal_vector(kVector).ok()) return 1;
    wrmsr(svm::kMsrEfer, rdmsr(svm::kMsrEfer) | svm::kEferSvme);
    wrmsr(svm::kMsrVmHsavePa, reinterpret_cast<u64>(host_save_area));
    set_up_l2();

    // Ask the sender for a signal, then run L2 with GIF clear around VMRUN and IF set.
    if (!invoke(NESTOR_HC_NOTIFICATION_SIGNAL, NESTOR_GUEST_SLOT_SIGNAL_BASE).ok()) return 1;
    svm::clgi();
    enable_interrupts();
    svm::vmrun(&vmcb);
    u64 code = vmcb.control.exit_code;
    u64 rip = vmcb.save.rip;
    bool in_l2 = rip >= reinterpret_cast<u64>(intr_l2_spin) && rip < reinterpret_cast<u64>(intr_l2_spin) + 4;
    println("L2 exit ", hex(code, 1), (code == 0x60 ? ": intr" : ": unexpected"), ", L2 rip in its loop: ",
            in_l2 ? "yes" : "no");
    println("before stgi: ", interrupts, " interrupts");  // GIF clear: held
    svm::stgi();
    disable_interrupts();
    println("after stgi: ", interrupts, " interrupt, badges ", hex(badges, 4));
    return code == 0x60 && interrupts == 1 ? 0 : 1;
}
