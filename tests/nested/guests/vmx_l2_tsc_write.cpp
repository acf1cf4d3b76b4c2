// An L1 hypervisor on Intel VMX in a PC domain (nested.vmx_l2_tsc_write): L1 offsets its L2's TSC
// and lets L2's WRMSR through (its MSR bitmap all clear), so L2's write to IA32_TSC sets the TSC
// of the machine L1 runs on, the domain's. L2 then reads the value it wrote plus L1's offset, and
// L1, after L2's VMCALL, the value L2 wrote: the domain's TSC moved for both levels at once.
#include "nestor/guest.hpp"
#include "nestor/vmx.hpp"

using namespace nestor::guest;
namespace vmx = nestor::guest::vmx;
namespace iv = nestor::intel_vmx;

// L2 writes IA32_TSC (0x10) = 1 << 40, reads its TSC into vmx_l2_tsc_read and exits.
extern "C" char vmx_l2_tsc_write[];
extern "C" u64 vmx_l2_tsc_read;
asm(R"(
    .pushsection .text
    .globl vmx_l2_tsc_write
vmx_l2_tsc_write:
    mov $0x10, %ecx
    xor %eax, %eax
    mov $0x100, %edx
    wrmsr
    rdtsc
    mov %eax, vmx_l2_tsc_read(%rip)
    mov %edx, vmx_l2_tsc_read+4(%rip)
    vmcall
1:  jmp 1b
    .popsection
    .pushsection .data
    .globl vmx_l2_tsc_read
    .balign 8
vmx_l2_tsc_read:
    .quad 0
    .popsection
)");

namespace {

constexpr u64 kWritten = u64{1} << 40;       // what L2 writes to IA32_TSC
constexpr u64 kL1Offset = u64{1} << 44;      // L1's TSC offset for L2
constexpr u64 kLongestWhile = u64{1} << 32;  // far more ticks than L2's and L1's few instructions take
static_assert(nestor::x86_regs::kMsrTsc == 0x10 && (kWritten >> 32) == 0x100, "vmx_l2_tsc_write's WRMSR");

alignas(4096) u8 vmxon_region[4096];
alignas(4096) u8 vmcs[4096];
alignas(4096) u8 msr_bitmap[4096];  // all clear: no MSR access of L2 exits to L1
alignas(16) u8 l2_stack[8192];

u64 address(const void* p) { return reinterpret_cast<u64>(p); }

// `value` is `from` or a little more.
bool just_after(u64 value, u64 from) { return value >= from && value - from < kLongestWhile; }

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    if (!vmx::enter_vmx_operation(vmxon_region, vmcs)) return 1;
    vmx::write_64bit_controls(0, iv::primary::use_msr_bitmaps | iv::primary::use_tsc_offsetting, 0);
    vmx::vmwrite(iv::field::msr_bitmap, address(msr_bitmap));
    vmx::vmwrite(iv::field::tsc_offset, kL1Offset);
    vmx::write_own_host_state();
    vmx::write_own_guest_state(address(vmx_l2_tsc_write), address(l2_stack + sizeof(l2_stack)));
    if (u64 failed = vmx::enter(true)) {
        println("vmlaunch failed, error ", vmx::vmread(iv::field::instruction_error), ", flags ", hex(failed));
        return 1;
    }
    const u64 l1_tsc = rdtsc();
    const u64 reason = vmx::vmread(iv::field::exit_reason);
    const bool l2_ok = just_after(vmx_l2_tsc_read, kWritten + kL1Offset);
    const bool l1_ok = just_after(l1_tsc, kWritten);
    println("L2's exit reason ", reason);
    println("L2's TSC after its write: the value written plus L1's offset: ", l2_ok ? "yes" : "no");
    println("L1's TSC then: the value L2 wrote: ", l1_ok ? "yes" : "no");
    if (!l2_ok || !l1_ok) println("L2 read ", hex(vmx_l2_tsc_read), ", L1 read ", hex(l1_tsc));
    println("done");
    return reason == iv::exit_reason::vmcall && l2_ok && l1_ok ? 0 : 1;
}
