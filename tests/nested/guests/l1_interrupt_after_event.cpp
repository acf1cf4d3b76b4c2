// An L1 hypervisor in a PC domain (nested.l1_interrupt_after_event) with an interrupt of its own
// pending (a self-IPI sent while its GIF is clear) runs its L2 with INTR intercepted and an
// event to inject (EVENTINJ: an external interrupt through L2's own IDT). The injected event goes
// first, as on the CPU; the #VMEXIT(INTR) must come right after its delivery, at L2's handler
// before it has run more than a few instructions (the time L0's one-tick timer takes), not when L2
// exits on its own: the handler spins for good. After STGI the interrupt is L1's own.
#include "l1_common.hpp"
#include "l2_counted_spin.hpp"
#include "nestor/apic.hpp"
#include "nestor/x86_tables.hpp"

using namespace l1;
using namespace nestor::guest::apic;

namespace {

constexpr u8 kL1Vector = 0x40;  // L1's self-IPI
constexpr u8 kL2Vector = 0x21;  // the interrupt L1 injects into L2
// A few of the handler's loops: the timer L0 arms for the exit takes some instructions to expire;
// L2 left to run until its own next exit would loop for a whole time slice of L0's.
constexpr u32 kFewSteps = 100;

alignas(4096) svm::Vmcb vmcb;
L2Stack l2_stack;
alignas(16) nestor::guest::x86::IdtGate l2_idt[kL2Vector + 1];
volatile u32 l1_interrupts = 0;

void on_l1_interrupt(u8) {
    l1_interrupts = l1_interrupts + 1;
    wrmsr(kMsrX2apicEoi, 0);
}

u64 address(const void* p) { return reinterpret_cast<u64>(p); }

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    set_interrupt_handler(kL1Vector, on_l1_interrupt);
    enable_svm();
    enter_x2apic();
    svm::clgi();
    enable_interrupts();
    wrmsr(kMsrX2apicIcr, kIcrSelf | kModeFixed | kL1Vector);  // pending: GIF is clear

    set_up_l2(vmcb, l2_spin, l2_stack);
    l2_idt[kL2Vector] = nestor::guest::x86::interrupt_gate(address(l2_counted_handler), vmcb.save.cs.selector);
    vmcb.save.idtr.base = address(l2_idt);
    vmcb.save.idtr.limit = sizeof(l2_idt) - 1;
    vmcb.save.rflags |= 1u << 9;
    vmcb.control.intercept_misc1 = svm::intercept1::intr;
    vmcb.control.int_ctl = svm::int_ctl::v_intr_masking;
    vmcb.control.event_inject = svm::event::make(kL2Vector, svm::event::type_intr);
    // A time slice of L1's own for L2 to begin in: one near its end would end at once anyway.
    if (!yield().ok()) return 1;
    svm::vmrun(&vmcb);
    const u64 code = vmcb.control.exit_code;
    const u32 steps = l2_handler_steps;
    const u64 rip = vmcb.save.rip;
    const bool in_handler = rip >= address(l2_counted_handler) && rip < address(l2_counted_handler) + 16;
    const bool soon = in_handler && steps < kFewSteps;
    println("L1's interrupt after the injected event: exit ", hex(code, 1), ", in L2's handler after under ", kFewSteps,
            " steps: ", soon ? "yes" : "no", " (", steps, ")");
    println("before stgi: ", l1_interrupts, " interrupts");
    svm::stgi();
    for (int i = 0; i < 1000 && l1_interrupts == 0; ++i) asm volatile("pause" ::: "memory");
    println("after stgi: ", l1_interrupts, " interrupts");
    println("L2 done");
    return code == svm::exit_code::intr && soon && l1_interrupts == 1 ? 0 : 1;
}
