// An L1 hypervisor on AMD SVM in a PC domain with two vCPUs (nested.l1_init_signal): its
// application processor runs an L2 that spins, intercepting INIT, and the BSP sends it an INIT.
// While L2 runs it is a #VMEXIT(INIT) into L1, which leaves it pending; the #VMEXIT cleared GIF,
// which holds it: the AP runs on, and only its STGI lets the INIT in, after which the AP waits
// for a startup IPI, with which the BSP starts it again (as KVM's svm_apic_init_signal_blocked).
#include "ap_long_mode.hpp"
#include "ap_steps.hpp"
#include "nestor/svm.hpp"

namespace svm = nestor::guest::svm;
using namespace ap_long_mode;
using namespace ap_steps;

// L2 says it runs, then spins without an exit of L1's.
extern "C" char l2_spin[];
extern "C" volatile nestor::guest::u32 l2_spinning;
asm(R"(
    .pushsection .text
    .globl l2_spin
l2_spin:
    movl $1, l2_spinning(%rip)
1:  jmp 1b
    .popsection
    .pushsection .data
    .globl l2_spinning
    .balign 4
l2_spinning:
    .long 0
    .popsection
)");

namespace {

alignas(4096) u8 host_save_area[4096];
alignas(4096) svm::Vmcb vmcb;
alignas(16) u8 l2_stack[8192];
alignas(16) u8 ap_stack[16384];

u64 address(const void* p) { return reinterpret_cast<u64>(p); }
u64 ap_stack_top() { return address(ap_stack + sizeof(ap_stack)); }

void ap_main() {
    wrmsr(svm::kMsrEfer, rdmsr(svm::kMsrEfer) | svm::kEferSvme);
    wrmsr(svm::kMsrVmHsavePa, address(host_save_area));
    svm::VmcbControl& c = vmcb.control;
    c.intercept_misc1 = svm::intercept1::init;
    c.intercept_misc2 = svm::intercept2::vmrun | svm::intercept2::vmmcall;
    c.guest_asid = 1;
    svm::copy_own_state(vmcb.save);
    vmcb.save.rip = address(l2_spin);
    vmcb.save.rsp = address(l2_stack + sizeof(l2_stack));
    svm::vmrun(&vmcb);  // GIF is clear after the #VMEXIT
    run_on_then([] { svm::stgi(); });
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    tsc_khz = cpuid(0x40000010).eax;
    enter_x2apic();
    if (!interrupt_l2(ap_main, ap_stack_top(), l2_spinning)) return 1;
    println("the AP's L2 took an INIT as #VMEXIT ", hex(vmcb.control.exit_code));
    const bool ok = vmcb.control.exit_code == svm::exit_code::init;
    const bool released =
        release_and_restart("the INIT waited while GIF was clear: the AP ran on: ", "STGI", ap_stack_top());
    return ok && released ? 0 : 1;
}
