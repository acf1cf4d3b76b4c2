// An L1 hypervisor on Intel VMX in a PC domain (nested.vmx_l2_takes_l1_interrupt) that does not
// exit on external interrupts: an interrupt of L1's (a self-IPI, pending while L1 runs with
// interrupts off) is its L2's to take through L2's IDT, as on the CPU. L2 runs a while with
// interrupts off, so L0 waits for L2's interrupt window, then sets IF and exits with VMCALL a few
// instructions later: the interrupt must reach L2's handler as soon as IF is set, before the
// VMCALL, not with L2's next exit.
#include "l2_late_sti.hpp"
#include "nestor/apic.hpp"
#include "nestor/guest.hpp"
#include "nestor/vmx.hpp"
#include "nestor/x86_tables.hpp"

using namespace nestor::guest;
using namespace nestor::guest::apic;
namespace vmx = nestor::guest::vmx;
namespace iv = nestor::intel_vmx;

NESTOR_L2_LATE_STI("vmcall");

namespace {

constexpr u8 kL1Vector = 0x41;  // L1's self-IPI, which L2 takes

alignas(4096) u8 vmxon_region[4096];
alignas(4096) u8 vmcs[4096];
alignas(4096) u8 msr_bitmap[4096];  // all clear: L2's EOI reaches L0's local APIC
alignas(16) u8 l2_stack[8192];
alignas(16) nestor::guest::x86::IdtGate l2_idt[kL1Vector + 1];

u64 address(const void* p) { return reinterpret_cast<u64>(p); }

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    asm volatile("cli" ::: "memory");
    if (!vmx::enter_vmx_operation(vmxon_region, vmcs)) return 1;
    enter_x2apic();
    wrmsr(kMsrX2apicIcr, kIcrSelf | kModeFixed | kL1Vector);  // pending: L1's interrupts are off
    vmx::write_64bit_controls(0, iv::primary::use_msr_bitmaps, 0);
    vmx::vmwrite(iv::field::msr_bitmap, address(msr_bitmap));
    vmx::write_own_host_state();
    vmx::write_own_guest_state(address(l2_late_sti), address(l2_stack + sizeof(l2_stack)));
    l2_idt[kL1Vector] = nestor::guest::x86::interrupt_gate(address(l2_interrupt_handler), vmx::read_cs());
    vmx::vmwrite(iv::field::guest_idtr_base, address(l2_idt));
    vmx::vmwrite(iv::field::guest_idtr_limit, sizeof(l2_idt) - 1);
    vmx::vmwrite(iv::field::guest_rflags, 0x2);  // interrupts off
    if (u64 failed = vmx::enter(true)) {
        println("vmlaunch failed, error ", vmx::vmread(iv::field::instruction_error), ", flags ", hex(failed));
        return 1;
    }
    const u64 reason = vmx::vmread(iv::field::exit_reason);
    println("L2's exit reason ", reason,
            ", L1's interrupt taken by L2 before its VMCALL: ", l2_interrupts_at_exit == 1 ? "yes" : "no",
            ", in all: ", l2_interrupts);
    println("done");
    return reason == iv::exit_reason::vmcall && l2_interrupts_at_exit == 1 && l2_interrupts == 1 ? 0 : 1;
}
