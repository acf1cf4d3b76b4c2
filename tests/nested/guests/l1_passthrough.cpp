// An L1 hypervisor whose L2 makes accesses L1 does not intercept: they must be judged by L1's own
// permissions, never by L0's. L1's maps intercept only a write of MSR 0x8b and port 0x80 (so the
// maps are in use); L2, C++ code of this image on L1's page tables and IDT, then
//  - prints through COM1 (0x3f8), which L1 lets through: the text is L1's console output;
//  - reads MSR 0x8b (L1 reads 0 there) and MSR 0x1b (L1 gets #GP): the same for L2;
//  - writes the PIC's mask register (0x21, a port the kernel owns): no effect, reads all-ones;
//  - reads and writes CMOS RAM (ports 0x70/0x71, granted to L1 by its manifest): real hardware;
//  - clears EFER.SVME in its own EFER: L2's, never L1's, which still runs L2 afterwards.
// L1 makes the same accesses itself before and after, so each pair of lines must agree.
#include "l1_common.hpp"

using namespace l1;

namespace {

alignas(4096) svm::Vmcb vmcb;
alignas(4096) u8 msrpm[svm::kMsrpmBytes];
alignas(4096) u8 iopm[svm::kIopmBytes];
L2Stack l2_stack;

constexpr u32 kMsrBiosSignId = 0x8B;  // L0 lets a guest read it (0) and ignores writes
constexpr u16 kPicMask = 0x21;
constexpr u16 kCmosIndex = 0x70;
constexpr u16 kCmosData = 0x71;
constexpr u8 kCmosScratch = 0x40;  // a byte of CMOS RAM no firmware interface uses
constexpr u16 kInterceptedPort = 0x80;

volatile u64 msr_value;

void report_msr(const char* who, u32 msr) {
    msr_value = 0x5A5A5A5A;
    ExceptionRecord r = try_run([msr] { msr_value = rdmsr(msr); });
    if (r.raised)
        println(who, ": rdmsr ", hex(msr, 1), ": ", exception_name(r.vector));
    else
        println(who, ": rdmsr ", hex(msr, 1), ": ", hex(msr_value, 1));
}

void report_pic_mask(const char* who) {
    outb(kPicMask, 0x5A);
    println(who, ": port 0x21 after writing 0x5a: ", hex(inb(kPicMask), 1));
}

u8 read_cmos(u8 index) {
    outb(kCmosIndex, index);
    return inb(kCmosData);
}
void write_cmos(u8 index, u8 value) {
    outb(kCmosIndex, index);
    outb(kCmosData, value);
}

}  // namespace

// L2: everything below runs in L2, with L1's view of memory.
extern "C" [[noreturn]] void l2_main() {
    println("L2: this line goes through port 0x3f8, which L1 does not intercept");
    report_msr("L2", kMsrBiosSignId);
    report_msr("L2", kMsrApicBase);
    report_pic_mask("L2");
    println("L2: cmos[0x40] ", hex(read_cmos(kCmosScratch), 1), ", writing 0x5c");
    write_cmos(kCmosScratch, 0x5C);
    u64 efer = rdmsr(svm::kMsrEfer);
    wrmsr(svm::kMsrEfer, efer & ~svm::kEferSvme);
    println("L2: efer.svme ", (efer & svm::kEferSvme) ? 1 : 0, ", after clearing it ",
            (rdmsr(svm::kMsrEfer) & svm::kEferSvme) ? 1 : 0);
    wrmsr(kMsrBiosSignId, 0);      // intercepted by L1
    outb(kInterceptedPort, 0x2A);  // intercepted by L1
    l2_report(0);
}

// L2's second run: straight back to L1.
extern "C" [[noreturn]] void l2_again() { l2_report(1); }

extern "C" int guest_main(const nestor_guest_boot*) {
    enable_svm();
    report_msr("L1", kMsrBiosSignId);
    report_msr("L1", kMsrApicBase);
    report_pic_mask("L1");
    write_cmos(kCmosScratch, 0xA5);

    set_up_l2(vmcb, l2_main, l2_stack);
    svm::msrpm::intercept(msrpm, kMsrBiosSignId, false, true);
    iopm[kInterceptedPort / 8] |= static_cast<u8>(1u << (kInterceptedPort % 8));
    vmcb.control.intercept_misc1 = svm::intercept1::msr_prot | svm::intercept1::ioio_prot;
    vmcb.control.msrpm_base_pa = reinterpret_cast<u64>(msrpm);
    vmcb.control.iopm_base_pa = reinterpret_cast<u64>(iopm);

    u64 code = run(vmcb);
    if (!expect_exit(code, svm::exit_code::msr, "the intercepted WRMSR")) return 1;
    println("L1: L2 exit ", hex(code, 1), " exitinfo1 ", vmcb.control.exit_info_1, ": the intercepted wrmsr 0x8b");
    skip_instruction(vmcb);
    code = run(vmcb);
    if (!expect_exit(code, svm::exit_code::ioio, "the intercepted OUT")) return 1;
    println("L1: L2 exit ", hex(code, 1), ": the intercepted port ", hex(svm::ioio::port(vmcb.control.exit_info_1), 1));
    skip_instruction(vmcb);
    if (!expect_exit(run(vmcb), svm::exit_code::vmmcall, "VMMCALL")) return 1;

    println("L1: cmos[0x40] after L2 ", hex(read_cmos(kCmosScratch), 1));
    println("L1: efer.svme after L2 cleared its own: ", (rdmsr(svm::kMsrEfer) & svm::kEferSvme) ? 1 : 0);
    set_up_l2(vmcb, l2_again, l2_stack);
    u64 again = 0;
    ExceptionRecord r = try_run([&again] { again = run(vmcb); });
    if (r.raised)
        println("L1: vmrun again: ", exception_name(r.vector));
    else
        println("L1: vmrun again: L2 exit ", hex(again, 1));
    println("L2 done");
    return 0;
}
