// The MSRs a vCPU owns are switched with it (tests/boot/switched_msrs.cmake): two domains run this
// guest side by side, each with values of its own ("seed=1", "seed=2"), yielding between a write
// and the reads that check it, so that the other domain runs in between.
//  - at start every switched MSR holds its reset value: the second domain ("seed=2") looks only
//    once the first has written its own values and signalled it;
//  - FS_BASE, GS_BASE, KERNEL_GS_BASE, STAR, LSTAR, CSTAR, SFMASK, SYSENTER_CS/ESP/EIP, TSC_AUX
//    and PAT read back what was written, before and after each yield, for several rounds;
//  - a PAT write with a memory type the SDM does not define #GPs and changes nothing;
//  - RDTSCP and RDPID, where CPUID offers them, read TSC_AUX;
//  - SYSCALL from ring 0 reaches LSTAR with STAR's selectors and SFMASK applied, SWAPGS exchanges
//    GS_BASE and KERNEL_GS_BASE, SYSRET goes to ring 3 with STAR's selectors, and SYSCALL from
//    ring 3 comes back: all with the values set before the yields.
// The exit status is the checks that failed, one bit each (kFail*): 0 when every one passed.
#include "hostile.hpp"
#include "nestor/x86_tables.hpp"

using namespace nestor::guest;

namespace {

constexpr int kFailInitial = 1 << 0;
constexpr int kFailReadBack = 1 << 1;
constexpr int kFailAfterYield = 1 << 2;
constexpr int kFailPatCheck = 1 << 3;
constexpr int kFailSyscall = 1 << 4;
constexpr int kFailTscAux = 1 << 5;

constexpr u32 kRounds = 4;
constexpr u32 kYieldsPerRound = 3;

// The GDT of the SYSCALL round trip, in the order STAR needs: SYSCALL loads CS from STAR[47:32]
// and SS from it + 8; 64-bit SYSRET loads CS from STAR[63:48] + 16 and SS from it + 8, RPL 3.
constexpr u16 kKernelCode = 0x08;
constexpr u16 kUserBase = 0x18;
constexpr u16 kUserData = 0x23;  // kUserBase + 8, RPL 3
constexpr u16 kUserCode = 0x2B;  // kUserBase + 16, RPL 3
constexpr u16 kKernelStack = 0x10;
constexpr u16 kTssSelector = 0x30;

struct Msr {
    u32 index;
    const char* name;
};
constexpr Msr kMsrs[] = {
    {kMsrFsBase, "FS_BASE"},
    {kMsrGsBase, "GS_BASE"},
    {kMsrKernelGsBase, "KERNEL_GS_BASE"},
    {kMsrStar, "STAR"},
    {kMsrLstar, "LSTAR"},
    {kMsrCstar, "CSTAR"},
    {kMsrSfmask, "SFMASK"},
    {kMsrSysenterCs, "SYSENTER_CS"},
    {kMsrSysenterEsp, "SYSENTER_ESP"},
    {kMsrSysenterEip, "SYSENTER_EIP"},
    {kMsrTscAux, "TSC_AUX"},
    {kMsrPat, "PAT"},
};

// What the round trip saw (the assembly below fills it; offsets fixed).
struct SyscallRecord {
    u64 return_rip;        // 0: RCX at the first SYSCALL
    u64 rflags_before;     // 8: R11 there
    u64 rflags_in_entry;   // 16
    u64 entry_cs;          // 24
    u64 entry_ss;          // 32
    u64 gs_after_swapgs;   // 40
    u64 kgs_after_swapgs;  // 48
    u64 ring3_cs;          // 56
    u64 ring3_ss;          // 64
    u64 back_cs;           // 72: CS after the SYSCALL from ring 3
};

alignas(16) u64 gdt[8] = {};
alignas(16) x86::Tss tss = {};
alignas(16) u8 fault_stack[4096] = {};

}  // namespace

extern "C" {
u64 syscall_saved_rsp = 0;
void syscall_entry();
void syscall_return_point();
void syscall_ring3();
void syscall_round_trip(SyscallRecord* record);
}

// syscall_round_trip: SYSCALL from ring 0 with DF and AC set (SFMASK's business); the entry runs
// twice, told apart by R12: first from ring 0 (it records, swaps GS twice around RDMSRs and
// SYSRETs to ring 3), then from ring 3 (it records and returns to the C caller). RBX holds the
// record throughout; ring 3 touches no memory.
asm(R"(
    .text
    .global syscall_round_trip, syscall_entry, syscall_return_point, syscall_ring3
syscall_round_trip:
    push %rbx
    push %rbp
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, syscall_saved_rsp(%rip)
    mov %rdi, %rbx
    xor %r12d, %r12d
    pushfq
    orq $0x40400, (%rsp)
    popfq
    syscall
syscall_return_point:
    ud2

syscall_entry:
    test %r12, %r12
    jnz 1f
    mov %rcx, 0(%rbx)
    mov %r11, 8(%rbx)
    pushfq
    popq 16(%rbx)
    mov %cs, %eax
    mov %rax, 24(%rbx)
    mov %ss, %eax
    mov %rax, 32(%rbx)
    swapgs
    mov $0xC0000101, %ecx
    rdmsr
    mov %eax, 40(%rbx)
    mov %edx, 44(%rbx)
    mov $0xC0000102, %ecx
    rdmsr
    mov %eax, 48(%rbx)
    mov %edx, 52(%rbx)
    swapgs
    lea syscall_ring3(%rip), %rcx
    mov $0x2, %r11d
    sysretq
1:  mov %r13, 56(%rbx)
    mov %r14, 64(%rbx)
    mov %cs, %eax
    mov %rax, 72(%rbx)
    mov syscall_saved_rsp(%rip), %rsp
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbp
    pop %rbx
    ret

syscall_ring3:
    mov %cs, %eax
    mov %rax, %r13
    mov %ss, %eax
    mov %rax, %r14
    mov $1, %r12d
    syscall
    ud2
)");

namespace {

u64 seed = 1;

// Each MSR's value for this domain and round: distinct per domain, per round and per MSR, and
// legal where the architecture restricts it (canonical addresses, 16-bit SYSENTER_CS, 32-bit
// SFMASK, SYSENTER_ESP/EIP and TSC_AUX, defined PAT types, WB for PAT entry 0).
u64 value_of(u32 msr, u32 round) {
    u64 tag = (seed << 4) | round;  // 0x10..0x23
    switch (msr) {
    case kMsrFsBase: return 0x0000111100000000 | (tag << 12);
    case kMsrGsBase: return 0x0000222200000000 | (tag << 12);
    case kMsrKernelGsBase: return 0x0000333300000000 | (tag << 12);
    case kMsrStar: return 0x0023001000000000 | (tag << 8);
    case kMsrLstar: return 0x0000444400000000 | (tag << 12);
    case kMsrCstar: return 0x0000555500000000 | (tag << 12);
    case kMsrSfmask: return 0x00000700 | tag;
    case kMsrSysenterCs: return 0x1000 | (tag << 4);
    case kMsrSysenterEsp: return 0x66600000 | (tag << 8);
    case kMsrSysenterEip: return 0x77700000 | (tag << 8);
    case kMsrTscAux: return 0xA0000000 | tag;
    case kMsrPat: {
        // Entry 0 stays WB; entries 1-7 take UC, WC, WT, WP, WB, UC- in an order of its own.
        constexpr u8 kTypes[] = {0, 1, 4, 5, 6, 7};
        u64 pat = 6;
        for (u32 i = 1; i < 8; ++i) pat |= u64{kTypes[(i + tag) % 6]} << (8 * i);
        return pat;
    }
    default: return 0;
    }
}

u64 reset_value(u32 msr) { return msr == kMsrPat ? kPatReset : 0; }

bool has_tsc_aux() { return (cpuid(0x80000001).edx & kCpuidExt1EdxRdtscp) || (cpuid(7, 0).ecx & kCpuid7EcxRdpid); }

bool check_msr(const Msr& m, u64 expected, const char* when) {
    u64 seen = rdmsr(m.index);
    if (seen == expected) return true;
    println("msrs: ", m.name, " ", when, ": ", hex(seen), ", not ", hex(expected));
    return false;
}

bool skipped(const Msr& m) { return m.index == kMsrTscAux && !has_tsc_aux(); }

// The reset values, whatever the other domain wrote before (FS and GS bases too: 0, which the
// runtime's loads of null selectors keep).
int check_initial() {
    bool ok = true;
    for (const Msr& m : kMsrs)
        if (!skipped(m)) ok &= check_msr(m, reset_value(m.index), "at start");
    println("msrs: every MSR holds its reset value at start: ", ok ? "yes" : "no");
    return ok ? 0 : kFailInitial;
}

int yields(u32 count) {
    for (u32 i = 0; i < count; ++i)
        if (!yield().ok()) return kFailAfterYield;
    return 0;
}

// The first domain has written its values: the second may look at its own reset values now.
void signal_the_other() {
    if (!invoke(NESTOR_HC_NOTIFICATION_SIGNAL, NESTOR_GUEST_SLOT_SIGNAL_BASE).ok())
        println("msrs: the signal to the other domain was refused");
}

// Rounds of: write every MSR, read each back, yield (the other domain writes its own), read again.
int check_rounds() {
    int failed = 0;
    for (u32 round = 0; round < kRounds; ++round) {
        for (const Msr& m : kMsrs)
            if (!skipped(m)) wrmsr(m.index, value_of(m.index, round));
        if (round == 0 && seed == 1) signal_the_other();
        for (const Msr& m : kMsrs)
            if (!skipped(m) && !check_msr(m, value_of(m.index, round), "read back")) failed |= kFailReadBack;
        failed |= yields(kYieldsPerRound);
        for (const Msr& m : kMsrs)
            if (!skipped(m) && !check_msr(m, value_of(m.index, round), "after yields")) failed |= kFailAfterYield;
    }
    println("msrs: ", kRounds, " rounds of writes kept through ", kRounds * kYieldsPerRound,
            " yields: ", failed ? "no" : "yes");
    return failed;
}

// Types 2, 3 and 8 and up are reserved: WRMSR #GPs and PAT keeps its value.
int check_pat_types() {
    u64 before = rdmsr(kMsrPat);
    bool ok = true;
    const u64 reserved[] = {0x0007040600070206, 0x0007040603070406, 0x0807040600070406};
    for (u64 bad : reserved) {
        ExceptionRecord r = try_run([&] { wrmsr(kMsrPat, bad); });
        ok &= r.vector == kVectorGP && r.error_code == 0 && rdmsr(kMsrPat) == before;
    }
    println("msrs: PAT writes of reserved memory types #GP(0) and change nothing: ", ok ? "yes" : "no");
    return ok ? 0 : kFailPatCheck;
}

// RDTSCP and RDPID read TSC_AUX, where CPUID offers them.
int check_tsc_aux_readers() {
    if (!has_tsc_aux()) {
        println("msrs: rdtscp absent, rdpid absent: no TSC_AUX");
        return 0;
    }
    u64 expected = rdmsr(kMsrTscAux);
    bool rdtscp = cpuid(0x80000001).edx & kCpuidExt1EdxRdtscp;
    bool rdpid = cpuid(7, 0).ecx & kCpuid7EcxRdpid;
    bool ok = true;
    if (rdtscp) {
        u64 aux = ~u64{0};
        ExceptionRecord r = try_run([&] { asm volatile("rdtscp" : "=c"(aux)::"rax", "rdx"); });
        ok &= !r.raised && aux == expected;
    }
    if (rdpid) {
        u64 aux = ~u64{0};
        ExceptionRecord r = try_run([&] { asm volatile("rdpid %0" : "=r"(aux)); });
        ok &= !r.raised && aux == expected;
    }
    println("msrs: rdtscp ", rdtscp ? "offered" : "absent", ", rdpid ", rdpid ? "offered" : "absent",
            ", what they read is TSC_AUX: ", ok ? "yes" : "no");
    return ok ? 0 : kFailTscAux;
}

// Ring-3 segments for SYSRET, and a TSS whose RSP0 takes a fault in ring 3 to the runtime's
// report. The SDK maps everything supervisor-only: open the first 4 MiB (this image) to ring 3.
void prepare_ring3() {
    gdt[1] = 0x00AF9A000000FFFF;  // 0x08 ring-0 code, 64-bit (as the SDK's)
    gdt[2] = 0x00CF92000000FFFF;  // 0x10 ring-0 data
    gdt[3] = 0x00CFFA000000FFFF;  // 0x18 ring-3 code, 32-bit (SYSRET to compatibility mode)
    gdt[4] = 0x00CFF2000000FFFF;  // 0x20 ring-3 data
    gdt[5] = 0x00AFFA000000FFFF;  // 0x28 ring-3 code, 64-bit
    u64 base = reinterpret_cast<u64>(&tss), limit = sizeof(x86::Tss) - 1;
    gdt[6] = (limit & 0xFFFF) | ((base & 0xFFFFFF) << 16) | (u64{0x89} << 40) | (((base >> 24) & 0xFF) << 56);
    gdt[7] = base >> 32;
    tss.rsp[0] = reinterpret_cast<u64>(fault_stack + sizeof(fault_stack));
    tss.iomap_base = sizeof(x86::Tss);
    x86::TablePointer g{sizeof(gdt) - 1, reinterpret_cast<u64>(gdt)};
    asm volatile("lgdt %0; ltr %w1" ::"m"(g), "r"(kTssSelector) : "memory");
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

bool syscall_record_ok(const SyscallRecord& r, u64 sfmask, u64 gs, u64 kgs) {
    bool ok = r.return_rip == reinterpret_cast<u64>(syscall_return_point);
    ok &= (r.rflags_before & (kRflagsDf | kRflagsAc)) == (kRflagsDf | kRflagsAc);
    ok &= r.rflags_in_entry == (r.rflags_before & ~sfmask & ~kRflagsRf);
    ok &= r.entry_cs == kKernelCode && r.entry_ss == kKernelStack;
    ok &= r.gs_after_swapgs == kgs && r.kgs_after_swapgs == gs;
    ok &= r.ring3_cs == kUserCode && r.ring3_ss == kUserData && r.back_cs == kKernelCode;
    if (!ok)
        println("msrs: syscall saw rcx ", hex(r.return_rip), " r11 ", hex(r.rflags_before), " rflags ",
                hex(r.rflags_in_entry), " cs:ss ", hex(r.entry_cs), ":", hex(r.entry_ss), " gs ",
                hex(r.gs_after_swapgs), " kgs ", hex(r.kgs_after_swapgs), " ring 3 cs:ss ", hex(r.ring3_cs), ":",
                hex(r.ring3_ss), " back cs ", hex(r.back_cs));
    return ok;
}

// SYSCALL / SWAPGS / SYSRET with the STAR, LSTAR and SFMASK set before the yields: each domain
// masks other RFLAGS bits (seed 1: DF and AC, seed 2: DF only), and its GS bases are its own.
int check_syscall_round_trip() {
    prepare_ring3();
    u64 sfmask = seed == 1 ? (kRflagsDf | kRflagsAc) : kRflagsDf;
    wrmsr(kMsrEfer, rdmsr(kMsrEfer) | kEferSce);
    wrmsr(kMsrStar, (u64{kUserBase} << 48) | (u64{kKernelCode} << 32) | (0x5EED0000 | seed));
    wrmsr(kMsrLstar, reinterpret_cast<u64>(syscall_entry));
    wrmsr(kMsrSfmask, sfmask);
    u64 gs = rdmsr(kMsrGsBase), kgs = rdmsr(kMsrKernelGsBase);
    int failed = yields(kYieldsPerRound);
    SyscallRecord record{};
    syscall_round_trip(&record);
    bool ok = failed == 0 && syscall_record_ok(record, sfmask, gs, kgs);
    println("msrs: SYSCALL, SWAPGS and SYSRET to ring 3 and back with its own STAR, LSTAR, SFMASK and GS bases: ",
            ok ? "yes" : "no");
    return ok ? 0 : kFailSyscall;
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    seed = hostile::number_option("seed", 1);
    if (seed != 1 && seed != 2) return kUnexpectedExceptionStatus;
    if (seed == 2) wait_for_signal();
    int failed = check_initial();
    failed |= check_rounds();
    failed |= check_pat_types();
    failed |= check_tsc_aux_readers();
    failed |= check_syscall_round_trip();
    println("msrs: done, status ", failed);
    return failed;
}
