// An L1 hypervisor on Intel VMX in a PC domain (nested.vmx_l2_takes_l1_nmi) that does not exit on
// NMIs: an NMI of L1's is its L2's to take through L2's IDT, as on the CPU. L2 sends itself an
// NMI (x2APIC ICR; L1's MSR bitmap lets the WRMSR through to L0's local APIC); its handler sends
// a second one while NMIs are blocked by the first, spins a while, and returns. The second must
// reach L2's handler as soon as its IRET ends the blocking (L0 waits for L2's NMI window), before
// L2's VMCALL a few instructions later, not with L2's next exit.
#include "nestor/apic.hpp"
#include "nestor/guest.hpp"
#include "nestor/vmx.hpp"
#include "nestor/x86_tables.hpp"

using namespace nestor::guest;
using namespace nestor::guest::apic;
namespace vmx = nestor::guest::vmx;
namespace iv = nestor::intel_vmx;

extern "C" char vmx_l2_two_nmis[], vmx_l2_nmi_handler[];
extern "C" volatile nestor::guest::u32 vmx_l2_nmis, vmx_l2_nmis_at_vmcall;
asm(R"(
    .pushsection .text
    .globl vmx_l2_two_nmis, vmx_l2_nmi_handler
vmx_l2_two_nmis:
    mov $0x830, %ecx
    mov $0x40400, %eax
    xor %edx, %edx
    wrmsr
    nop
    nop
    mov vmx_l2_nmis(%rip), %eax
    mov %eax, vmx_l2_nmis_at_vmcall(%rip)
    vmcall
1:  jmp 1b
vmx_l2_nmi_handler:
    push %rax
    push %rcx
    push %rdx
    lock incl vmx_l2_nmis(%rip)
    cmpl $1, vmx_l2_nmis(%rip)
    jne 3f
    mov $0x830, %ecx
    mov $0x40400, %eax
    xor %edx, %edx
    wrmsr
    mov $2000, %ecx
2:  pause
    loop 2b
3:  pop %rdx
    pop %rcx
    pop %rax
    iretq
    .popsection
    .pushsection .data
    .globl vmx_l2_nmis, vmx_l2_nmis_at_vmcall
    .balign 4
vmx_l2_nmis:
    .long 0
vmx_l2_nmis_at_vmcall:
    .long 0
    .popsection
)");
static_assert(kMsrX2apicIcr == 0x830 && (kIcrSelf | kIcrNmi) == 0x40400, "the WRMSRs of vmx_l2_two_nmis");

namespace {

constexpr u8 kVectorNmiGate = 2;

alignas(4096) u8 vmxon_region[4096];
alignas(4096) u8 vmcs[4096];
alignas(4096) u8 msr_bitmap[4096];  // all clear: L2's WRMSR reaches L0's local APIC
alignas(16) u8 l2_stack[8192];
alignas(16) nestor::guest::x86::IdtGate l2_idt[kVectorNmiGate + 1];

u64 address(const void* p) { return reinterpret_cast<u64>(p); }

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    if (!vmx::enter_vmx_operation(vmxon_region, vmcs)) return 1;
    enter_x2apic();
    vmx::write_64bit_controls(0, iv::primary::use_msr_bitmaps, 0);
    vmx::vmwrite(iv::field::msr_bitmap, address(msr_bitmap));
    vmx::write_own_host_state();
    vmx::write_own_guest_state(address(vmx_l2_two_nmis), address(l2_stack + sizeof(l2_stack)));
    l2_idt[kVectorNmiGate] = nestor::guest::x86::interrupt_gate(address(vmx_l2_nmi_handler), vmx::read_cs());
    vmx::vmwrite(iv::field::guest_idtr_base, address(l2_idt));
    vmx::vmwrite(iv::field::guest_idtr_limit, sizeof(l2_idt) - 1);
    if (u64 failed = vmx::enter(true)) {
        println("vmlaunch failed, error ", vmx::vmread(iv::field::instruction_error), ", flags ", hex(failed));
        return 1;
    }
    const u64 reason = vmx::vmread(iv::field::exit_reason);
    println("L2's exit reason ", reason,
            ", both NMIs taken by L2 before its VMCALL: ", vmx_l2_nmis_at_vmcall == 2 ? "yes" : "no",
            ", in all: ", vmx_l2_nmis);
    println("done");
    return reason == iv::exit_reason::vmcall && vmx_l2_nmis_at_vmcall == 2 && vmx_l2_nmis == 2 ? 0 : 1;
}
