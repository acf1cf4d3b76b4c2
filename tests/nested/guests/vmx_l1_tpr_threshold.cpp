// An L1 hypervisor on Intel VMX in a PC domain (nested.vmx_l1_tpr_threshold): an interrupt of L1's
// waits behind L1's task priority (CR8 15, a self-IPI of class 4), so L0's TPR threshold in L1's
// VMCS is 4. L1 does not exit on external interrupts; its L2 lowers CR8 to 0 (L1's, through the
// virtual-APIC page they share), takes the interrupt through its own IDT and exits with VMCALL.
// The threshold L0 lowered while L2 ran is L1's VMCS's too: VM entry refuses a threshold above
// VTPR[7:4], so one left at 4 would fail L1's next entry.
#include "nestor/apic.hpp"
#include "nestor/guest.hpp"
#include "nestor/vmx.hpp"
#include "nestor/x86_tables.hpp"

using namespace nestor::guest;
using namespace nestor::guest::apic;
namespace vmx = nestor::guest::vmx;
namespace iv = nestor::intel_vmx;

// L2 lowers CR8 and spins; the interrupt's handler exits.
extern "C" char vmx_l2_tpr_lower[], vmx_l2_tpr_handler[];
asm(R"(
    .pushsection .text
    .globl vmx_l2_tpr_lower, vmx_l2_tpr_handler
vmx_l2_tpr_lower:
    xor %eax, %eax
    mov %rax, %cr8
1:  pause
    jmp 1b
vmx_l2_tpr_handler:
    vmcall
2:  jmp 2b
    .popsection
)");

namespace {

constexpr u8 kL1Vector = 0x40;  // L1's self-IPI, priority class 4
constexpr u64 kRflagsInterrupts = 0x202;

alignas(4096) u8 vmxon_region[4096];
alignas(4096) u8 vmcs[4096];
alignas(4096) u8 msr_bitmap[4096];  // all clear: no MSR access of L2 exits to L1
alignas(16) u8 l2_stack[8192];
alignas(16) nestor::guest::x86::IdtGate l2_idt[kL1Vector + 1];

u64 address(const void* p) { return reinterpret_cast<u64>(p); }

// L2's IDT: the gate of L1's vector alone (a 64-bit interrupt gate in L1's code segment).
void build_l2_idt() {
    l2_idt[kL1Vector] = nestor::guest::x86::interrupt_gate(address(vmx_l2_tpr_handler), vmx::read_cs());
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    asm volatile("cli" ::: "memory");
    if (!vmx::enter_vmx_operation(vmxon_region, vmcs)) return 1;
    enter_x2apic();
    asm volatile("mov %0, %%cr8" ::"r"(u64{15}) : "memory");
    wrmsr(kMsrX2apicIcr, kIcrSelf | kModeFixed | kL1Vector);  // pending: below L1's task priority
    vmx::write_64bit_controls(0, iv::primary::use_msr_bitmaps, 0);
    vmx::vmwrite(iv::field::msr_bitmap, address(msr_bitmap));
    vmx::write_own_host_state();
    vmx::write_own_guest_state(address(vmx_l2_tpr_lower), address(l2_stack + sizeof(l2_stack)));
    build_l2_idt();
    vmx::vmwrite(iv::field::guest_idtr_base, address(l2_idt));
    vmx::vmwrite(iv::field::guest_idtr_limit, sizeof(l2_idt) - 1);
    vmx::vmwrite(iv::field::guest_rflags, kRflagsInterrupts);
    if (u64 failed = vmx::enter(true)) {
        println("vmlaunch failed, error ", vmx::vmread(iv::field::instruction_error), ", flags ", hex(failed));
        return 1;
    }
    const u64 reason = vmx::vmread(iv::field::exit_reason);
    const u64 l2_rip = vmx::vmread(iv::field::guest_rip);
    const u64 cr8 = read_cr8();
    println("L2's exit reason ", reason,
            ", from its handler of L1's interrupt: ", l2_rip == address(vmx_l2_tpr_handler) ? "yes" : "no",
            ", L1's CR8 ", cr8);
    println("done");
    return reason == iv::exit_reason::vmcall && l2_rip == address(vmx_l2_tpr_handler) && cr8 == 0 ? 0 : 1;
}
