// An L1 hypervisor in a PC domain (nested.l2_takes_l1_interrupt) that neither intercepts INTR nor
// sets V_INTR_MASKING: an interrupt of L1's (a self-IPI, pending while L1 runs with interrupts
// off) is its L2's to take through L2's IDT when L2's IF allows, as on the CPU. L2 runs a while
// with interrupts off, so L0 waits for L2's interrupt window, then sets IF and exits with VMMCALL
// a few instructions later: the interrupt must reach L2's handler as soon as IF is set, before the
// VMMCALL, not with L2's next exit.
#include "l1_common.hpp"
#include "l2_late_sti.hpp"
#include "nestor/apic.hpp"
#include "nestor/x86_tables.hpp"

using namespace l1;
using namespace nestor::guest::apic;

NESTOR_L2_LATE_STI("vmmcall");

namespace {

constexpr u8 kL1Vector = 0x41;  // L1's self-IPI, which L2 takes

alignas(4096) svm::Vmcb vmcb;
L2Stack l2_stack;
alignas(16) nestor::guest::x86::IdtGate l2_idt[kL1Vector + 1];

u64 address(const void* p) { return reinterpret_cast<u64>(p); }

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    asm volatile("cli" ::: "memory");
    enable_svm();
    enter_x2apic();
    wrmsr(kMsrX2apicIcr, kIcrSelf | kModeFixed | kL1Vector);  // pending: L1's interrupts are off
    set_up_l2(vmcb, l2_late_sti, l2_stack);
    l2_idt[kL1Vector] = nestor::guest::x86::interrupt_gate(address(l2_interrupt_handler), vmcb.save.cs.selector);
    vmcb.save.idtr.base = address(l2_idt);
    vmcb.save.idtr.limit = sizeof(l2_idt) - 1;
    vmcb.save.rflags = 0x2;  // interrupts off
    const u64 code = run(vmcb);
    println("L2's exit ", hex(code, 1),
            ", L1's interrupt taken by L2 before its VMMCALL: ", l2_interrupts_at_exit == 1 ? "yes" : "no",
            ", in all: ", l2_interrupts);
    println("L2 done");
    return code == svm::exit_code::vmmcall && l2_interrupts_at_exit == 1 && l2_interrupts == 1 ? 0 : 1;
}
