// An L1 hypervisor in a PC domain and its NMIs (nested.l1_nmi): a self-NMI (x2APIC ICR, delivery
// mode NMI) sent while L1's GIF is clear waits for STGI; one L2 sends (L1 lets L2's ICR writes
// through) while L1 intercepts NMI is a #VMEXIT(NMI) into L1, after which the NMI, still pending,
// is L1's own once it sets GIF. Each NMI is taken by a probe, which reports it as the exception
// it is, wherever it arrives.
#include "l1_common.hpp"
#include "nestor/apic.hpp"

using namespace l1;
using namespace nestor::guest::apic;

extern "C" char l2_nmi_entry[];
asm(R"(
    .pushsection .text
    .globl l2_nmi_entry
l2_nmi_entry:
    mov $0x830, %ecx
    mov $0x40400, %eax
    xor %edx, %edx
    wrmsr
    mov $0xe0, %eax
    vmmcall
1:  hlt
    jmp 1b
    .popsection
)");

namespace {

constexpr u64 kIcrSelfNmi = kIcrSelf | kIcrNmi;
static_assert(kMsrX2apicIcr == 0x830 && kIcrSelfNmi == 0x40400, "l2_nmi_entry's WRMSR");

alignas(4096) svm::Vmcb vmcb;
L2Stack l2_stack;

// Long enough for any entry and exit in between to have delivered what was due.
void spin() {
    for (int i = 0; i < 1000; ++i) asm volatile("pause" ::: "memory");
}

const char* taken(const ExceptionRecord& r) { return r.raised ? exception_name(r.vector) : "nothing"; }

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    enable_svm();
    enter_x2apic();

    ExceptionRecord gif_clear = try_run([] {
        svm::clgi();
        wrmsr(kMsrX2apicIcr, kIcrSelfNmi);
        spin();
    });
    println("self-NMI with GIF clear: ", taken(gif_clear));
    ExceptionRecord after_stgi = try_run([] {
        svm::stgi();
        spin();
    });
    println("after STGI: ", taken(after_stgi));

    set_up_l2(vmcb, l2_nmi_entry, l2_stack);
    vmcb.control.intercept_misc1 |= svm::intercept1::nmi;
    ExceptionRecord from_l2 = try_run([] {
        svm::vmrun(&vmcb);
        spin();  // GIF clear after the #VMEXIT: the NMI waits
        svm::stgi();
        spin();
    });
    println("L2's self-NMI: exit ", hex(vmcb.control.exit_code, 1), ", then in L1 after STGI: ", taken(from_l2));

    const bool ok = !gif_clear.raised && after_stgi.vector == kVectorNMI &&
                    vmcb.control.exit_code == svm::exit_code::nmi && from_l2.vector == kVectorNMI;
    println("L2 done");
    return ok ? 0 : 1;
}
