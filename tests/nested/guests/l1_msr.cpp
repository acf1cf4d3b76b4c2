// An L1 hypervisor that intercepts MSRs through its own MSR permission map (MSR_PROT): L2 reads
// and writes MSRs of each of the map's three ranges, and one outside them (always intercepted),
// and each access must reach L1 as #VMEXIT 0x7C with EXITINFO1 0 (RDMSR) or 1 (WRMSR), the MSR in
// L2's ECX and NRIP after the instruction. L1 emulates the reads; L2 hands the value it got back.
#include "l1_common.hpp"

using namespace l1;

extern "C" char l2_msr_entry[];
asm(R"(
    .pushsection .text
    .globl l2_msr_entry
l2_msr_entry:
    mov $0x1b, %ecx
    rdmsr
    mov %rax, %r12
    mov %rdx, %r13
    mov $0xc0000081, %ecx
    mov $0x11223344, %eax
    mov $0x55667788, %edx
    wrmsr
    mov $0xc0010010, %ecx
    rdmsr
    mov $0xc0010010, %ecx
    mov $0x9abcdef0, %eax
    mov $0x0, %edx
    wrmsr
    mov $0x40000000, %ecx
    rdmsr
    shl $32, %r13
    or %r13, %r12
    mov %r12, %rax
    vmmcall
1:  hlt
    jmp 1b
    .popsection
)");

namespace {

alignas(4096) svm::Vmcb vmcb;
alignas(4096) u8 msrpm[svm::kMsrpmBytes];
L2Stack l2_stack;

// What L1 answers for an emulated RDMSR: recognisable per MSR.
u64 emulated_value(u32 msr) { return 0xFEED000000000000 | msr; }

struct ExpectedAccess {
    u32 msr;
    bool write;
};

// The map names 0x1b, 0xc0000081 and 0xc0010010; 0x40000000 is outside it.
constexpr ExpectedAccess kAccesses[] = {
    {0x1B, false}, {0xC0000081, true}, {0xC0010010, false}, {0xC0010010, true}, {0x40000000, false}};

bool take_msr_exit(const ExpectedAccess& want, svm::GuestRegisters& regs) {
    u64 code = run(vmcb, regs);
    if (!expect_exit(code, svm::exit_code::msr, "an MSR")) return false;
    u64 info = vmcb.control.exit_info_1;
    u32 ecx = static_cast<u32>(regs.rcx);
    u64 length = vmcb.control.next_rip - vmcb.save.rip;
    if (info == 1) {
        u64 value = (regs.rdx << 32) | (vmcb.save.rax & 0xFFFFFFFF);
        println("L2 exit ", hex(code, 1), " exitinfo1 ", info, ": wrmsr ecx ", hex(ecx, 1), " value ", hex(value, 1),
                ", next_rip - rip = ", length);
    } else {
        println("L2 exit ", hex(code, 1), " exitinfo1 ", info, ": rdmsr ecx ", hex(ecx, 1),
                ", next_rip - rip = ", length);
        u64 value = emulated_value(ecx);
        vmcb.save.rax = value & 0xFFFFFFFF;
        regs.rdx = value >> 32;
    }
    skip_instruction(vmcb);
    return ecx == want.msr && info == (want.write ? 1u : 0u) && length == 2;
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    enable_svm();
    set_up_l2(vmcb, l2_msr_entry, l2_stack);
    svm::msrpm::intercept(msrpm, 0x1B, true, true);
    svm::msrpm::intercept(msrpm, 0xC0010010, true, true);
    svm::msrpm::intercept(msrpm, 0xC0000081, false, true);
    vmcb.control.intercept_misc1 = svm::intercept1::msr_prot;
    vmcb.control.msrpm_base_pa = reinterpret_cast<u64>(msrpm);

    svm::GuestRegisters regs{};
    for (const ExpectedAccess& access : kAccesses)
        if (!take_msr_exit(access, regs)) return 1;
    u64 code = run(vmcb, regs);
    if (!expect_exit(code, svm::exit_code::vmmcall, "VMMCALL")) return 1;
    u64 seen = vmcb.save.rax;
    println("L2 read ", hex(seen, 1), " from msr 0x1b: ", seen == emulated_value(0x1B) ? "L1's value" : "wrong");
    println("L2 done");
    return seen == emulated_value(0x1B) ? 0 : 1;
}
