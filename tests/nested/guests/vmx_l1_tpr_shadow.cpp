// An L1 hypervisor on Intel VMX in a PC domain that gives its L2 a TPR shadow
// (nested.vmx_l1_tpr_shadow). First the VM-entry checks of the TPR shadow, each alone: an
// unaligned virtual-APIC page, threshold bits 31:4, a threshold above VTPR[7:4]: VMfailValid(7).
// Then L2 runs with CR8 in L1's page: it reads VTPR's class, writes CR8 7 and 3 (neither below
// L1's threshold 3, and 3 is below L0's own threshold 4 for L1: that one must not exit), then 1,
// which exits to L1 with reason 43 after the MOV. L2's CR8 is not L1's task priority: L1's own
// CR8 stays 15, and L1's self-IPI of class 4, pending behind it, is neither taken by L2 nor lost.
// A VMRESUME with the threshold still above the new VTPR fails; with it lowered L2 reads CR8 1
// and exits with VMCALL.
#include "nestor/apic.hpp"
#include "nestor/arch/apic_regs.hpp"
#include "nestor/guest.hpp"
#include "nestor/vmx.hpp"
#include "nestor/x86_tables.hpp"

using namespace nestor::guest;
using namespace nestor::guest::apic;
namespace vmx = nestor::guest::vmx;
namespace iv = nestor::intel_vmx;
namespace ar = nestor::apic_regs;

extern "C" char vmx_l2_tpr_shadow[], vmx_l2_after_cr8_1[], vmx_l2_tpr_shadow_handler[];
extern "C" u64 l2_cr8_first, l2_cr8_second, l2_cr8_third, l2_cr8_last;
asm(R"(
    .pushsection .data
    .globl l2_cr8_first, l2_cr8_second, l2_cr8_third, l2_cr8_last
l2_cr8_first:  .quad 0xFF
l2_cr8_second: .quad 0xFF
l2_cr8_third:  .quad 0xFF
l2_cr8_last:   .quad 0xFF
    .popsection
    .pushsection .text
    .globl vmx_l2_tpr_shadow, vmx_l2_after_cr8_1, vmx_l2_tpr_shadow_handler
vmx_l2_tpr_shadow:
    mov %cr8, %rax
    mov %rax, l2_cr8_first(%rip)
    mov $7, %ecx
    mov %rcx, %cr8
    mov %cr8, %rax
    mov %rax, l2_cr8_second(%rip)
    mov $3, %ecx
    mov %rcx, %cr8
    mov %cr8, %rax
    mov %rax, l2_cr8_third(%rip)
    mov $1, %ecx
    mov %rcx, %cr8
vmx_l2_after_cr8_1:
    mov %cr8, %rax
    mov %rax, l2_cr8_last(%rip)
    vmcall
1:  jmp 1b
vmx_l2_tpr_shadow_handler:
    vmcall
2:  jmp 2b
    .popsection
)");

namespace {

constexpr u8 kL1Vector = 0x40;  // L1's self-IPI, priority class 4
constexpr u64 kRflagsInterrupts = 0x202;
constexpr u8 kVtprClass5 = 0x50;
constexpr u32 kL1Threshold = 3;
constexpr u32 kVmfailInvalidControl = 7;

alignas(4096) u8 vmxon_region[4096];
alignas(4096) u8 vmcs[4096];
alignas(4096) u8 msr_bitmap[4096];  // all clear: no MSR access of L2 exits to L1
alignas(4096) u8 virtual_apic[4096];
alignas(16) u8 l2_stack[8192];
alignas(16) nestor::guest::x86::IdtGate l2_idt[kL1Vector + 1];

u64 address(const void* p) { return reinterpret_cast<u64>(p); }
u8 vtpr() { return *static_cast<volatile u8*>(virtual_apic + ar::kXapicTpr); }
void set_vtpr(u8 value) { *static_cast<volatile u8*>(virtual_apic + ar::kXapicTpr) = value; }

// Whether L1's vector is still requested in its IRR (x2APIC: eight 32-bit registers).
bool l1_vector_pending() {
    const u32 irr = ar::x2apic_msr(ar::kXapicIrr + (kL1Vector / 32) * ar::kRegisterStride);
    return (rdmsr(irr) >> (kL1Vector % 32)) & 1;
}

// VMLAUNCH with one TPR-shadow field changed from its good value: must fail with error 7.
bool launch_fails(const char* what, u32 field, u64 bad, u64 good) {
    vmx::vmwrite(field, bad);
    const u64 failed = vmx::enter(true);
    const u64 error = vmx::vmread(iv::field::instruction_error);
    vmx::vmwrite(field, good);
    const bool ok = failed && error == kVmfailInvalidControl;
    println(what, ": ", ok ? "VMfailValid(7)" : "WRONG", ", error ", error);
    return ok;
}

void build_l2() {
    l2_idt[kL1Vector] = nestor::guest::x86::interrupt_gate(address(vmx_l2_tpr_shadow_handler), vmx::read_cs());
    vmx::write_64bit_controls(0, iv::primary::use_msr_bitmaps | iv::primary::use_tpr_shadow, 0);
    vmx::vmwrite(iv::field::msr_bitmap, address(msr_bitmap));
    vmx::vmwrite(iv::field::virtual_apic_page_address, address(virtual_apic));
    vmx::vmwrite(iv::field::tpr_threshold, kL1Threshold);
    vmx::write_own_host_state();
    vmx::write_own_guest_state(address(vmx_l2_tpr_shadow), address(l2_stack + sizeof(l2_stack)));
    vmx::vmwrite(iv::field::guest_idtr_base, address(l2_idt));
    vmx::vmwrite(iv::field::guest_idtr_limit, sizeof(l2_idt) - 1);
    vmx::vmwrite(iv::field::guest_rflags, kRflagsInterrupts);
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    asm volatile("cli" ::: "memory");
    if (!vmx::enter_vmx_operation(vmxon_region, vmcs)) return 1;
    const bool offered = (rdmsr(iv::vmx_msr::vmx_true_procbased_ctls) >> 32) & iv::primary::use_tpr_shadow;
    println("use tpr shadow allowed: ", offered ? 1 : 0);
    enter_x2apic();
    asm volatile("mov %0, %%cr8" ::"r"(u64{15}) : "memory");
    wrmsr(kMsrX2apicIcr, kIcrSelf | kModeFixed | kL1Vector);  // pending: below L1's task priority
    build_l2();
    set_vtpr(kVtprClass5);
    bool checks = launch_fails("virtual-apic page unaligned", iv::field::virtual_apic_page_address,
                               address(virtual_apic) + 0x10, address(virtual_apic));
    checks &= launch_fails("tpr threshold 0x13", iv::field::tpr_threshold, 0x13, kL1Threshold);
    checks &= launch_fails("tpr threshold 6 above vtpr 0x50", iv::field::tpr_threshold, 6, kL1Threshold);

    if (u64 failed = vmx::enter(true)) {
        println("vmlaunch failed, error ", vmx::vmread(iv::field::instruction_error), ", flags ", hex(failed));
        return 1;
    }
    u64 reason = vmx::vmread(iv::field::exit_reason);
    const bool after_mov = vmx::vmread(iv::field::guest_rip) == address(vmx_l2_after_cr8_1);
    println("L2's exit reason ", reason, " after its MOV to CR8 below ", kL1Threshold, ": ", after_mov ? "yes" : "no",
            ", VTPR ", hex(vtpr()), ", L2 read CR8 ", l2_cr8_first, ", ", l2_cr8_second, ", ", l2_cr8_third,
            ", L1's CR8 ", read_cr8());
    const bool below = reason == iv::exit_reason::tpr_below_threshold && after_mov && vtpr() == 0x10 &&
                       l2_cr8_first == 5 && l2_cr8_second == 7 && l2_cr8_third == 3 && read_cr8() == 15;

    // VTPR class 1 is below the threshold now: the entry fails until L1 lowers it.
    const u64 refused = vmx::enter(false);
    const u64 error = vmx::vmread(iv::field::instruction_error);
    println("vmresume with the threshold above vtpr: ",
            refused && error == kVmfailInvalidControl ? "VMfailValid(7)" : "WRONG");
    vmx::vmwrite(iv::field::tpr_threshold, 0);
    if (u64 failed = vmx::enter(false)) {
        println("vmresume failed, error ", vmx::vmread(iv::field::instruction_error), ", flags ", hex(failed));
        return 1;
    }
    reason = vmx::vmread(iv::field::exit_reason);
    const bool in_handler = vmx::vmread(iv::field::guest_rip) == address(vmx_l2_tpr_shadow_handler);
    const bool pending = l1_vector_pending();
    println("L2's exit reason ", reason, ", L2 read CR8 ", l2_cr8_last,
            ", L1's interrupt taken by L2: ", in_handler ? "yes" : "no",
            ", still pending for L1: ", pending ? "yes" : "no");
    println("done");
    const bool end = reason == iv::exit_reason::vmcall && l2_cr8_last == 1 && !in_handler && pending;
    return offered && checks && below && refused && error == kVmfailInvalidControl && end ? 0 : 1;
}
