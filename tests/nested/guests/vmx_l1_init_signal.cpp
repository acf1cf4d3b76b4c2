// An L1 hypervisor on Intel VMX in a PC domain with two vCPUs (nested.vmx_l1_init_signal): its
// application processor enters VMX operation and runs an L2 that spins, and the BSP sends it
// INITs (SDM 25.2, 26.2). While L2 runs the INIT is a VM exit into L1 with reason 3, which takes
// it, its VM-exit MSR-store list storing the AP's own IA32_MTRR_DEF_TYPE (a device's MSR, not the
// BSP's, which differs); in VMX root operation the next one is blocked: the AP runs on, and only its VMXOFF lets the
// INIT in, after which the AP waits for a startup IPI, with which the BSP starts it again.
#include "ap_long_mode.hpp"
#include "ap_steps.hpp"
#include "nestor/vmx.hpp"

namespace vmx = nestor::guest::vmx;
namespace iv = nestor::intel_vmx;
using namespace ap_long_mode;
using namespace ap_steps;

// L2 says it runs, then spins without an exit of L1's.
extern "C" char vmx_l2_spin[];
extern "C" volatile nestor::guest::u32 vmx_l2_spinning;
asm(R"(
    .pushsection .text
    .globl vmx_l2_spin
vmx_l2_spin:
    movl $1, vmx_l2_spinning(%rip)
1:  jmp 1b
    .popsection
    .pushsection .data
    .globl vmx_l2_spinning
    .balign 4
vmx_l2_spinning:
    .long 0
    .popsection
)");

namespace {

alignas(4096) u8 vmxon_region[4096];
alignas(4096) u8 vmcs[4096];
alignas(16) u8 l2_stack[8192];
alignas(16) u8 ap_stack[16384];
alignas(16) u64 exit_store[2] = {nestor::x86_regs::kMsrMtrrDefType, 0};  // index, value
volatile u64 exit_reason = 0;
constexpr u64 kBspDefType = 0x806, kApDefType = 0xC06;

u64 address(const void* p) { return reinterpret_cast<u64>(p); }
u64 ap_stack_top() { return address(ap_stack + sizeof(ap_stack)); }

void ap_main() {
    if (!vmx::enter_vmx_operation(vmxon_region, vmcs)) {
        step = kFailed;
        halt_forever();
    }
    wrmsr(nestor::x86_regs::kMsrMtrrDefType, kApDefType);
    vmx::write_64bit_controls(0, 0, 0);
    vmx::vmwrite(iv::field::exit_msr_store_address, address(exit_store));
    vmx::vmwrite(iv::field::exit_msr_store_count, 1);
    vmx::write_own_host_state();
    vmx::write_own_guest_state(address(vmx_l2_spin), address(l2_stack + sizeof(l2_stack)));
    if (vmx::enter(true)) {
        step = kFailed;
        halt_forever();
    }
    exit_reason = vmx::vmread(iv::field::exit_reason);
    run_on_then([] { asm volatile("vmxoff" ::: "memory", "cc"); });
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    tsc_khz = cpuid(0x40000010).eax;
    enter_x2apic();
    wrmsr(nestor::x86_regs::kMsrMtrrDefType, kBspDefType);
    if (!interrupt_l2(ap_main, ap_stack_top(), vmx_l2_spinning)) return 1;
    println("the AP's L2 took an INIT as VM exit reason ", exit_reason);
    println("its VM-exit MSR-store list holds the AP's IA32_MTRR_DEF_TYPE: ", yes(exit_store[1] == kApDefType));
    const bool ok = exit_reason == iv::exit_reason::init_signal && exit_store[1] == kApDefType;
    ap_long_mode::send_init(1);
    const bool released =
        release_and_restart("an INIT in VMX root operation waited: the AP ran on: ", "VMXOFF", ap_stack_top());
    return ok && released ? 0 : 1;
}
