// A hostile L1 hypervisor on Intel VMX (nested.vmx_hostile_l1): it hands Nestor's nested VMX what
// a buggy or malicious L1 could, one case per domain, picked by the command line, and prints what
// it saw: #UD, #GP, VMfailInvalid, VMfailValid with the VM-instruction error, or the VM exit
// (reason and qualification) that ended an entry. What vmx_l1_instructions.cpp checks already is
// not repeated here. The kernel must refuse or contain each case and never crash; the healthy
// domain beside it must finish.
//   case=checks       in one L1, in this order: VMX instructions outside VMX operation (CR4.VMXE
//                     clear and set): #UD; VMX instructions at CPL 3: #GP before anything else (#UD
//                     outside VMX operation); VMWRITE of read-only fields: 13; memory operands
//                     L1's paging does not map: #PF with CR2 and the error code; controls the
//                     capability MSRs do not allow: 7; MSR-list and EPT pointers the checks
//                     refuse: 7; an entry MSR-load list outside L1's memory: 0x80000022,
//                     qualification 1; the VMCS link pointer: an entry failure (0x80000021,
//                     qualification 4) unless it names a region with our revision; corrupted VMCS
//                     regions (random bytes, a wrong revision, a current region rewritten in
//                     memory: the cached copy counts); 64 random vmcs12s entered
//   case=ept_outside  an EPT pointer past L1's memory: the domain is stopped at L2's first access
//   case=ept_mmio     an EPT pointer at the local APIC's address: the same
//   case=tpr_page_mmio  a virtual-APIC page (the TPR shadow) at the local APIC's address: the
//                     domain is stopped at VMLAUNCH
//   case=exit_store_outside, exit_load_mmio  a VM-exit MSR-store list past L1's memory, a VM-exit
//                     MSR-load list at the local APIC's address: L2's first exit is a VMX abort,
//                     which stops the domain
#include "nestor/arch/apic_regs.hpp"
#include "nestor/guest.hpp"
#include "nestor/vmx.hpp"
#include "nestor/x86_tables.hpp"

using namespace nestor::guest;
namespace vmx = nestor::guest::vmx;
namespace iv = nestor::intel_vmx;

// L2: VMCALL at once (the end of every run that enters), HLT (intercepted) if resumed.
extern "C" char hostile_l2[], hostile_l2_stack_top[];
// Ring-3 code: each routine is one VMX instruction and a UD2 that shows it did not fault.
extern "C" char ring3_vmxon[], ring3_vmlaunch[], ring3_vmresume[], ring3_vmptrld[], ring3_vmwrite[], ring3_vmread[],
    ring3_vmclear[], ring3_vmxoff[], ring3_invept[];
extern "C" u64 ring3_pointer;
// The faults that end ring-3 code: they record the vector, error code and RIP and return from
// run_in_ring3() to its ring-0 caller.
extern "C" u64 escape_vector, escape_error, escape_rip, saved_kernel_rsp;
extern "C" void escape_ud();
extern "C" void escape_gp();
extern "C" void escape_pf();
extern "C" void run_in_ring3_at(u64 rip, u64 rsp);
asm(R"(
    .text
    .globl hostile_l2
hostile_l2:
    vmcall
    hlt
    jmp hostile_l2

    .globl ring3_vmxon, ring3_vmlaunch, ring3_vmresume, ring3_vmptrld, ring3_vmwrite, ring3_vmread
    .globl ring3_vmclear, ring3_vmxoff, ring3_invept
ring3_vmxon:
    vmxon ring3_pointer(%rip)
    ud2
ring3_vmlaunch:
    vmlaunch
    ud2
ring3_vmresume:
    vmresume
    ud2
ring3_vmptrld:
    vmptrld ring3_pointer(%rip)
    ud2
ring3_vmwrite:
    mov $0x681e, %edx  /* guest RIP */
    mov $0x5a5a, %eax
    vmwrite %rax, %rdx
    ud2
ring3_vmread:
    mov $0x681e, %edx  /* guest RIP */
    vmread %rdx, %rax
    ud2
ring3_vmclear:
    vmclear ring3_pointer(%rip)
    ud2
ring3_vmxoff:
    vmxoff
    ud2
ring3_invept:
    mov $2, %eax  /* all contexts */
    invept ring3_descriptor(%rip), %rax
    ud2

    .globl escape_ud, escape_gp, escape_pf
escape_ud:
    pushq $0
    movq $6, escape_vector(%rip)
    jmp escape
escape_gp:
    movq $13, escape_vector(%rip)
    jmp escape
escape_pf:
    movq $14, escape_vector(%rip)
escape:
    popq escape_error(%rip)
    mov (%rsp), %rax
    mov %rax, escape_rip(%rip)
    mov $0x10, %eax
    mov %eax, %ss
    mov %eax, %ds
    mov %eax, %es
    mov saved_kernel_rsp(%rip), %rsp
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbp
    pop %rbx
    ret

    .globl run_in_ring3_at
run_in_ring3_at:
    push %rbx
    push %rbp
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, saved_kernel_rsp(%rip)
    pushq $0x1b
    push %rsi
    pushq $2
    pushq $0x23
    push %rdi
    iretq

    .data
    .balign 16
    .globl ring3_pointer
ring3_pointer: .quad 0
    .quad 0
ring3_descriptor: .quad 0, 0
    .globl escape_vector, escape_error, escape_rip, saved_kernel_rsp
escape_vector: .quad 0
escape_error: .quad 0
escape_rip: .quad 0
saved_kernel_rsp: .quad 0

    .bss
    .balign 16
    .skip 8192
    .globl hostile_l2_stack_top
hostile_l2_stack_top:
    .text
)");

namespace {

constexpr u64 kMemoryEnd = 0x1000000;                  // the manifest gives every hostile L1 16 MiB
constexpr u64 kLapic = nestor::apic_regs::kXapicBase;  // nothing of the domain's
constexpr u64 kRegionBytes = 4096;
// Bit 31 of a region's first dword, beside the revision.
constexpr u32 kShadowVmcsIndicator = ~static_cast<u32>(iv::basic::revision_mask);
constexpr u32 kEntryFailureGuestState = iv::exit_reason::entry_failure | iv::exit_reason::invalid_guest_state;
constexpr u64 kEptpWalk4 = u64{3} << iv::ept::eptp_walk_length_shift;  // walk length - 1
constexpr u64 kEptpWalk5 = u64{4} << iv::ept::eptp_walk_length_shift;
constexpr u64 kEptpReservedBit7 = u64{1} << 7;
constexpr u32 kCpuidAddressSizes = 0x80000008;

alignas(4096) u8 vmxon_region[kRegionBytes];
alignas(4096) u8 vmcs_a[kRegionBytes];
alignas(4096) u8 vmcs_b[kRegionBytes];
alignas(4096) u8 link_region[kRegionBytes];
alignas(4096) u8 random_region[kRegionBytes];
alignas(16) u8 msr_list[64];

u32 revision = 0;
u64 address(const void* p) { return reinterpret_cast<u64>(p); }

u64 random_state = 0x766d78686f737421;  // "vmxhost!"
u64 random_u64() {                      // xorshift64*: the same sequence every run
    random_state ^= random_state >> 12;
    random_state ^= random_state << 25;
    random_state ^= random_state >> 27;
    return random_state * 0x2545F4914F6CDD1D;
}
u64 random_below(u64 n) { return random_u64() % n; }
void fill_random(u8* region) {
    for (u64 i = 0; i < kRegionBytes; i += 8) {
        u64 r = random_u64();
        __builtin_memcpy(region + i, &r, sizeof(r));
    }
}
void set_revision(u8* region, u32 value) { __builtin_memcpy(region, &value, sizeof(value)); }
u32 revision_of(const u8* region) {
    u32 value;
    __builtin_memcpy(&value, region, sizeof(value));
    return value;
}

u32 physical_address_bits() { return cpuid(kCpuidAddressSizes).eax & 0xFF; }

template <typename... Args> void print_all(const Args&... args) { (print(args), ...); }

// "VMsucceed", "VMfailInvalid" or "VMfailValid(N)", N read back from the current VMCS.
void print_flags(u64 flags) {
    if (flags & vmx::kVmFailInvalid)
        print("VMfailInvalid");
    else if (flags & vmx::kVmFailValid)
        print_all("VMfailValid(", vmx::vmread(iv::field::instruction_error), ")");
    else
        print("VMsucceed");
}
void report(const char* what, u64 flags) {
    print_all(what, ": ");
    print_flags(flags);
    println();
}

u64 vmlaunch() {
    u64 flags;
    asm volatile("vmlaunch; pushfq; popq %0" : "=r"(flags) : : "cc", "memory");
    return flags;
}

// --- a valid L2 --------------------------------------------------------------------------------

// L2 in L1's own mode and paging at hostile_l2, every exception and HLT intercepted.
void write_valid_l2(u32 secondary = 0) {
    vmx::write_64bit_controls(0, iv::primary::hlt_exiting, secondary);
    vmx::vmwrite(iv::field::exception_bitmap, 0xFFFFFFFF);
    vmx::write_own_host_state();
    vmx::write_own_guest_state(address(hostile_l2), address(hostile_l2_stack_top));
}

// A fresh vmcs12 in `region` (VMCLEAR, then zeroes and our revision, then VMPTRLD) describing a
// valid L2.
bool load_valid(u8* region) {
    bool cleared = vmx::succeeded(vmx::vmclear(address(region)));
    for (u64 i = 0; i < kRegionBytes; ++i) region[i] = 0;
    set_revision(region, revision);
    if (!cleared || !vmx::succeeded(vmx::vmptrld(address(region)))) {
        println("unexpected: vmclear / vmptrld of a fresh region failed");
        return false;
    }
    write_valid_l2();
    return true;
}

// One VMLAUNCH: what it did ("VMfailValid(7)", "exit reason 0x80000021, qualification 4", ...).
void print_launch(u64 result) {
    if (result) {
        print_flags(result);
        return;
    }
    print_all("exit reason ", hex(vmx::vmread(iv::field::exit_reason)), ", qualification ",
              vmx::vmread(iv::field::exit_qualification));
}
void launch(const char* what) {
    print_all(what, ": ");
    print_launch(vmx::enter(true));
    println();
}

// --- case=checks: VMX instructions outside VMX operation -----------------------------------------

struct Probe {
    const char* name;
    void (*run)();
    bool covered_without_vmxe, covered_outside;  // by nested.vmx_l1_instructions
};
const Probe kOutsideProbes[] = {
    {"vmclear", [] { vmx::vmclear(address(vmcs_a)); }, false, false},
    {"vmptrld", [] { vmx::vmptrld(address(vmcs_a)); }, true, false},
    {"vmread", [] { vmx::vmread(iv::field::guest_rip); }, false, false},
    {"vmwrite", [] { vmx::vmwrite(iv::field::guest_rip, 0); }, false, false},
    {"vmlaunch", [] { vmlaunch(); }, false, false},
    {"vmresume",
     [] {
         asm volatile("vmresume" ::: "cc", "memory");
     },
     false, false},
    {"vmptrst",
     [] {
         u64 p;
         asm volatile("vmptrst %0" : "=m"(p) : : "cc", "memory");
     },
     false, true},
    {"vmxoff",
     [] {
         asm volatile("vmxoff" ::: "cc", "memory");
     },
     false, true},
    {"invept",
     [] {
         alignas(16) u64 d[2] = {0, 0};
         asm volatile("invept %0, %1" : : "m"(d), "r"(u64{iv::kInveptAllContext}) : "cc", "memory");
     },
     false, false},
    {"invvpid",
     [] {
         alignas(16) u64 d[2] = {1, 0};
         asm volatile("invvpid %0, %1" : : "m"(d), "r"(u64{iv::kInvvpidSingleContext}) : "cc", "memory");
     },
     false, false},
};

void probe_outside(const char* when, bool vmxe) {
    for (const Probe& p : kOutsideProbes) {
        if (vmxe ? p.covered_outside : p.covered_without_vmxe) continue;
        ExceptionRecord e = probe(p.run);
        println(when, ": ", p.name, " ", e.raised ? exception_name(e.vector) : "no exception");
    }
}

void write_cr4(u64 value) { asm volatile("mov %0, %%cr4" ::"r"(value) : "memory"); }

// --- case=checks: CPL 3 ----------------------------------------------------------------------------

using nestor::guest::x86::TablePointer;
using nestor::guest::x86::Tss;
constexpr u16 kTssSelector = 0x28;
alignas(16) u64 gdt[8] = {};
alignas(16) Tss tss = {};
alignas(16) nestor::guest::x86::IdtGate ring3_idt[256] = {};
alignas(16) u8 ring0_stack[8192] = {};
alignas(16) u8 user_stack[4096] = {};
TablePointer sdk_idt{};

nestor::guest::x86::IdtGate gate(void (*handler)()) {
    u64 h = reinterpret_cast<u64>(handler);
    return {static_cast<u16>(h), 0x08, 0, 0x8E, static_cast<u16>(h >> 16), static_cast<u32>(h >> 32), 0};
}

// The SDK's segments (0x08 code, 0x10 data) with ring-3 data (0x18) and code (0x20), a TSS whose
// RSP0 takes ring 3's faults, an IDT for ring 3's runs, and the first 4 MiB (this image) open to
// ring 3 (the SDK maps everything supervisor-only).
void prepare_ring3() {
    gdt[1] = 0x00AF9A000000FFFF;
    gdt[2] = 0x00CF92000000FFFF;
    gdt[3] = 0x00CFF2000000FFFF;
    gdt[4] = 0x00AFFA000000FFFF;
    u64 base = reinterpret_cast<u64>(&tss), limit = sizeof(Tss) - 1;
    gdt[5] = (limit & 0xFFFF) | ((base & 0xFFFFFF) << 16) | (u64{0x89} << 40) | (((base >> 24) & 0xFF) << 56);
    gdt[6] = base >> 32;
    tss.rsp[0] = reinterpret_cast<u64>(ring0_stack + sizeof(ring0_stack));
    tss.iomap_base = sizeof(Tss);
    TablePointer g{sizeof(gdt) - 1, reinterpret_cast<u64>(gdt)};
    asm volatile("lgdt %0; ltr %w1" ::"m"(g), "r"(kTssSelector) : "memory");
    asm volatile("sidt %0" : "=m"(sdk_idt));
    ring3_idt[kVectorUD] = gate(escape_ud);
    ring3_idt[kVectorGP] = gate(escape_gp);
    ring3_idt[kVectorPF] = gate(escape_pf);
    constexpr u64 kUser = 4, kAddress = 0x000FFFFFFFFFF000;
    u64* pml4 = reinterpret_cast<u64*>(read_cr3() & kAddress);
    pml4[0] |= kUser;
    u64* pdpt = reinterpret_cast<u64*>(pml4[0] & kAddress);
    pdpt[0] |= kUser;
    u64* pd = reinterpret_cast<u64*>(pdpt[0] & kAddress);
    pd[0] |= kUser;
    pd[1] |= kUser;
    asm volatile("mov %%cr3, %%rax; mov %%rax, %%cr3" ::: "rax", "memory");
}

// Runs `routine` at CPL 3 and prints how it ended: "#GP(0) on the instruction", or "#UD on the
// instruction" (a #UD the instruction raised), or "no fault" (the UD2 after it ran).
void at_cpl3(const char* what, char* routine) {
    TablePointer mine{sizeof(ring3_idt) - 1, reinterpret_cast<u64>(ring3_idt)};
    asm volatile("lidt %0" ::"m"(mine) : "memory");
    run_in_ring3_at(reinterpret_cast<u64>(routine), reinterpret_cast<u64>(user_stack + sizeof(user_stack)));
    asm volatile("lidt %0" ::"m"(sdk_idt) : "memory");
    bool on_it = escape_rip - reinterpret_cast<u64>(routine) < 16;
    constexpr u16 kUd2 = 0x0B0F;  // its bytes 0F 0B, read little-endian
    bool after = on_it && escape_vector == kVectorUD && *reinterpret_cast<const u16*>(escape_rip) == kUd2;
    print_all("cpl 3 ", what, ": ");
    if (after)
        println("no fault");
    else if (escape_vector == kVectorGP)
        println("#GP(", escape_error, ")", on_it ? "" : " elsewhere");
    else
        println(exception_name(static_cast<u8>(escape_vector)), on_it ? "" : " elsewhere");
}

// --- case=checks: each part --------------------------------------------------------------------------

void outside_vmx_operation() {
    write_cr4(read_cr4() & ~kCr4Vmxe);
    probe_outside("cr4.vmxe clear", false);
    write_cr4(read_cr4() | kCr4Vmxe);
    probe_outside("outside vmx operation", true);
}

void privilege_checks() {
    prepare_ring3();
    ring3_pointer = address(vmxon_region);
    at_cpl3("vmxon outside vmx operation", ring3_vmxon);
    at_cpl3("vmlaunch outside vmx operation", ring3_vmlaunch);
    report("vmxon", vmx::vmxon(address(vmxon_region)));
    at_cpl3("vmlaunch, no current vmcs", ring3_vmlaunch);
    load_valid(vmcs_a);
    vmx::vmwrite(iv::field::guest_rip, 0x1234);
    at_cpl3("vmlaunch, a valid current vmcs", ring3_vmlaunch);
    at_cpl3("vmresume", ring3_vmresume);
    at_cpl3("vmwrite guest rip", ring3_vmwrite);
    at_cpl3("vmread guest rip", ring3_vmread);
    ring3_pointer = address(vmcs_b);
    at_cpl3("vmptrld", ring3_vmptrld);
    ring3_pointer = address(vmcs_a);
    at_cpl3("vmclear of the current vmcs", ring3_vmclear);
    at_cpl3("vmxon in vmx operation", ring3_vmxon);
    at_cpl3("invept", ring3_invept);
    at_cpl3("vmxoff", ring3_vmxoff);
    u64 current = 0;
    asm volatile("vmptrst %0" : "=m"(current) : : "cc", "memory");
    println("after cpl 3: vmcs a current ", current == address(vmcs_a) ? "yes" : "no", ", guest rip ",
            hex(vmx::vmread(iv::field::guest_rip)));
}

// --- case=checks: CR0 and CR4 in VMX operation -------------------------------------------------------

// In VMX operation CR0.PE, NE, PG and CR4.VMXE are fixed to 1 (IA32_VMX_CR0_FIXED0 and
// IA32_VMX_CR4_FIXED0): a MOV that clears one #GPs and changes nothing. (Clearing PE or PG in long
// mode #GPs anyway; NE and VMXE are the cases only VMX operation makes fault.)
void clear_cr4_vmxe() { write_cr4(read_cr4() & ~kCr4Vmxe); }
void clear_cr0_ne() { asm volatile("mov %0, %%cr0" ::"r"(read_cr0() & ~nestor::x86_regs::kCr0Ne) : "memory"); }

void report_fixed_bit(const char* what, void (*clear)(), bool still_set_after()) {
    ExceptionRecord e = probe(clear);
    print_all("in vmx operation, ", what, " cleared: ");
    if (!e.raised)
        print_all("no exception");
    else if (e.vector == kVectorGP)
        print_all("#GP(", e.error_code, ")");
    else
        print_all(exception_name(e.vector));
    println(", ", what, still_set_after() ? " still set" : " clear");
}

void fixed_bits_in_vmx_operation() {
    report_fixed_bit("cr4.vmxe", clear_cr4_vmxe, [] { return (read_cr4() & kCr4Vmxe) != 0; });
    report_fixed_bit("cr0.ne", clear_cr0_ne, [] { return (read_cr0() & nestor::x86_regs::kCr0Ne) != 0; });
}

// --- case=checks: memory operands L1's paging does not map -------------------------------------------

// L1 maps the first 4 GiB: an operand at 4 GiB is not present. The CPU's answer is a #PF with the
// operand's address in CR2 and error code 0 for a read (VMPTRLD), W (2) for a write (VMPTRST);
// nothing else changes.
constexpr u64 kUnmappedOperand = 0x100000040;

void report_page_fault(const char* what, void (*run)()) {
    ExceptionRecord e = probe(run);
    print_all(what, " of an operand at ", hex(kUnmappedOperand), ": ");
    if (e.raised && e.vector == kVectorPF)
        println("#PF(", hex(e.error_code), ") cr2 ", hex(e.cr2));
    else
        println(e.raised ? exception_name(e.vector) : "no exception");
}

u64 current_vmcs() {
    u64 current = 0;
    asm volatile("vmptrst %0" : "=m"(current) : : "cc", "memory");
    return current;
}

void operand_page_faults() {
    u64 before = current_vmcs();
    report_page_fault("vmptrld", [] { asm volatile("vmptrld (%0)" ::"r"(kUnmappedOperand) : "cc", "memory"); });
    report_page_fault("vmptrst", [] { asm volatile("vmptrst (%0)" ::"r"(kUnmappedOperand) : "cc", "memory"); });
    println("after the page faults: the current vmcs ", current_vmcs() == before ? "unchanged" : "CHANGED");
}

struct ReadOnlyField {
    u32 encoding;
    const char* name;
};
const ReadOnlyField kReadOnly[] = {
    {iv::field::instruction_error, "vm-instruction error"},
    {iv::field::exit_qualification, "exit qualification"},
    {iv::field::guest_physical_address, "guest-physical address"},
    {iv::field::guest_physical_address + 1, "guest-physical address high"},
    {iv::field::guest_linear_address, "guest-linear address"},
    {iv::field::idt_vectoring_info, "idt-vectoring information"},
    {iv::field::exit_instruction_length, "exit instruction length"},
};

void read_only_fields() {
    for (const ReadOnlyField& f : kReadOnly) {
        u64 before = vmx::vmread(f.encoding);
        print_all("vmwrite of the read-only ", f.name, " (", hex(f.encoding), "): ");
        print_flags(vmx::vmwrite(f.encoding, 0x5a5a5a5a));
        println(f.encoding == iv::field::instruction_error || vmx::vmread(f.encoding) == before ? ", unchanged"
                                                                                                : ", CHANGED");
    }
}

struct Control {
    const char* name;
    u32 field;
    u32 capability_msr;
    u32 bit;
    bool must_be_one;  // the bit the capability MSR says must be 1, cleared
};
const Control kNotOffered[] = {
    {"pin process posted interrupts", iv::field::pin_based_controls, iv::vmx_msr::vmx_true_pinbased_ctls, 7, false},
    {"primary monitor trap flag", iv::field::primary_controls, iv::vmx_msr::vmx_true_procbased_ctls, 27, false},
    {"primary default1 bit 1 cleared", iv::field::primary_controls, iv::vmx_msr::vmx_true_procbased_ctls, 1, true},
    {"secondary virtualize apic accesses", iv::field::secondary_controls, iv::vmx_msr::vmx_procbased_ctls2, 0, false},
    {"secondary enable rdtscp", iv::field::secondary_controls, iv::vmx_msr::vmx_procbased_ctls2, 3, false},
    {"secondary enable vm functions", iv::field::secondary_controls, iv::vmx_msr::vmx_procbased_ctls2, 13, false},
    {"secondary vmcs shadowing", iv::field::secondary_controls, iv::vmx_msr::vmx_procbased_ctls2, 14, false},
    {"exit save pat", iv::field::exit_controls, iv::vmx_msr::vmx_true_exit_ctls, 18, false},
    {"exit load pat", iv::field::exit_controls, iv::vmx_msr::vmx_true_exit_ctls, 19, false},
    {"entry to smm", iv::field::entry_controls, iv::vmx_msr::vmx_true_entry_ctls, 10, false},
    {"entry load pat", iv::field::entry_controls, iv::vmx_msr::vmx_true_entry_ctls, 14, false},
};

// Each control the capability MSRs forbid, on an otherwise valid vmcs12: VMfailValid(7). The
// same vmcs12 without them runs L2 to its VMCALL.
void controls_not_offered() {
    if (!load_valid(vmcs_a)) return;
    vmx::vmwrite(iv::field::primary_controls,
                 vmx::vmread(iv::field::primary_controls) | iv::primary::activate_secondary);
    for (const Control& c : kNotOffered) {
        u64 msr = rdmsr(c.capability_msr);
        u32 allowed = c.must_be_one ? static_cast<u32>(msr >> c.bit) & 1 : static_cast<u32>(msr >> (32 + c.bit)) & 1;
        u64 value = vmx::vmread(c.field);
        vmx::vmwrite(c.field, c.must_be_one ? value & ~(u64{1} << c.bit) : value | (u64{1} << c.bit));
        print_all(c.name, ": ", c.must_be_one ? "must be one " : "allowed ", allowed, ", vmlaunch ");
        print_launch(vmx::enter(true));
        println();
        vmx::vmwrite(c.field, value);
    }
    launch("none of them");
}

// The MSR-list and EPT pointers the VM-entry checks refuse (SDM 26.2.1.2, 26.2.1.1): VMfailValid(7).
// An entry MSR-load list the checks accept but that is not L1's RAM reads as all ones, as on the
// CPU: its first entry fails, a VM-entry failure with exit reason 0x80000022 and qualification 1.
void pointer_checks() {
    u64 beyond = u64{1} << physical_address_bits();
    struct List {
        const char* name;
        u32 count, address;
    };
    const List lists[] = {{"entry msr-load", iv::field::entry_msr_load_count, iv::field::entry_msr_load_address},
                          {"exit msr-store", iv::field::exit_msr_store_count, iv::field::exit_msr_store_address},
                          {"exit msr-load", iv::field::exit_msr_load_count, iv::field::exit_msr_load_address}};
    for (const List& l : lists) {
        if (!load_valid(vmcs_a)) return;
        vmx::vmwrite(l.count, 1);
        vmx::vmwrite(l.address, address(msr_list) + 8);
        print_all(l.name, " list unaligned: ");
        print_launch(vmx::enter(true));
        vmx::vmwrite(l.address, beyond);
        print_all("\n", l.name, " list beyond maxphyaddr: ");
        print_launch(vmx::enter(true));
        vmx::vmwrite(l.count, 2);
        vmx::vmwrite(l.address, beyond - 16);
        print_all("\n", l.name, " list running past maxphyaddr: ");
        print_launch(vmx::enter(true));
        println();
    }
    const u64 elsewhere[] = {kMemoryEnd, kLapic};
    for (u64 list : elsewhere) {
        if (!load_valid(vmcs_a)) return;
        vmx::vmwrite(iv::field::entry_msr_load_count, 1);
        vmx::vmwrite(iv::field::entry_msr_load_address, list);
        print_all("entry msr-load list at ", hex(list), ": ");
        print_launch(vmx::enter(true));
        println(", guest rip unchanged ", vmx::vmread(iv::field::guest_rip) == address(hostile_l2) ? "yes" : "no");
    }
    struct Eptp {
        const char* name;
        u64 value;
    };
    const u64 table = address(vmcs_b), good = table | iv::ept::memory_type_wb | kEptpWalk4;
    const Eptp eptps[] = {{"memory type uc", table | iv::ept::memory_type_uc | kEptpWalk4},
                          {"5-level walk", table | iv::ept::memory_type_wb | kEptpWalk5},
                          {"accessed and dirty flags", good | iv::ept::eptp_ad_enable},
                          {"reserved bit 7", good | kEptpReservedBit7},
                          {"beyond maxphyaddr", good | beyond}};
    if (!load_valid(vmcs_a)) return;
    write_valid_l2(iv::secondary::enable_ept);
    for (const Eptp& e : eptps) {
        vmx::vmwrite(iv::field::ept_pointer, e.value);
        print_all("ept pointer ", e.name, ": ");
        print_launch(vmx::enter(true));
        println();
    }
}

// The VMCS link pointer (SDM 26.3.1.5): all ones, or a region with our revision and the
// shadow-VMCS indicator clear (VMCS shadowing is 0) that is not the current VMCS; anything else
// is an entry failure with exit reason 0x80000021 and qualification 4, after which L1 runs from
// its host state and the VMCS stays clear.
void link_pointer() {
    if (!load_valid(vmcs_a)) return;
    set_revision(link_region, revision ^ 1);
    struct Case {
        const char* name;
        u64 pointer;
    };
    const Case cases[] = {{"a region with a wrong revision", address(link_region)},
                          {"unaligned", address(link_region) + 8},
                          {"beyond maxphyaddr", u64{1} << physical_address_bits()},
                          {"past l1's memory", kMemoryEnd},
                          {"the local apic", kLapic},
                          {"the current vmcs", address(vmcs_a)}};
    for (const Case& c : cases) {
        vmx::vmwrite(iv::field::vmcs_link_pointer, c.pointer);
        print_all("link pointer ", c.name, ": ");
        print_launch(vmx::enter(true));
        println(", guest rip unchanged ", vmx::vmread(iv::field::guest_rip) == address(hostile_l2) ? "yes" : "no");
    }
    set_revision(link_region, revision | kShadowVmcsIndicator);
    vmx::vmwrite(iv::field::vmcs_link_pointer, address(link_region));
    launch("link pointer to a shadow vmcs");
    set_revision(link_region, revision);
    launch("link pointer to a region with our revision");
}

// Corrupted VMCS regions: random bytes, a wrong revision, a current region L1 rewrites in memory.
void corrupted_regions() {
    fill_random(random_region);
    print_all("random region, revision ", hex(revision_of(random_region)), ": vmptrld ");
    print_flags(vmx::vmptrld(address(random_region)));
    println();
    set_revision(random_region, revision | kShadowVmcsIndicator);
    report("random region with the shadow-vmcs indicator: vmptrld", vmx::vmptrld(address(random_region)));
    set_revision(random_region, revision);
    report("random region with our revision: vmptrld", vmx::vmptrld(address(random_region)));
    report("random region: vmlaunch", vmlaunch());
    report("random region: vmresume", [] {
        u64 flags;
        asm volatile("vmresume; pushfq; popq %0" : "=r"(flags) : : "cc", "memory");
        return flags;
    }());
    report("random region after vmclear: vmclear", vmx::vmclear(address(random_region)));
    report("random region after vmclear: vmptrld", vmx::vmptrld(address(random_region)));
    report("random region after vmclear: vmlaunch", vmlaunch());

    // L1 rewrites the current region in memory: VMREAD, the checks and the entry use the cache.
    if (!load_valid(vmcs_a)) return;
    fill_random(vmcs_a);
    println("current region overwritten: guest rip ",
            vmx::vmread(iv::field::guest_rip) == address(hostile_l2) ? "as written" : "CHANGED",
            ", revision in memory ", revision_of(vmcs_a) == revision ? "ours" : "not ours");
    launch("current region overwritten: vmlaunch");
    report("current region overwritten: vmclear", vmx::vmclear(address(vmcs_a)));
    println("after vmclear: revision in memory ", revision_of(vmcs_a) == revision ? "ours" : "not ours");
    report("vmptrld again", vmx::vmptrld(address(vmcs_a)));
    println("guest rip after the round trip ",
            vmx::vmread(iv::field::guest_rip) == address(hostile_l2) ? "as written" : "CHANGED");
}

// Every field a VMWRITE may write (vmcs12's table less the read-only exit information).
const u32 kWritable[] = {
    iv::field::vpid,
    iv::field::guest_es_selector,
    iv::field::guest_cs_selector,
    iv::field::guest_ss_selector,
    iv::field::guest_ds_selector,
    iv::field::guest_fs_selector,
    iv::field::guest_gs_selector,
    iv::field::guest_ldtr_selector,
    iv::field::guest_tr_selector,
    iv::field::host_es_selector,
    iv::field::host_cs_selector,
    iv::field::host_ss_selector,
    iv::field::host_ds_selector,
    iv::field::host_fs_selector,
    iv::field::host_gs_selector,
    iv::field::host_tr_selector,
    iv::field::io_bitmap_a,
    iv::field::io_bitmap_b,
    iv::field::msr_bitmap,
    iv::field::exit_msr_store_address,
    iv::field::exit_msr_load_address,
    iv::field::entry_msr_load_address,
    iv::field::tsc_offset,
    iv::field::ept_pointer,
    iv::field::vmcs_link_pointer,
    iv::field::guest_debugctl,
    iv::field::guest_efer,
    iv::field::host_efer,
    iv::field::pin_based_controls,
    iv::field::primary_controls,
    iv::field::exception_bitmap,
    iv::field::page_fault_error_mask,
    iv::field::page_fault_error_match,
    iv::field::cr3_target_count,
    iv::field::exit_controls,
    iv::field::exit_msr_store_count,
    iv::field::exit_msr_load_count,
    iv::field::entry_controls,
    iv::field::entry_msr_load_count,
    iv::field::entry_interruption_info,
    iv::field::entry_exception_error_code,
    iv::field::entry_instruction_length,
    iv::field::secondary_controls,
    iv::field::guest_es_limit,
    iv::field::guest_cs_limit,
    iv::field::guest_ss_limit,
    iv::field::guest_ds_limit,
    iv::field::guest_fs_limit,
    iv::field::guest_gs_limit,
    iv::field::guest_ldtr_limit,
    iv::field::guest_tr_limit,
    iv::field::guest_gdtr_limit,
    iv::field::guest_idtr_limit,
    iv::field::guest_es_access_rights,
    iv::field::guest_cs_access_rights,
    iv::field::guest_ss_access_rights,
    iv::field::guest_ds_access_rights,
    iv::field::guest_fs_access_rights,
    iv::field::guest_gs_access_rights,
    iv::field::guest_ldtr_access_rights,
    iv::field::guest_tr_access_rights,
    iv::field::guest_interruptibility,
    iv::field::guest_activity_state,
    iv::field::guest_sysenter_cs,
    iv::field::host_sysenter_cs,
    iv::field::cr0_guest_host_mask,
    iv::field::cr4_guest_host_mask,
    iv::field::cr0_read_shadow,
    iv::field::cr4_read_shadow,
    iv::field::guest_cr0,
    iv::field::guest_cr3,
    iv::field::guest_cr4,
    iv::field::guest_es_base,
    iv::field::guest_cs_base,
    iv::field::guest_ss_base,
    iv::field::guest_ds_base,
    iv::field::guest_fs_base,
    iv::field::guest_gs_base,
    iv::field::guest_ldtr_base,
    iv::field::guest_tr_base,
    iv::field::guest_gdtr_base,
    iv::field::guest_idtr_base,
    iv::field::guest_dr7,
    iv::field::guest_rsp,
    iv::field::guest_rip,
    iv::field::guest_rflags,
    iv::field::guest_pending_debug_exceptions,
    iv::field::guest_sysenter_esp,
    iv::field::guest_sysenter_eip,
    iv::field::host_cr0,
    iv::field::host_cr3,
    iv::field::host_cr4,
    iv::field::host_fs_base,
    iv::field::host_gs_base,
    iv::field::host_tr_base,
    iv::field::host_gdtr_base,
    iv::field::host_idtr_base,
    iv::field::host_sysenter_esp,
    iv::field::host_sysenter_eip,
    iv::field::host_rsp,
    iv::field::host_rip,
};

// The guest-state fields the second half randomises (RIP, RSP and CR3 stay valid, so that an L2
// that enters reaches its VMCALL or faults, and every fault exits to L1).
const u32 kGuestState[] = {
    iv::field::guest_cr0,
    iv::field::guest_cr4,
    iv::field::guest_efer,
    iv::field::guest_dr7,
    iv::field::guest_rflags,
    iv::field::guest_activity_state,
    iv::field::guest_interruptibility,
    iv::field::guest_pending_debug_exceptions,
    iv::field::vmcs_link_pointer,
    iv::field::guest_cs_access_rights,
    iv::field::guest_ss_access_rights,
    iv::field::guest_ds_access_rights,
    iv::field::guest_tr_access_rights,
    iv::field::guest_ldtr_access_rights,
    iv::field::guest_ss_selector,
    iv::field::guest_tr_selector,
    iv::field::guest_cs_limit,
    iv::field::guest_tr_limit,
    iv::field::guest_gdtr_limit,
    iv::field::guest_fs_base,
    iv::field::guest_tr_base,
    iv::field::guest_sysenter_eip,
};

u64 random_value() {
    switch (random_below(4)) {
    case 0: return random_u64();
    case 1: return random_u64() & 0xFFFF;
    case 2: return u64{1} << random_below(64);
    default: return 0;
    }
}

// 64 random vmcs12s, each VMLAUNCHed: 16 with every writable field random (host state and
// controls included), which must end in VMfailValid; 48 with a valid L2 whose guest-state fields
// are each random with probability 1/6, which must end in an entry failure (0x80000021) or, where
// the random state is one the CPU runs, an exit L1 asked for (VMCALL, an exception, HLT, a triple
// fault); never anything else.
void random_vmcs12s() {
    u32 fail_valid = 0, entry_failure = 0, l2_exit = 0, unexpected = 0;
    constexpr u32 kFullyRandom = 16;
    for (u32 i = 0; i < 64; ++i) {
        if (!load_valid(vmcs_b)) return;
        if (i < kFullyRandom) {
            for (u32 f : kWritable) vmx::vmwrite(f, random_value());
        } else {
            for (u32 f : kGuestState)
                if (random_below(6) == 0) vmx::vmwrite(f, random_value());
        }
        u64 result = vmx::enter(true);
        if (result) {
            if (i < kFullyRandom && (result & vmx::kVmFailValid) && !(result & vmx::kVmFailInvalid)) {
                ++fail_valid;
                continue;
            }
            println("random vmcs12 ", i, ": unexpected rflags ", hex(result));
            ++unexpected;
            continue;
        }
        u32 reason = static_cast<u32>(vmx::vmread(iv::field::exit_reason));
        if (reason == kEntryFailureGuestState)
            ++entry_failure;
        else if (i >= kFullyRandom &&
                 (reason == iv::exit_reason::vmcall || reason == iv::exit_reason::exception_or_nmi ||
                  reason == iv::exit_reason::hlt || reason == iv::exit_reason::triple_fault))
            ++l2_exit;
        else {
            println("random vmcs12 ", i, ": unexpected exit reason ", hex(reason), ", qualification ",
                    hex(vmx::vmread(iv::field::exit_qualification)));
            ++unexpected;
        }
    }
    println("random vmcs12s, every field random: ", fail_valid, " of ", kFullyRandom, " VMfailValid");
    println("random vmcs12s, a valid l2 with random guest-state fields: ", entry_failure, " entry failures (",
            hex(kEntryFailureGuestState), "), ", l2_exit, " exits l1 asked for, of ", 64 - kFullyRandom);
    println("random vmcs12s: ", unexpected, " unexpected");
}

int checks() {
    outside_vmx_operation();
    privilege_checks();  // enters VMX operation, before any VM exit loads L1's host state
    fixed_bits_in_vmx_operation();
    read_only_fields();
    operand_page_faults();
    controls_not_offered();
    pointer_checks();
    link_pointer();
    corrupted_regions();
    random_vmcs12s();
    // Still a working hypervisor: a valid L2 runs to its VMCALL.
    if (!load_valid(vmcs_a)) return 1;
    launch("a valid l2 at the end");
    return 0;
}

// An EPT pointer of the right form at `where`, which is not L1's RAM: L2's first fetch walks it.
int ept_elsewhere(u64 where, const char* what) {
    if (!vmx::enter_vmx_operation(vmxon_region, vmcs_a)) return 1;
    write_valid_l2(iv::secondary::enable_ept);
    vmx::vmwrite(iv::field::ept_pointer, where | iv::ept::memory_type_wb | kEptpWalk4);
    println("l1's ept pointer at ", what, " ", hex(where), ", l2 starts");
    vmx::enter(true);
    println("WRONG: L1 resumed with exit reason ", hex(vmx::vmread(iv::field::exit_reason)));
    return 1;
}

// A TPR shadow whose virtual-APIC page is not L1's RAM: L0 has no page to give L2.
int tpr_page_elsewhere(u64 where) {
    if (!vmx::enter_vmx_operation(vmxon_region, vmcs_a)) return 1;
    write_valid_l2();
    vmx::vmwrite(iv::field::primary_controls, vmx::vmread(iv::field::primary_controls) | iv::primary::use_tpr_shadow);
    vmx::vmwrite(iv::field::virtual_apic_page_address, where);
    vmx::vmwrite(iv::field::tpr_threshold, 0);
    println("virtual-apic page at ", hex(where), ", l2 starts");
    vmx::enter(true);
    println("WRONG: L1 resumed with exit reason ", hex(vmx::vmread(iv::field::exit_reason)));
    return 1;
}

// A VM-exit MSR-store or -load list (`count_field`, `address_field`) at `where`, which is not L1's
// RAM: entry succeeds, L2's VMCALL exits, and the exit cannot complete: a VMX abort (SDM 27.7).
int exit_list_elsewhere(u32 count_field, u32 address_field, u64 where, const char* what) {
    if (!vmx::enter_vmx_operation(vmxon_region, vmcs_a)) return 1;
    write_valid_l2();
    vmx::vmwrite(count_field, 1);
    vmx::vmwrite(address_field, where);
    println(what, " at ", hex(where), ", l2 starts");
    vmx::enter(true);
    println("WRONG: L1 resumed with exit reason ", hex(vmx::vmread(iv::field::exit_reason)));
    return 1;
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot* boot) {
    revision = static_cast<u32>(rdmsr(iv::vmx_msr::vmx_basic) & iv::basic::revision_mask);
    set_revision(vmxon_region, revision);
    char which[24];
    const char* c = boot->cmdline_value("case", which, sizeof(which));
    int status = 1;
    if (!c)
        println("vmx_hostile_l1: no case= on the command line");
    else if (string_equal(c, "checks"))
        status = checks();
    else if (string_equal(c, "ept_outside"))
        status = ept_elsewhere(kMemoryEnd, "l1-physical");
    else if (string_equal(c, "ept_mmio"))
        status = ept_elsewhere(kLapic, "the local apic's address");
    else if (string_equal(c, "tpr_page_mmio"))
        status = tpr_page_elsewhere(kLapic);
    else if (string_equal(c, "exit_store_outside"))
        status = exit_list_elsewhere(iv::field::exit_msr_store_count, iv::field::exit_msr_store_address, kMemoryEnd,
                                     "vm-exit msr-store list");
    else if (string_equal(c, "exit_load_mmio"))
        status = exit_list_elsewhere(iv::field::exit_msr_load_count, iv::field::exit_msr_load_address, kLapic,
                                     "vm-exit msr-load list");
    else
        println("vmx_hostile_l1: unknown case ", c);
    if (status == 0) println("vmx_hostile_l1 ", c, ": L1 lives on");
    return status;
}
