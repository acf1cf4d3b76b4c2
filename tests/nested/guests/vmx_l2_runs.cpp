// An L1 hypervisor on Intel VMX that runs an L2 (nested.vmx_l2_runs). L2 is code of the L1 image,
// on L1's page tables, and exits to L1 through what L1 intercepts: CPUID (always), OUT
// (unconditional I/O exiting), HLT, VMCALL, #UD (the exception bitmap). L1 prints each exit's
// reason, instruction length and qualification as it reads them from its VMCS, steps over the
// instruction and resumes L2 with VMRESUME. First without EPT (L2's physical addresses are
// L1's), then under an EPT of L1's own that shows L2 a page of L1's at L2-physical 0x40000000
// and leaves 0x40001000 unmapped until L2's read of it exits as an EPT violation. A VMLAUNCH with
// an activity state that is not offered fails as the SDM says: a VM exit with reason 0x80000021.
// Then L1's VMX-preemption timer: L2 spinning for longer than L0's own time slice exits with
// reason 52 once the whole timer ran, and an earlier exit saves what is left; and the MSR lists:
// the VM-entry MSR-load list sets LSTAR and EFER, which L2 reads (L1's MSR bitmap lets it), the
// VM-exit MSR-store list records them and the VM-exit MSR-load list gives L1 its own back; an entry naming
// FS base fails the entry with reason 0x80000022 and the entry's number. Last, L1 leaves every
// CR0 / CR4 bit to L2 (masks 0): L2 clearing CR4.VMXE or CR0.NE, which VMX operation fixes to 1
// and L0 owns, gets #GP(0) with nothing changed: as L1's exit when its exception bitmap takes #GP,
// else through L2's own IDT. Then an L2 in 32-bit PAE paging without L1's EPT, whose PDPTEs come
// from memory at its CR3.
#include "nestor/guest.hpp"
#include "nestor/vmx.hpp"
#include "nestor/x86_tables.hpp"

using namespace nestor::guest;
namespace vmx = nestor::guest::vmx;
namespace iv = nestor::intel_vmx;

// L2's code. Each routine ends in exits L1 intercepts. An access L1 resumes after an EPT
// violation uses no register but RAX's result: L1 resumes L2 with its own registers.
#define VMX_L2_DATA 0x40000000
#define VMX_L2_LATE 0x40001000
#define VMX_L2_MAGIC 0x6c32207772697465  // "etirw 2l"
extern "C" char vmx_l2_basic[], vmx_l2_ept[], vmx_l2_spin[], vmx_l2_cpuid_spin[], vmx_l2_msr[], vmx_l2_stack_top[];
extern "C" char vmx_l2_pae[], vmx_l2_cr4[], vmx_l2_cr4_mov[], vmx_l2_cr0[], vmx_l2_cr0_mov[], vmx_l2_gp_handler[];
extern "C" u64 vmx_l2_shared, vmx_l2_lstar, vmx_l2_efer, vmx_l2_gp_error, vmx_l2_gp_rip, vmx_l2_cr0_after;
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

    .globl vmx_l2_spin, vmx_l2_cpuid_spin, vmx_l2_msr
vmx_l2_spin:
3:  jmp 3b
vmx_l2_cpuid_spin:
    xor %eax, %eax
    cpuid
4:  jmp 4b
vmx_l2_msr:
    mov $0xc0000082, %ecx
    rdmsr
    mov %eax, vmx_l2_lstar(%rip)
    mov %edx, vmx_l2_lstar+4(%rip)
    mov $0xc0000080, %ecx
    rdmsr
    mov %eax, vmx_l2_efer(%rip)
    mov %edx, vmx_l2_efer+4(%rip)
    vmcall
5:  jmp 5b

    .code32
    .globl vmx_l2_pae
vmx_l2_pae:
    mov $0x2a, %al
    out %al, $0x80
    vmcall
9:  jmp 9b
    .code64

    .globl vmx_l2_cr4, vmx_l2_cr4_mov, vmx_l2_cr0, vmx_l2_cr0_mov, vmx_l2_gp_handler
vmx_l2_cr4:
    mov %cr4, %rax
    btr $13, %rax
vmx_l2_cr4_mov:
    mov %rax, %cr4
6:  jmp 6b
vmx_l2_cr0:
    mov %cr0, %rax
    btr $5, %rax
vmx_l2_cr0_mov:
    mov %rax, %cr0
7:  jmp 7b
vmx_l2_gp_handler:
    pop %rax
    mov %rax, vmx_l2_gp_error(%rip)
    mov (%rsp), %rax
    mov %rax, vmx_l2_gp_rip(%rip)
    mov %cr0, %rax
    mov %rax, vmx_l2_cr0_after(%rip)
    vmcall
8:  jmp 8b

    .bss
    .balign 16
    .skip 8192
    .globl vmx_l2_stack_top
vmx_l2_stack_top:
    .data
    .balign 8
    .globl vmx_l2_shared
vmx_l2_shared: .quad 0
    .globl vmx_l2_lstar
vmx_l2_lstar: .quad 0
    .globl vmx_l2_efer
vmx_l2_efer: .quad 0
    .globl vmx_l2_gp_error, vmx_l2_gp_rip, vmx_l2_cr0_after
vmx_l2_gp_error: .quad 0
vmx_l2_gp_rip: .quad 0
vmx_l2_cr0_after: .quad 0
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
alignas(4096) u64 l2_data[512];     // L2-physical VMX_L2_DATA
alignas(4096) u64 l2_late[512];     // L2-physical VMX_L2_LATE, mapped on its EPT violation
alignas(4096) u8 msr_bitmap[4096];  // all clear: no MSR access of L2 exits to L1
// MSR lists: two u64 an entry (index, value).
alignas(16) u64 entry_msr_load[6];
alignas(16) u64 exit_msr_store[4];
alignas(16) u64 exit_msr_load[4];

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

bool fresh_vmcs() { return vmx::succeeded(vmx::vmclear(address(vmcs))) && vmx::succeeded(vmx::vmptrld(address(vmcs))); }

// Longer than L0's time slice (the kernel's default, 5,000,000 TSC ticks): L0 takes the CPU back
// at least once while L2 spins, and L1's timer goes on from where it was.
constexpr u64 kTimerTicks = 8'000'000;

void timer_l2() {
    if (!fresh_vmcs()) return;
    prepare(vmx_l2_spin, false);
    vmx::vmwrite(iv::field::pin_based_controls,
                 vmx::control(iv::vmx_msr::vmx_true_pinbased_ctls, iv::pin::preemption_timer));
    vmx::vmwrite(iv::field::exit_controls, vmread(iv::field::exit_controls) | iv::exit_ctl::save_preemption_timer);
    u32 rate = static_cast<u32>(rdmsr(iv::vmx_msr::vmx_misc) & iv::misc::preemption_timer_rate_mask);
    vmx::vmwrite(iv::field::preemption_timer_value, kTimerTicks >> rate);
    u64 start = rdtsc();
    if (!run(true, "vmlaunch with the preemption timer")) return;
    u64 elapsed = rdtsc() - start;
    println("l2 spinning with the preemption timer: exit reason ", exit_reason(), ", saved value ",
            vmread(iv::field::preemption_timer_value), ", whole timer ran ", elapsed >= kTimerTicks ? "yes" : "no");
    constexpr u64 kLongTimer = 1'000'000;
    vmx::vmwrite(iv::field::guest_rip, address(vmx_l2_cpuid_spin));
    vmx::vmwrite(iv::field::preemption_timer_value, kLongTimer);
    if (!run(false, "vmresume with the preemption timer")) return;
    u64 saved = vmread(iv::field::preemption_timer_value);
    println("l2 cpuid with the preemption timer: exit reason ", exit_reason(), ", saved value counted down ",
            saved > 0 && saved < kLongTimer ? "yes" : "no");
}

constexpr u64 kL1Lstar = 0xffff800000001000;
constexpr u64 kL2Lstar = 0xffff8000000c2000;

void msr_lists_l2() {
    if (!fresh_vmcs()) return;
    prepare(vmx_l2_msr, false);
    vmx::vmwrite(iv::field::primary_controls, vmread(iv::field::primary_controls) | iv::primary::use_msr_bitmaps);
    vmx::vmwrite(iv::field::msr_bitmap, address(msr_bitmap));
    wrmsr(nestor::x86_regs::kMsrLstar, kL1Lstar);
    // EFER in the lists too: L2's with SCE flipped, L1's own back at the exit (SCE is the bit a
    // WRMSR may change under paging, as LME may not).
    const u64 l1_efer = rdmsr(nestor::x86_regs::kMsrEfer);
    const u64 l2_efer = l1_efer ^ nestor::x86_regs::kEferSce;
    entry_msr_load[0] = nestor::x86_regs::kMsrLstar;
    entry_msr_load[1] = kL2Lstar;
    entry_msr_load[2] = nestor::x86_regs::kMsrEfer;
    entry_msr_load[3] = l2_efer;
    exit_msr_store[0] = nestor::x86_regs::kMsrLstar;
    exit_msr_store[2] = nestor::x86_regs::kMsrEfer;
    exit_msr_load[0] = nestor::x86_regs::kMsrLstar;
    exit_msr_load[1] = kL1Lstar;
    exit_msr_load[2] = nestor::x86_regs::kMsrEfer;
    exit_msr_load[3] = l1_efer;
    vmx::vmwrite(iv::field::entry_msr_load_address, address(entry_msr_load));
    vmx::vmwrite(iv::field::entry_msr_load_count, 2);
    vmx::vmwrite(iv::field::exit_msr_store_address, address(exit_msr_store));
    vmx::vmwrite(iv::field::exit_msr_store_count, 2);
    vmx::vmwrite(iv::field::exit_msr_load_address, address(exit_msr_load));
    vmx::vmwrite(iv::field::exit_msr_load_count, 2);
    if (!run(true, "vmlaunch with msr lists")) return;
    report_exit("msr lists l2 vmcall");
    println("l2 read lstar: ", hex(vmx_l2_lstar), ", exit msr-store list: ", hex(exit_msr_store[1]));
    println("l1's lstar after the exit: ", hex(rdmsr(nestor::x86_regs::kMsrLstar)));
    println("l2's efer from the entry list: ", vmx_l2_efer == l2_efer ? "yes" : "no", ", in the exit msr-store list ",
            exit_msr_store[3] == l2_efer ? "yes" : "no", ", l1's back after the exit ",
            rdmsr(nestor::x86_regs::kMsrEfer) == l1_efer ? "yes" : "no");
    entry_msr_load[4] = nestor::x86_regs::kMsrFsBase;
    vmx::vmwrite(iv::field::entry_msr_load_count, 3);
    if (!run(false, "vmresume with fs base in the msr-load list")) return;
    println("entry msr-load list with fs base: exit reason ", hex(exit_reason()), ", qualification ",
            vmread(iv::field::exit_qualification));
}

// L2's IDT: the #GP gate alone (a 64-bit interrupt gate to vmx_l2_gp_handler in L1's code segment).
alignas(16) nestor::guest::x86::IdtGate l2_idt[kVectorGP + 1];

void build_l2_idt() {
    l2_idt[kVectorGP] = nestor::guest::x86::interrupt_gate(address(vmx_l2_gp_handler), vmx::read_cs());
}

void cr_l2() {
    using nestor::x86_regs::kCr0Ne;
    using nestor::x86_regs::kCr4Vmxe;
    if (!fresh_vmcs()) return;
    prepare(vmx_l2_cr4, false);
    vmx::vmwrite(iv::field::entry_msr_load_count, 0);  // the MSR lists' test left them set
    vmx::vmwrite(iv::field::exit_msr_store_count, 0);
    vmx::vmwrite(iv::field::exit_msr_load_count, 0);
    vmx::vmwrite(iv::field::cr0_guest_host_mask, 0);
    vmx::vmwrite(iv::field::cr4_guest_host_mask, 0);
    vmx::vmwrite(iv::field::exception_bitmap, (1u << kVectorUD) | (1u << kVectorGP));
    if (!run(true, "vmlaunch with l2 owning cr0 and cr4")) return;
    println("l2 clearing cr4.vmxe: exit reason ", exit_reason(), ", info ",
            hex(vmread(iv::field::exit_interruption_info)), ", error ", vmread(iv::field::exit_interruption_error_code),
            ", at the mov ", vmread(iv::field::guest_rip) == address(vmx_l2_cr4_mov) ? "yes" : "no", ", vmxe set ",
            (vmread(iv::field::guest_cr4) & kCr4Vmxe) ? "yes" : "no");
    build_l2_idt();
    vmx::vmwrite(iv::field::exception_bitmap, 1u << kVectorUD);
    vmx::vmwrite(iv::field::guest_idtr_base, address(l2_idt));
    vmx::vmwrite(iv::field::guest_idtr_limit, sizeof(l2_idt) - 1);
    vmx::vmwrite(iv::field::guest_rip, address(vmx_l2_cr0));
    vmx::vmwrite(iv::field::guest_rsp, address(vmx_l2_stack_top));
    if (!run(false, "vmresume with l2's idt")) return;
    println("l2 clearing cr0.ne: exit reason ", exit_reason(), ", l2's #gp error ", vmx_l2_gp_error, ", at the mov ",
            vmx_l2_gp_rip == address(vmx_l2_cr0_mov) ? "yes" : "no", ", ne set ",
            (vmx_l2_cr0_after & kCr0Ne) ? "yes" : "no");
}

// L2 in 32-bit protected mode with PAE paging, L1 without EPT: the entry loads L2's PDPTEs from
// memory at its CR3 (L1's first GiB in 2 MiB pages), where L1 put them, not from vmcs12's fields.
alignas(32) u64 pae_pdpt[4];
alignas(4096) u64 pae_pd[512];

void pae_l2() {
    constexpr u64 kLargePresentWritable = 0x83, kPresent = 1;
    constexpr u32 kCode32 = 0xC09B;
    if (!fresh_vmcs()) return;
    prepare(vmx_l2_pae, false);
    for (u64 i = 0; i < 512; ++i) pae_pd[i] = (i << 21) | kLargePresentWritable;
    pae_pdpt[0] = address(pae_pd) | kPresent;
    vmx::write_guest_segment(1, vmx::read_cs(), kCode32);
    vmx::vmwrite(iv::field::guest_cr3, address(pae_pdpt));
    vmx::vmwrite(iv::field::guest_cr4, read_cr4() & ~nestor::x86_regs::kCr4Pcide);
    vmx::vmwrite(iv::field::guest_efer, 0);
    vmx::vmwrite(iv::field::entry_controls, vmx::control(iv::vmx_msr::vmx_true_entry_ctls, iv::entry_ctl::load_efer));
    if (!run(true, "vmlaunch of a pae l2")) return;
    report_exit("pae l2 out");
    step_over();
    if (!run(false, "vmresume of the pae l2")) return;
    report_exit("pae l2 vmcall");
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    if (!vmx::enter_vmx_operation(vmxon_region, vmcs)) return 1;
    basic_l2();
    ept_l2();
    timer_l2();
    msr_lists_l2();
    cr_l2();
    pae_l2();
    println("done");
    return 0;
}
