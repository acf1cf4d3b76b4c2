// A small L1 hypervisor on SVM, written with the guest SDK (nestor/svm.hpp): it runs an L2 of a
// few instructions in its own memory (64-bit code on L1's own page tables: CPUID, OUT to port
// 0x80, HLT) and reports each #VMEXIT. First a VMCB that fails VMRUN's checks (ASID 0:
// VMEXIT_INVALID) and an unaligned VMCB address (#GP), then the L2 itself: CPUID and I/O are
// stepped over with NRIP (offered by Nestor), HLT ends it.
#include "nestor/guest.hpp"
#include "nestor/svm.hpp"

using namespace nestor::guest;
namespace svm = nestor::guest::svm;

// L2: never reached by L1 itself.
extern "C" char l2_entry[];
asm(R"(
    .pushsection .text
    .globl l2_entry
l2_entry:
    cpuid
    mov $0x2a, %al
    outb %al, $0x80
    hlt
    jmp l2_entry
    .popsection
)");

namespace {

alignas(4096) svm::Vmcb vmcb;
alignas(4096) u8 host_save_area[4096];
alignas(4096) u8 iopm[svm::kIopmBytes];
alignas(16) u8 l2_stack[4096];

u16 read_selector_cs() {
    u16 v;
    asm volatile("mov %%cs, %0" : "=r"(v));
    return v;
}
u16 read_selector_ss() {
    u16 v;
    asm volatile("mov %%ss, %0" : "=r"(v));
    return v;
}

// L2 as a copy of L1's own 64-bit state, at l2_entry with a stack of its own and interrupts off.
void set_up_l2(u32 asid) {
    for (u64 i = 0; i < sizeof(vmcb); ++i) reinterpret_cast<volatile u8*>(&vmcb)[i] = 0;
    for (u64 i = 0; i < sizeof(iopm); ++i) iopm[i] = 0xFF;  // every port intercepted
    svm::VmcbControl& c = vmcb.control;
    c.intercept_misc1 = svm::intercept1::cpuid | svm::intercept1::hlt | svm::intercept1::ioio_prot;
    c.intercept_misc2 = svm::intercept2::vmrun | svm::intercept2::vmmcall;
    c.iopm_base_pa = reinterpret_cast<u64>(iopm);
    c.guest_asid = asid;
    svm::VmcbSave& s = vmcb.save;
    u16 data = read_selector_ss();
    s.cs = svm::VmcbSegment{read_selector_cs(), svm::kAttribCode64, 0xFFFFFFFF, 0};
    s.ss = s.ds = s.es = svm::VmcbSegment{data, svm::kAttribData, 0xFFFFFFFF, 0};
    s.gdtr = svm::read_gdtr();
    s.idtr = svm::read_idtr();
    s.cpl = 0;
    s.efer = rdmsr(svm::kMsrEfer);
    s.cr0 = read_cr0();
    s.cr3 = read_cr3();
    s.cr4 = read_cr4();
    s.dr6 = 0xFFFF0FF0;
    s.dr7 = 0x400;
    s.rflags = 2;
    s.rip = reinterpret_cast<u64>(l2_entry);
    s.rsp = reinterpret_cast<u64>(l2_stack + sizeof(l2_stack));
    s.g_pat = svm::kResetPat;
}

u64 run_l2() {
    svm::vmrun(&vmcb);
    svm::stgi();  // every #VMEXIT clears GIF
    return vmcb.control.exit_code;
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    wrmsr(svm::kMsrEfer, rdmsr(svm::kMsrEfer) | svm::kEferSvme);
    wrmsr(svm::kMsrVmHsavePa, reinterpret_cast<u64>(host_save_area));

    // A VMCB VMRUN must refuse: ASID 0 is the host's.
    set_up_l2(0);
    println("vmrun with asid 0: exit code ", static_cast<i64>(run_l2()));
    // A VMCB address that is not 4 KiB aligned: #GP.
    ExceptionRecord e = try_run([] { svm::vmrun(reinterpret_cast<u64>(&vmcb) + 8); });
    println("vmrun unaligned: ", e.raised ? exception_name(e.vector) : "returned");

    set_up_l2(1);
    u64 code = run_l2();
    if (code != svm::exit_code::cpuid) {
        println("expected a CPUID exit, got ", hex(code, 1));
        return 1;
    }
    u64 rip = vmcb.save.rip;
    println("L2 exit ", hex(code, 1), ": cpuid, next_rip - rip = ", vmcb.control.next_rip - rip);
    vmcb.save.rip = vmcb.control.next_rip;

    code = run_l2();
    if (code != svm::exit_code::ioio) {
        println("expected an IOIO exit, got ", hex(code, 1));
        return 1;
    }
    u64 info = vmcb.control.exit_info_1;
    println("L2 exit ", hex(code, 1), ": io port ", hex(svm::ioio::port(info), 1), " size ", svm::ioio::size(info),
            (info & svm::ioio::in) ? " in" : " out", " al ", hex(vmcb.save.rax & 0xFF, 1));
    vmcb.save.rip = vmcb.control.next_rip;

    code = run_l2();
    if (code != svm::exit_code::hlt) {
        println("expected a HLT exit, got ", hex(code, 1));
        return 1;
    }
    println("L2 exit ", hex(code, 1), ": hlt");
    println("L2 done");
    return 0;
}
