// What the nested-paging L1 test hypervisors share (npt_l1.cpp, hostile_l1_cases.cpp): a pool of
// frames of the L1's own memory, a nested page table (NPT) built in them, and an L2 whose
// physical space is not the L1's: L2's code, stack, data and page tables live in L1 frames
// wherever the L1's image put them, and L1's NPT shows them to L2 at L2-physical 0x40000000
// (1 GiB, far beyond the L1's 16 MiB). So an L2 access that reaches the right bytes proves the
// translation went through L1's NPT: without it, the same L2-physical address is not even L1 RAM.
#pragma once

#include "nestor/guest.hpp"
#include "nestor/svm.hpp"

// L2-physical layout (L2 runs with linear = physical), shared with the L2 code below.
#define NPT_L2_BASE 0x40000000
#define NPT_L2_CODE 0x40001000  // the code page (npt_l2_code_page)
#define NPT_L2_STACK 0x40002000
#define NPT_L2_DATA 0x40005000      // mapped at set-up
#define NPT_L2_UNMAPPED 0x40006000  // not mapped until L1 handles the #NPF
#define NPT_L2_READ_ONLY 0x40007000
#define NPT_L2_LANDING 0x40008000  // a second view of the code page, mapped on the fetch's #NPF
#define NPT_L2_IDT 0x40009000      // L2's IDT and GDT (a copy of L1's) for the event case
#define NPT_L2_GDT 0x4000A000
#define NPT_L2_PML4 0x40010000
#define NPT_L2_PDPT 0x40011000
#define NPT_L2_PD 0x40012000
#define NPT_L2_PT 0x40013000          // the page table behind linear NPT_L2_WALK, mapped on its #NPF
#define NPT_L2_WALK 0x40200000        // linear: through NPT_L2_PT to NPT_L2_DATA
#define NPT_L2_LARGE 0x40400000       // 2 MiB, a large page in L2's tables and in L1's NPT
#define NPT_L2_LARGE_READ 0x40523008  // inside it, the 289th 4 KiB page
#define NPT_L2_HUGE 0xC0000000        // 1 GiB, a level-3 leaf of L1's NPT (to L1-physical 0) ...
#define NPT_L2_HUGE_READ 0xC0600010   // ... read here, through L2's page directory at:
#define NPT_L2_HUGE_PD 0x40016000
#define NPT_L2_BUDGET_BASE 0x80000000  // 1.5 GiB of 2 MiB regions, through L2's page directories ...
#define NPT_L2_BUDGET_REGIONS 768
#define NPT_L2_BUDGET_PD 0x40014000  // ... at 0x40014000 and 0x40015000
// The invlpga / marker cases: the reader touches the first 64 of those regions, then reads
// kL2Data for NPT_L2_READER_CYCLES of its TSC; the holder reads kL2Data (the marker) and runs on.
#define NPT_L2_SHARED_REGIONS 64
#define NPT_L2_READER_CYCLES 10000000000
#define NPT_L2_HOLDER_CYCLES 600000000
#define NPT_L2_READER_VALUE 0x7265616465722121  // "reader!!": in the reader's kL2Data frame
#define NPT_L2_MARKER 0x4d41524b45522121        // "MARKER!!": in the other domain's

#define NPT_STRINGIFY2(x) #x
#define NPT_STRINGIFY(x) NPT_STRINGIFY2(x)

// L2's code: one page, with linear absolute addresses only (it runs at NPT_L2_CODE, not where
// the L1's image holds it). Every routine reports through exits the L1 intercepts: CPUID (with
// what it read in RAX) and HLT. An instruction an #NPF interrupts runs again when L1 resumes
// L2, with the registers L1's own code left (VMRUN keeps only RAX and RSP): none depends on another.
extern "C" char npt_l2_code_page[], npt_l2_landing[], npt_l2_read_data[], npt_l2_translate[], npt_l2_npf[],
    npt_l2_remap[], npt_l2_read_only[], npt_l2_jump_landing[], npt_l2_budget[], npt_l2_event_entry[],
    npt_l2_event_handler[], npt_l2_spin[], npt_l2_triple_fault[], npt_l2_exit_port[], npt_l2_cpuid_hlt[],
    npt_l2_invlpga_reader[], npt_l2_marker_holder[];
asm(R"(
    .pushsection .text.npt_l2, "ax"
    .balign 4096
    .globl npt_l2_code_page, npt_l2_landing, npt_l2_read_data, npt_l2_translate, npt_l2_npf, npt_l2_remap
    .globl npt_l2_read_only, npt_l2_jump_landing, npt_l2_budget, npt_l2_event_entry, npt_l2_event_handler
    .globl npt_l2_spin, npt_l2_triple_fault, npt_l2_exit_port, npt_l2_cpuid_hlt
    .globl npt_l2_invlpga_reader, npt_l2_marker_holder
npt_l2_code_page:
npt_l2_landing:                       // offset 0: also reached as NPT_L2_LANDING
    cpuid
    hlt
npt_l2_read_data:
    mov )" NPT_STRINGIFY(NPT_L2_DATA) R"(, %rax
    cpuid
    hlt
npt_l2_translate:
    mov )" NPT_STRINGIFY(NPT_L2_DATA) R"(, %rax
    cpuid
    mov )" NPT_STRINGIFY(NPT_L2_LARGE_READ) R"(, %rax
    cpuid
    mov $)" NPT_STRINGIFY(NPT_L2_HUGE_READ) R"(, %edx
    mov (%rdx), %rax
    cpuid
    hlt
npt_l2_npf:
    mov )" NPT_STRINGIFY(NPT_L2_UNMAPPED) R"(, %rax      // #NPF: not in L1's NPT
    cpuid
    mov )" NPT_STRINGIFY(NPT_L2_WALK) R"(, %rax          // #NPF on the walk of L2's page table
    cpuid
    mov $)" NPT_STRINGIFY(NPT_L2_LANDING) R"(, %rax
    jmp *%rax                                            // #NPF on the fetch
npt_l2_remap:
    mov )" NPT_STRINGIFY(NPT_L2_DATA) R"(, %rax
    cpuid
    mov )" NPT_STRINGIFY(NPT_L2_DATA) R"(, %rax          // after L1's remap and TLB_CONTROL
    cpuid
    mov )" NPT_STRINGIFY(NPT_L2_DATA) R"(, %rax          // after L1's remap and INVLPGA
    cpuid
    hlt
npt_l2_read_only:
    mov )" NPT_STRINGIFY(NPT_L2_READ_ONLY) R"(, %rax
    cpuid
    movq $0x57726974, )" NPT_STRINGIFY(NPT_L2_READ_ONLY) R"(  // #NPF: L1 maps it read-only
    mov )" NPT_STRINGIFY(NPT_L2_READ_ONLY) R"(, %rax
    cpuid
    hlt
npt_l2_jump_landing:
    mov $)" NPT_STRINGIFY(NPT_L2_LANDING) R"(, %rax
    jmp *%rax
npt_l2_budget:                        // one read in each of 768 2 MiB regions from 0x80000000
    xor %eax, %eax
    xor %ecx, %ecx
    mov $)" NPT_STRINGIFY(NPT_L2_BUDGET_BASE) R"(, %edx
1:  add (%rdx), %rax
    add $0x200008, %rdx               // the next region, 8 bytes further in
    inc %ecx
    cmp $)" NPT_STRINGIFY(NPT_L2_BUDGET_REGIONS) R"(, %ecx
    jne 1b
    cpuid
    hlt
npt_l2_event_entry:                   // where the event interrupts L2: reached only if it is lost
    mov $0xbad, %eax
    cpuid
    hlt
npt_l2_event_handler:                 // the injected event's handler: reports the RIP it interrupted
    mov (%rsp), %rax
    cpuid
    hlt
npt_l2_spin:
    jmp npt_l2_spin
npt_l2_triple_fault:                  // no IDT: #UD -> #GP -> #DF -> shutdown
    ud2
npt_l2_exit_port:                     // the exit port, which L1 lets L2 reach
    mov $0x2a, %al
    outb %al, $0xf4
    hlt
npt_l2_cpuid_hlt:
    cpuid
    hlt
    jmp npt_l2_cpuid_hlt
npt_l2_invlpga_reader:                // touch every shared region, INVLPGA, then read kL2Data for a while
    mov $)" NPT_STRINGIFY(NPT_L2_BUDGET_BASE) R"(, %edx
    xor %ecx, %ecx
1:  mov (%rdx), %rax                  // the shadow gets a table for each
    add $0x200000, %rdx
    inc %ecx
    cmp $)" NPT_STRINGIFY(NPT_L2_SHARED_REGIONS) R"(, %ecx
    jne 1b
    mov )" NPT_STRINGIFY(NPT_L2_DATA) R"(, %rax      // and one for the page read below
    xor %eax, %eax
    xor %ecx, %ecx
    invlpga %rax, %ecx                // L1 does not intercept it: Nestor drops the shadow
    movabs $)" NPT_STRINGIFY(NPT_L2_READER_VALUE) R"(, %r10
    movabs $)" NPT_STRINGIFY(NPT_L2_MARKER) R"(, %r11
    xor %esi, %esi                    // marker seen
    xor %edi, %edi                    // any other wrong value
    rdtsc
    shl $32, %rdx
    or %rdx, %rax
    mov %rax, %r8
    movabs $)" NPT_STRINGIFY(NPT_L2_READER_CYCLES) R"(, %r9
2:  mov )" NPT_STRINGIFY(NPT_L2_DATA) R"(, %rax
    cmp %r10, %rax
    je 4f
    cmp %r11, %rax
    jne 3f
    inc %esi
    jmp 4f
3:  inc %edi
4:  rdtsc
    shl $32, %rdx
    or %rdx, %rax
    sub %r8, %rax
    cmp %r9, %rax
    jb 2b
    shl $32, %rsi                     // one exit reports both: VMRUN keeps only RAX for L1
    or %rsi, %rdi
    mov %rdi, %rax
    cpuid
    hlt
npt_l2_marker_holder:                 // read kL2Data (the marker), then keep running for a while
    rdtsc
    shl $32, %rdx
    or %rdx, %rax
    mov %rax, %r8
    movabs $)" NPT_STRINGIFY(NPT_L2_HOLDER_CYCLES) R"(, %r9
1:  mov )" NPT_STRINGIFY(NPT_L2_DATA) R"(, %rax
    rdtsc
    shl $32, %rdx
    or %rdx, %rax
    sub %r8, %rax
    cmp %r9, %rax
    jb 1b
    hlt
    .balign 4096
    .popsection
)");

namespace npt_test {

using namespace nestor::guest;
namespace svm = nestor::guest::svm;

inline constexpr u64 kPage = 4096;
inline constexpr u32 kAsid = 1;
inline constexpr u64 kL2Base = NPT_L2_BASE;
inline constexpr u64 kL2Code = NPT_L2_CODE;
inline constexpr u64 kL2Stack = NPT_L2_STACK;
inline constexpr u64 kL2Data = NPT_L2_DATA;
inline constexpr u64 kL2Unmapped = NPT_L2_UNMAPPED;
inline constexpr u64 kL2ReadOnly = NPT_L2_READ_ONLY;
inline constexpr u64 kL2Landing = NPT_L2_LANDING;
inline constexpr u64 kL2Idt = NPT_L2_IDT;
inline constexpr u64 kL2Gdt = NPT_L2_GDT;
inline constexpr u64 kL2Pml4 = NPT_L2_PML4;
inline constexpr u64 kL2Pdpt = NPT_L2_PDPT;
inline constexpr u64 kL2Pd = NPT_L2_PD;
inline constexpr u64 kL2Pt = NPT_L2_PT;
inline constexpr u64 kL2Walk = NPT_L2_WALK;
inline constexpr u64 kL2Large = NPT_L2_LARGE;
inline constexpr u64 kL2LargeRead = NPT_L2_LARGE_READ;
inline constexpr u64 kL2Huge = NPT_L2_HUGE;
inline constexpr u64 kL2HugeRead = NPT_L2_HUGE_READ;
inline constexpr u64 kL2HugePd = NPT_L2_HUGE_PD;

// Not in the SDK header (owned elsewhere): the shutdown intercept and its exit code.
inline constexpr u32 kInterceptShutdown = 1u << 31;
inline constexpr u64 kExitShutdown = 0x7F;
// Exceptions L1 takes from L2 (every fault a broken translation could cause), so that a bug shows
// as an exit L1 reports rather than as an L2 triple fault.
inline constexpr u32 kInterceptedExceptions =
    (1u << 0) | (1u << 6) | (1u << 8) | (1u << 10) | (1u << 11) | (1u << 12) | (1u << 13) | (1u << 14);

// Guest page-table entry bits (L2's own tables).
inline constexpr u64 kPtePresent = 1, kPteWritable = 2, kPteLarge = 0x80;

// Frames of L1 memory for the NPT, L2's page tables and L2's pages (identity-mapped in L1).
inline constexpr u32 kFrames = 32;
alignas(4096) inline u8 frames[kFrames][4096];
inline u32 frames_used = 0;

inline u64 take_frame() {
    if (frames_used == kFrames) {
        println("npt: out of frames");
        exit(1);
    }
    u8* f = frames[frames_used++];
    for (u64 i = 0; i < kPage; ++i) f[i] = 0;
    return reinterpret_cast<u64>(f);
}
inline u64* table(u64 l1_physical) { return reinterpret_cast<u64*>(l1_physical); }

alignas(4096) inline svm::Vmcb vmcb;
alignas(4096) inline u8 host_save_area[4096];
inline u64 npt_root = 0;

// The leaf of L1's NPT for `l2_physical` (tables created on the way, present | writable | user:
// the leaf alone sets the rights). `table_rights` overrides what new tables get.
inline u64* npt_leaf(u64 l2_physical, u64 table_rights = svm::npt::present | svm::npt::writable | svm::npt::user) {
    u64 t = npt_root;
    for (unsigned level = svm::npt::levels; level > 1; --level) {
        u64& e = table(t)[svm::npt::index(l2_physical, level)];
        if (!(e & svm::npt::present)) e = take_frame() | table_rights;
        t = e & svm::npt::address_mask;
    }
    return &table(t)[svm::npt::index(l2_physical, 1)];
}
// A large leaf of L1's NPT for `l2_physical`: 2 MiB at `level` 2, 1 GiB at 3; both addresses
// aligned to it.
inline void npt_map_large(u64 l2_physical, u64 l1_physical, unsigned leaf_level = 2) {
    u64 t = npt_root;
    for (unsigned level = svm::npt::levels; level > leaf_level; --level) {
        u64& e = table(t)[svm::npt::index(l2_physical, level)];
        if (!(e & svm::npt::present)) e = take_frame() | svm::npt::present | svm::npt::writable | svm::npt::user;
        t = e & svm::npt::address_mask;
    }
    table(t)[svm::npt::index(l2_physical, leaf_level)] =
        l1_physical | svm::npt::present | svm::npt::writable | svm::npt::user | svm::npt::large;
}
inline void npt_map(u64 l2_physical, u64 l1_physical, bool writable = true) {
    *npt_leaf(l2_physical) = l1_physical | svm::npt::present | svm::npt::user | (writable ? svm::npt::writable : 0);
}

// L2's page tables, in L2-physical terms: linear [kL2Base, +2 MiB) and [kL2Large, +2 MiB) as
// large pages, and linear kL2Walk through a 4 KiB table at kL2Pt to kL2Data. The L1 frames
// holding them.
struct L2Tables {
    u64 pml4, pdpt, pd, pt;
};

// The NPT with what every case needs: L2's code, stack, data and page tables (not kL2Pt).
inline L2Tables set_up_npt(u64 data_frame) {
    npt_root = take_frame();
    L2Tables t{take_frame(), take_frame(), take_frame(), take_frame()};
    table(t.pml4)[0] = kL2Pdpt | kPtePresent | kPteWritable;
    table(t.pdpt)[(kL2Base >> 30) & 511] = kL2Pd | kPtePresent | kPteWritable;
    table(t.pd)[0] = kL2Base | kPtePresent | kPteWritable | kPteLarge;
    table(t.pd)[1] = kL2Pt | kPtePresent | kPteWritable;
    table(t.pd)[2] = kL2Large | kPtePresent | kPteWritable | kPteLarge;
    table(t.pt)[0] = kL2Data | kPtePresent | kPteWritable;
    npt_map(kL2Code, reinterpret_cast<u64>(npt_l2_code_page), false);
    npt_map(kL2Stack, take_frame());
    npt_map(kL2Data, data_frame);
    npt_map(kL2Pml4, t.pml4);
    npt_map(kL2Pdpt, t.pdpt);
    npt_map(kL2Pd, t.pd);
    return t;
}

// Turns on SVM for this L1 (EFER.SVME, a host save area).
inline void enable_svm() {
    wrmsr(svm::kMsrEfer, rdmsr(svm::kMsrEfer) | svm::kEferSvme);
    wrmsr(svm::kMsrVmHsavePa, reinterpret_cast<u64>(host_save_area));
}

// L2 in 64-bit mode on its own page tables (kL2Pml4) through L1's NPT, entering at `routine` of
// the code page. No GDT or IDT of its own: it loads no segment, and L1 takes its faults.
inline void set_up_vmcb(const char* routine) {
    for (u64 i = 0; i < sizeof(vmcb); ++i) reinterpret_cast<volatile u8*>(&vmcb)[i] = 0;
    svm::VmcbControl& c = vmcb.control;
    c.intercept_exceptions = kInterceptedExceptions;
    c.intercept_misc1 = svm::intercept1::cpuid | svm::intercept1::hlt | kInterceptShutdown;
    c.intercept_misc2 = svm::intercept2::vmrun | svm::intercept2::vmmcall;
    c.guest_asid = kAsid;
    c.nested_control = svm::kNestedPagingEnable;
    c.nested_cr3 = npt_root;
    svm::VmcbSave& s = vmcb.save;
    svm::copy_own_state(s);
    s.gdtr = s.idtr = svm::VmcbSegment{};
    s.cr3 = kL2Pml4;
    s.rip = kL2Code + static_cast<u64>(routine - npt_l2_code_page);
    s.rsp = kL2Stack + kPage;
}

inline u64 run_l2() {
    svm::vmrun(&vmcb);
    svm::stgi();  // every #VMEXIT clears GIF
    return vmcb.control.exit_code;
}

// Runs L2 and requires exit `expected`; anything else is reported and ends the guest.
inline void expect_exit(u64 expected) {
    u64 code = run_l2();
    if (code == expected) return;
    const svm::VmcbControl& c = vmcb.control;
    println("unexpected L2 exit ", hex(code, 1), " (expected ", hex(expected, 1), "): exitinfo1 ",
            hex(c.exit_info_1, 1), " exitinfo2 ", hex(c.exit_info_2, 1), " rip ", hex(vmcb.save.rip, 1));
    exit(1);
}

// Steps L2 over the instruction of the last exit (NRIP, which Nestor offers).
inline void step_over() { vmcb.save.rip = vmcb.control.next_rip; }

// "exitinfo1 0x... (write, present, user, final), exitinfo2 0x..." for an #NPF.
inline void print_npf() {
    u64 info = vmcb.control.exit_info_1;
    print("L2 exit ");
    print(hex(vmcb.control.exit_code, 1));
    print(" npf: exitinfo1 ");
    print(hex(info, 1));
    print(" (");
    print((info & svm::npf_info::write) ? "write" : (info & svm::npf_info::fetch) ? "fetch" : "read");
    print((info & svm::npf_info::present) ? ", present" : ", not present");
    if (info & svm::npf_info::user) print(", user");
    if (info & svm::npf_info::reserved) print(", reserved bit");
    if (info & svm::npf_info::final_address) print(", final address");
    if (info & svm::npf_info::table_walk) print(", table walk");
    println("), exitinfo2 ", hex(vmcb.control.exit_info_2, 1));
}

}  // namespace npt_test
