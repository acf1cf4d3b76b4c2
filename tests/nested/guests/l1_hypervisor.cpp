// A small L1 hypervisor on SVM, written with the guest SDK (nestor/svm.hpp): it runs an L2 of a
// few instructions in its own memory (64-bit code on L1's own page tables: CPUID, OUT to port
// 0x80, HLT) and reports each #VMEXIT. First a VMCB that fails VMRUN's checks (ASID 0:
// VMEXIT_INVALID) and an unaligned VMCB address (#GP), then the L2 itself: CPUID and I/O are
// stepped over with NRIP (offered by Nestor), HLT ends it.
#include "l1_common.hpp"

using namespace l1;

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
alignas(4096) u8 iopm[svm::kIopmBytes];
L2Stack l2_stack;

// L2 at l2_entry, its CPUID, HLT and every port intercepted.
void set_up_l2(u32 asid) {
    l1::set_up_l2(vmcb, l2_entry, l2_stack, asid);
    for (u64 i = 0; i < sizeof(iopm); ++i) iopm[i] = 0xFF;
    vmcb.control.intercept_misc1 = svm::intercept1::cpuid | svm::intercept1::hlt | svm::intercept1::ioio_prot;
    vmcb.control.iopm_base_pa = reinterpret_cast<u64>(iopm);
}

u64 run_l2() { return run(vmcb); }

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    enable_svm();

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
            (info & svm::ioio::type_in) ? " in" : " out", " al ", hex(vmcb.save.rax & 0xFF, 1));
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
