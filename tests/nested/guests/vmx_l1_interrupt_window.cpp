// An L1 hypervisor on Intel VMX in a PC domain (nested.vmx_l1_interrupt_window): an interrupt of
// L1's arrives while L1 runs with interrupts off (a self-IPI), so L0 waits for L1's interrupt
// window; L1 then enters L2 injecting an event of its own, which goes before L1's interrupt; right
// after its delivery, before L2 runs an instruction of the event's handler, L1's interrupt is
// L1's VM exit, acknowledged on exit (not at L2's next exit of its own). The window L0 waited for is
// L1's, in L1's VMCS: once the exit took the interrupt, nothing waits, and L1 runs on with
// interrupts on (a window left open would exit before each of its instructions, forever).
#include "l2_counted_spin.hpp"
#include "nestor/apic.hpp"
#include "nestor/guest.hpp"
#include "nestor/vmx.hpp"
#include "nestor/x86_tables.hpp"

using namespace nestor::guest;
using namespace nestor::guest::apic;
namespace vmx = nestor::guest::vmx;
namespace iv = nestor::intel_vmx;

namespace {

constexpr u8 kL1Vector = 0x40;  // L1's self-IPI
constexpr u8 kL2Vector = 0x21;  // the interrupt L1 injects into L2
constexpr u64 kRflagsInterrupts = 0x202;

alignas(4096) u8 vmxon_region[4096];
alignas(4096) u8 vmcs[4096];
alignas(16) u8 l2_stack[8192];
alignas(16) nestor::guest::x86::IdtGate l2_idt[kL2Vector + 1];

u64 address(const void* p) { return reinterpret_cast<u64>(p); }

// L2's IDT: the gate of the injected vector alone (a 64-bit interrupt gate in L1's code segment).
void build_l2_idt() {
    l2_idt[kL2Vector] = nestor::guest::x86::interrupt_gate(address(l2_counted_handler), vmx::read_cs());
}

// Instructions with interrupts on: none of them may exit for a window nobody waits for.
u64 run_with_interrupts_on() {
    u64 steps = 0;
    asm volatile("sti" ::: "memory");
    for (int i = 0; i < 1000; ++i) {
        asm volatile("pause" ::: "memory");
        ++steps;
    }
    asm volatile("cli" ::: "memory");
    return steps;
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    asm volatile("cli" ::: "memory");
    if (!vmx::enter_vmx_operation(vmxon_region, vmcs)) return 1;
    enter_x2apic();
    wrmsr(kMsrX2apicIcr, kIcrSelf | kModeFixed | kL1Vector);  // pending: L1's interrupts are off
    vmx::write_64bit_controls(iv::pin::external_interrupt_exiting, 0, 0);
    vmx::vmwrite(iv::field::exit_controls, vmx::vmread(iv::field::exit_controls) | iv::exit_ctl::acknowledge_interrupt);
    vmx::write_own_host_state();
    vmx::write_own_guest_state(address(l2_spin), address(l2_stack + sizeof(l2_stack)));
    build_l2_idt();
    vmx::vmwrite(iv::field::guest_idtr_base, address(l2_idt));
    vmx::vmwrite(iv::field::guest_idtr_limit, sizeof(l2_idt) - 1);
    vmx::vmwrite(iv::field::guest_rflags, kRflagsInterrupts);
    vmx::vmwrite(iv::field::entry_interruption_info, iv::intr_info::valid | iv::intr_info::type_external | kL2Vector);
    if (u64 failed = vmx::enter(true)) {
        println("vmlaunch failed, error ", vmx::vmread(iv::field::instruction_error), ", flags ", hex(failed));
        return 1;
    }
    const u64 reason = vmx::vmread(iv::field::exit_reason);
    const u64 info = vmx::vmread(iv::field::exit_interruption_info);
    const u64 l2_rip = vmx::vmread(iv::field::guest_rip);
    const bool first = l2_rip == address(l2_counted_handler) && l2_handler_steps == 0;
    println("L1's interrupt during L2: exit reason ", reason, ", interruption info ", hex(info),
            ", at L2's handler: ", first ? "yes" : "no", ", its steps ", l2_handler_steps);
    wrmsr(kMsrX2apicEoi, 0);
    const u64 steps = run_with_interrupts_on();
    println("L1 with interrupts on: ", steps, " steps");
    const bool ok = reason == iv::exit_reason::external_interrupt && first &&
                    info == (iv::intr_info::valid | iv::intr_info::type_external | kL1Vector) && steps == 1000;
    println("done");
    return ok ? 0 : 1;
}
