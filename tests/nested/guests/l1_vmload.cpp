// VMLOAD, VMSAVE, STGI and CLGI as an L1 hypervisor sees them. Before EFER.SVME all four #UD.
// With it: STGI and CLGI complete; VMSAVE stores L1's FS, GS, TR and LDTR and touches nothing
// outside the VMLOAD state; VMLOAD of a changed page reaches the CPU (FS/GS bases read through the
// segments, KernelGsBase through SWAPGS, TR/LDTR through STR/SLDT, LSTAR/STAR/SFMASK through
// SYSCALL: L0 refuses RDMSR of these MSRs to L1), and a VMSAVE after it gives every field back;
// an unaligned address or one outside L1's memory #GPs.
#include "l1_common.hpp"

using namespace l1;

// SYSCALL with RFLAGS.DF set: the target (LSTAR) returns the RFLAGS it started with (after
// SFMASK) in RAX, its CS in RDX, and goes back to RCX with the caller's RFLAGS (R11).
extern "C" char l1_syscall_probe[], l1_syscall_target[];
asm(R"(
    .pushsection .text
    .globl l1_syscall_probe, l1_syscall_target
l1_syscall_probe:
    std
    syscall
    cld
    ret
l1_syscall_target:
    pushfq
    pop %rax
    mov %cs, %edx
    push %r11
    popfq
    jmp *%rcx
    .popsection
)");

namespace {

alignas(4096) svm::Vmcb original;  // L1's state before the test, loaded back at the end
alignas(4096) svm::Vmcb saved;
alignas(4096) svm::Vmcb changed;
alignas(4096) svm::Vmcb round_trip;

volatile u64 fs_marker = 0xF5F5F5F5;
volatile u64 gs_marker = 0x65656565;
volatile u64 kernel_gs_marker = 0x6B6B6B6B;

constexpr u16 kCodeSelector = 0x08;  // the runtime's GDT: 0x08 code, 0x10 data
constexpr u64 kSfmaskDf = 1u << 10;

const char* outcome(const ExceptionRecord& r) { return r.raised ? exception_name(r.vector) : "ok"; }

void report_before_svme() {
    ExceptionRecord load = try_run([] { svm::vmload(&saved); });
    ExceptionRecord save = try_run([] { svm::vmsave(&saved); });
    ExceptionRecord stgi = try_run([] { svm::stgi(); });
    ExceptionRecord clgi = try_run([] { svm::clgi(); });
    println("before svme: vmload ", outcome(load), ", vmsave ", outcome(save), ", stgi ", outcome(stgi), ", clgi ",
            outcome(clgi));
}

u16 read_fs() {
    u16 v;
    asm volatile("mov %%fs, %0" : "=r"(v));
    return v;
}
u16 read_gs() {
    u16 v;
    asm volatile("mov %%gs, %0" : "=r"(v));
    return v;
}
u16 read_tr() {
    u16 v;
    asm volatile("str %0" : "=r"(v));
    return v;
}
u16 read_ldtr() {
    u16 v;
    asm volatile("sldt %0" : "=r"(v));
    return v;
}
u64 read_fs_0() {
    u64 v;
    asm volatile("mov %%fs:0, %0" : "=r"(v));
    return v;
}
u64 read_gs_0() {
    u64 v;
    asm volatile("mov %%gs:0, %0" : "=r"(v));
    return v;
}
u64 read_kernel_gs_0() {
    u64 v;
    asm volatile("swapgs; mov %%gs:0, %0; swapgs" : "=r"(v));
    return v;
}

bool same(const svm::VmcbSegment& a, const svm::VmcbSegment& b) {
    return a.selector == b.selector && a.attrib == b.attrib && a.limit == b.limit && a.base == b.base;
}

bool check_vmsave() {
    for (u64 i = 0; i < sizeof(saved); ++i) reinterpret_cast<volatile u8*>(&saved)[i] = 0xA5;
    svm::vmsave(&saved);
    const svm::VmcbSave& s = saved.save;
    bool selectors = s.fs.selector == read_fs() && s.gs.selector == read_gs() && s.tr.selector == read_tr() &&
                     s.ldtr.selector == read_ldtr();
    println("vmsave: fs ", hex(s.fs.selector, 1), " gs ", hex(s.gs.selector, 1), " tr ", hex(s.tr.selector, 1),
            " ldtr ", hex(s.ldtr.selector, 1), ", as the cpu has them: ", selectors ? "yes" : "no");
    constexpr u64 kPattern = 0xA5A5A5A5A5A5A5A5;
    bool untouched = s.rip == kPattern && s.rsp == kPattern && s.cr3 == kPattern && s.g_pat == kPattern &&
                     s.cs.base == kPattern && saved.control.exit_code == kPattern;
    println("vmsave: fields outside the vmload state untouched: ", untouched ? "yes" : "no");
    return selectors && untouched;
}

bool check_vmload() {
    changed = saved;
    svm::VmcbSave& c = changed.save;
    c.fs.base = reinterpret_cast<u64>(&fs_marker);
    c.gs.base = reinterpret_cast<u64>(&gs_marker);
    c.kernel_gs_base = reinterpret_cast<u64>(&kernel_gs_marker);
    c.tr = svm::VmcbSegment{0x28, 0x8B, 0x67, 0x12345000};     // a busy 64-bit TSS
    c.ldtr = svm::VmcbSegment{0x30, 0x82, 0xFFF, 0x23456000};  // an LDT
    c.star = u64{kCodeSelector} << 32;
    c.lstar = reinterpret_cast<u64>(l1_syscall_target);
    c.cstar = 0xFFFF800000C5A000;
    c.sfmask = kSfmaskDf;
    c.sysenter_cs = 0x51;
    c.sysenter_esp = 0xFFFF800000E5E000;
    c.sysenter_eip = 0xFFFF800000E1E000;
    svm::vmload(&changed);

    u64 fs = read_fs_0(), gs = read_gs_0(), kernel_gs = read_kernel_gs_0();
    bool bases = fs == fs_marker && gs == gs_marker && kernel_gs == kernel_gs_marker;
    println("vmload: fs:0 ", hex(fs, 1), " gs:0 ", hex(gs, 1), " after swapgs ", hex(kernel_gs, 1),
            ", the new bases: ", bases ? "yes" : "no");
    u16 tr = read_tr(), ldtr = read_ldtr();
    println("vmload: str ", hex(tr, 1), " sldt ", hex(ldtr, 1));

    wrmsr(svm::kMsrEfer, rdmsr(svm::kMsrEfer) | svm::kEferSce);
    u64 rflags = 0, cs = 0;
    asm volatile("sub $128, %%rsp\n\tcall l1_syscall_probe\n\tadd $128, %%rsp"
                 : "=a"(rflags), "=d"(cs)
                 :
                 : "rcx", "r11", "memory", "cc");
    bool syscall_ok = cs == kCodeSelector && !(rflags & kRflagsDf);
    println("vmload: syscall reached lstar with cs ", hex(cs, 1),
            ", rflags.df masked by sfmask: ", (rflags & kRflagsDf) ? "no" : "yes");

    svm::vmsave(&round_trip);
    const svm::VmcbSave& r = round_trip.save;
    bool all = same(r.fs, c.fs) && same(r.gs, c.gs) && same(r.tr, c.tr) && same(r.ldtr, c.ldtr) &&
               r.kernel_gs_base == c.kernel_gs_base && r.star == c.star && r.lstar == c.lstar && r.cstar == c.cstar &&
               r.sfmask == c.sfmask && r.sysenter_cs == c.sysenter_cs && r.sysenter_esp == c.sysenter_esp &&
               r.sysenter_eip == c.sysenter_eip;
    println("vmsave after vmload: every field as loaded: ", all ? "yes" : "no");
    return bases && tr == 0x28 && ldtr == 0x30 && syscall_ok && all;
}

void report_bad_addresses() {
    static u64 address;
    address = reinterpret_cast<u64>(&saved) + 8;
    println("vmload unaligned: ", outcome(try_run([] { svm::vmload(address); })));
    println("vmsave unaligned: ", outcome(try_run([] { svm::vmsave(address); })));
    address = memory_end();
    println("vmload outside memory: ", outcome(try_run([] { svm::vmload(address); })));
    println("vmsave outside memory: ", outcome(try_run([] { svm::vmsave(address); })));
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    report_before_svme();
    enable_svm();
    ExceptionRecord gif = try_run([] {
        svm::clgi();
        svm::stgi();
    });
    println("with svme: clgi, stgi ", outcome(gif));

    svm::vmsave(&original);
    bool ok = check_vmsave();
    ok = check_vmload() && ok;
    svm::vmload(&original);
    report_bad_addresses();
    return ok && !gif.raised ? 0 : 1;
}
