// An L1 hypervisor on Intel VMX in a PC domain (nested.vmx_l1_nmi): its L2 sends an NMI to the
// vCPU (x2APIC ICR, self, delivery mode NMI; L1's MSR bitmap lets L2's WRMSR through to L0's
// local APIC). With L1's NMI exiting the NMI is L1's VM exit, reason 0 with the NMI in its
// interruption information, which takes it: L1 itself then sees none.
#include "nestor/apic.hpp"
#include "nestor/guest.hpp"
#include "nestor/vmx.hpp"

using namespace nestor::guest;
using namespace nestor::guest::apic;
namespace vmx = nestor::guest::vmx;
namespace iv = nestor::intel_vmx;

extern "C" char vmx_l2_nmi_entry[];
asm(R"(
    .pushsection .text
    .globl vmx_l2_nmi_entry
vmx_l2_nmi_entry:
    mov $0x830, %ecx
    mov $0x40400, %eax
    xor %edx, %edx
    wrmsr
    vmcall
1:  hlt
    jmp 1b
    .popsection
)");
static_assert(kMsrX2apicIcr == 0x830 && (kIcrSelf | kIcrNmi) == 0x40400, "vmx_l2_nmi_entry's WRMSR");

namespace {

alignas(4096) u8 vmxon_region[4096];
alignas(4096) u8 vmcs[4096];
alignas(4096) u8 msr_bitmap[4096];  // all clear: no MSR access of L2 exits to L1
alignas(16) u8 l2_stack[8192];

u64 address(const void* p) { return reinterpret_cast<u64>(p); }

// Long enough for any entry and exit in between to have delivered what was due.
void spin() {
    for (int i = 0; i < 1000; ++i) asm volatile("pause" ::: "memory");
}

u64 entry_result = 0;

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    if (!vmx::enter_vmx_operation(vmxon_region, vmcs)) return 1;
    enter_x2apic();
    vmx::write_64bit_controls(iv::pin::nmi_exiting, iv::primary::use_msr_bitmaps, 0);
    vmx::vmwrite(iv::field::msr_bitmap, address(msr_bitmap));
    vmx::write_own_host_state();
    vmx::write_own_guest_state(address(vmx_l2_nmi_entry), address(l2_stack + sizeof(l2_stack)));
    ExceptionRecord in_l1 = try_run([] {
        entry_result = vmx::enter(true);
        spin();
    });
    if (entry_result) {
        println("vmlaunch failed, error ", vmx::vmread(iv::field::instruction_error));
        return 1;
    }
    const u64 reason = vmx::vmread(iv::field::exit_reason);
    const u64 info = vmx::vmread(iv::field::exit_interruption_info);
    println("L2's self-NMI: exit reason ", reason, ", interruption info ", hex(info),
            ", in L1 after it: ", in_l1.raised ? exception_name(in_l1.vector) : "nothing");
    const bool ok = reason == iv::exit_reason::exception_or_nmi &&
                    info == (iv::intr_info::valid | iv::intr_info::type_nmi | kVectorNMI) && !in_l1.raised;
    println("done");
    return ok ? 0 : 1;
}
