// An L1 hypervisor on Intel VMX that runs an L2 (nested.vmx_l2_runs). L2 is code of the L1 image,
// on L1's page tables, and exits to L1 through what L1 intercepts: CPUID (always), OUT
// (unconditional I/O exiting), HLT, VMCALL, #UD (the exception bitmap). L1 prints each exit's
// reason, instruction length and qualification as it reads them from its VMCS, steps over the
// instruction and resumes L2 with VMRESUME. First without EPT (L2's physical addresses are
// L1's), then under an EPT of L1's own that shows L2 a page of L1's at L2-physical 0x40000000
// and leaves 0x40001000 unmapped until L2's read of it exits as an EPT violation. A VMLAUNCH with
// an activity state that is not offered fails as the SDM says: a VM exit with reason 0x80000021.
#include "nestor/guest.hpp"
#include "nestor/vmx.hpp"

using namespace nestor::guest;
namespace vmx = nestor::guest::vmx;
namespace iv = nestor::intel_vmx;

// L2's code. Each routine ends in exits L1 intercepts. An access L1 resumes after an EPT
// violation uses no register but RAX's result: L1 resumes L2 with its own registers.
#define VMX_L2_DATA 0x40000000
#define VMX_L2_LATE 0x40001000
#define VMX_L2_MAGIC 0x6c32207772697465  // "etirw 2l"
extern "C" char vmx_l2_basic[], vmx_l2_ept[], vmx_l2_stack_top[];
extern "C" u64 vmx_l2_shared;
asm(R"(
    .text
    .globl vmx_l2_basic, vmx_l2_ept
vmx_l2_basic:
    xor %eax, %eax
    cpuid
    mov $0x2a, %al
    out %al, $0x80
    hlt
    movabs $)"
    "0x6c32207772697465"
    R"(, %rax
    mov %rax, vmx_l2_shared(%rip)
    vmcall
    ud2
1:  jmp 1b
vmx_l2_ept:
    movabs $)"
    "0x6c32207772697465"
    R"(, %rax
    movabs %rax, )"
    "0x40000000"
    R"(
    vmcall
    movabs )"
    "0x40001000"
    R"(, %rax
    movabs %rax, )"
    "0x40000008"
    R"(
    vmcall
2:  jmp 2b

    .bss
    .balign 16
    .skip 8192
    .globl vmx_l2_stack_top
vmx_l2_stack_top:
    .data
    .balign 8
    .globl vmx_l2_shared
vmx_l2_shared: .quad 0
    .text
)");

namespace {

alignas(4096) u8 vmxon_region[4096];
alignas(4096) u8 vmcs[4096];
// L1's EPT for L2: 16 MiB of L1 identity-mapped in 2 MiB pages, and one page table at 1 GiB.
alignas(4096) u64 ept_pml4[512];
alignas(4096) u64 ept_pdpt[512];
alignas(4096) u64 ept_pd_low[512];
alignas(4096) u64 ept_pd_high[512];
alignas(4096) u64 ept_pt[512];
alignas(4096) u64 l2_data[512];  // L2-physical VMX_L2_DATA
alignas(4096) u64 l2_late[512];  // L2-physical VMX_L2_LATE, mapped on its EPT violation

constexpr u64 kEptRwx = iv::ept::read | iv::ept::write | iv::ept::execute;
constexpr u64 kEptWb = iv::ept::memory_type_wb << iv::ept::memory_type_shift;
u64 address(const void* p) { return reinterpret_cast<u64>(p); }

// HLT and every I/O exit, #UD in the exception bitmap; L1's EPT when `ept`.
void write_controls(bool ept) {
    vmx::write_64bit_controls(0, iv::primary::hlt_exiting | iv::primary::unconditional_io_exiting,
                              ept ? iv::secondary::enable_ept : 0);
    vmx::vmwrite(iv::field::ept_pointer, address(ept_pml4) | iv::ept::memory_type_wb | (3u << 3));
    vmx::vmwrite(iv::field::exception_bitmap, 1u << kVectorUD);
}

void prepare(const char* rip, bool ept) {
    write_controls(ept);
    vmx::write_own_host_state();
    vmx::write_own_guest_state(address(rip), address(vmx_l2_stack_top));
}

void build_ept() {
    ept_pml4[0] = address(ept_pdpt) | kEptRwx;
    ept_pdpt[0] = address(ept_pd_low) | kEptRwx;
    ept_pdpt[1] = address(ept_pd_high) | kEptRwx;
    for (u64 i = 0; i < 8; ++i) ept_pd_low[i] = (i << 21) | kEptRwx | kEptWb | iv::ept::large_page;
    ept_pd_high[0] = address(ept_pt) | kEptRwx;
    ept_pt[0] = address(l2_data) | kEptRwx | kEptWb;
}

// One VM entry of L2 (launch or resume) and its exit, read back; false if the entry failed.
bool run(bool launch, const char* what) {
    u64 result = vmx::enter(launch);
    if (result) {
        println(what, ": VM entry failed, rflags ", hex(result & 0xFFFFFFFF), ", error ",
                vmx::vmread(iv::field::instruction_error));
        return false;
    }
    return true;
}

u32 exit_reason() { return static_cast<u32>(vmx::vmread(iv::field::exit_reason)); }
u64 exit_length() { return vmx::vmread(iv::field::exit_instruction_length); }
void step_over() { vmx::skip_instruction(); }
u64 vmread(u32 field) { return vmx::vmread(field); }

void report_exit(const char* what) {
    println(what, ": exit reason ", exit_reason(), ", length ", exit_length(), ", qualification ",
            hex(vmread(iv::field::exit_qualification)));
}

void basic_l2() {
    prepare(vmx_l2_basic, false);
    vmx::vmwrite(iv::field::guest_activity_state, 1);  // HLT: not offered
    if (!run(true, "vmlaunch with activity state hlt")) return;
    println("vmlaunch with activity state hlt: exit reason ", hex(exit_reason()), ", guest rip unchanged ",
            vmread(iv::field::guest_rip) == address(vmx_l2_basic) ? "yes" : "no");
    vmx::vmwrite(iv::field::guest_activity_state, 0);
    if (!run(true, "vmlaunch")) return;
    report_exit("l2 cpuid");
    step_over();
    if (!run(false, "vmresume")) return;
    report_exit("l2 out");
    step_over();
    if (!run(false, "vmresume")) return;
    report_exit("l2 hlt");
    step_over();
    if (!run(false, "vmresume")) return;
    report_exit("l2 vmcall");
    println("l2 wrote: ", vmx_l2_shared == VMX_L2_MAGIC ? "yes" : "no");
    step_over();
    if (!run(false, "vmresume")) return;
    println("l2 ud2: exit reason ", exit_reason(), ", interruption info ",
            hex(vmread(iv::field::exit_interruption_info)));
}

void ept_l2() {
    build_ept();
    if (!vmx::succeeded(vmx::vmclear(address(vmcs))) || !vmx::succeeded(vmx::vmptrld(address(vmcs)))) return;
    prepare(vmx_l2_ept, true);
    if (!run(true, "vmlaunch with ept")) return;
    report_exit("ept l2 vmcall");
    println("l2 wrote through l1's ept: ", l2_data[0] == VMX_L2_MAGIC ? "yes" : "no");
    step_over();
    l2_late[0] = 0x1a7e;
    if (!run(false, "vmresume")) return;
    println("ept violation: exit reason ", exit_reason(), ", qualification read ",
            vmread(iv::field::exit_qualification) & 7, ", rights ", (vmread(iv::field::exit_qualification) >> 3) & 7,
            ", guest-physical ", hex(vmread(iv::field::guest_physical_address)));
    ept_pt[1] = address(l2_late) | kEptRwx | kEptWb;  // mapped now: L2 runs the read again
    if (!run(false, "vmresume")) return;
    report_exit("ept l2 vmcall after the remap");
    println("l2 read through the new mapping: ", hex(l2_data[1]));
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    if (!vmx::enter_vmx_operation(vmxon_region, vmcs)) return 1;
    basic_l2();
    ept_l2();
    println("done");
    return 0;
}
