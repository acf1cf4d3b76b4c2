// L0's timer interrupts while L2 runs are L0's alone. L2 spins through "iterations=N" (L1's
// command line) rounds of reading the TSC, with no exit of its own, long enough to span many of
// L0's time slices (the boot test shortens them and checks the domain's preemptions), then
// VMMCALLs. L1's one VMRUN must end with exactly that VMMCALL, with every register as L2 left it:
// the loop counter, the TSC it read first and last, and the patterns it wrote before the loop.
#include "l1_common.hpp"

using namespace l1;

// In: R13 the iterations. Out: RCX the iterations done, R14 the first TSC, R9 the last, RAX the
// ticks between them; the other registers hold their patterns.
extern "C" char l2_spin_entry[], l2_spin_vmmcall[];
asm(R"(
    .pushsection .text
    .globl l2_spin_entry, l2_spin_vmmcall
l2_spin_entry:
    mov $0xb0b0b0b0b0b0b0b0, %rbx
    mov $0x5151515151515151, %rsi
    mov $0xd1d1d1d1d1d1d1d1, %rdi
    mov $0xbebebebebebebebe, %rbp
    mov $0x0808080808080808, %r8
    mov $0x1010101010101010, %r10
    mov $0x1111111111111111, %r11
    mov $0x1212121212121212, %r12
    mov $0x1515151515151515, %r15
    rdtsc
    shl $32, %rdx
    or %rdx, %rax
    mov %rax, %r14
    xor %ecx, %ecx
1:  inc %rcx
    rdtsc
    cmp %r13, %rcx
    jb 1b
    shl $32, %rdx
    or %rdx, %rax
    mov %rax, %r9
    sub %r14, %rax
    mov $0xdddddddddddddddd, %rdx
l2_spin_vmmcall:
    vmmcall
2:  hlt
    jmp 2b
    .popsection
)");

namespace {

alignas(4096) svm::Vmcb vmcb;
L2Stack l2_stack;

u64 number_option(const char* key, u64 otherwise) {
    char buffer[24];
    const char* text = boot_info().cmdline_value(key, buffer, sizeof(buffer));
    if (!text) return otherwise;
    u64 value = 0;
    for (; *text >= '0' && *text <= '9'; ++text) value = value * 10 + static_cast<u64>(*text - '0');
    return value ? value : otherwise;
}

bool registers_as_l2_left_them(const svm::GuestRegisters& r) {
    return r.rbx == 0xb0b0b0b0b0b0b0b0 && r.rsi == 0x5151515151515151 && r.rdi == 0xd1d1d1d1d1d1d1d1 &&
           r.rbp == 0xbebebebebebebebe && r.r8 == 0x0808080808080808 && r.r10 == 0x1010101010101010 &&
           r.r11 == 0x1111111111111111 && r.r12 == 0x1212121212121212 && r.r15 == 0x1515151515151515 &&
           r.rdx == 0xdddddddddddddddd;
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    enable_svm();
    u64 iterations = number_option("iterations", 5000000);
    set_up_l2(vmcb, l2_spin_entry, l2_stack);
    svm::GuestRegisters regs{};
    regs.r13 = iterations;

    u64 before = rdtsc();
    u64 code = run(vmcb, regs);
    u64 after = rdtsc();
    if (!expect_exit(code, svm::exit_code::vmmcall, "L2's VMMCALL after its loop")) return 1;
    bool at_vmmcall = vmcb.save.rip == reinterpret_cast<u64>(l2_spin_vmmcall);
    bool registers = registers_as_l2_left_them(regs);
    // The TSC values L2 read lie within L1's VMRUN.
    bool counted = regs.rcx == iterations && regs.r13 == iterations && before <= regs.r14 && regs.r14 < regs.r9 &&
                   regs.r9 <= after && vmcb.save.rax == regs.r9 - regs.r14;
    println("L2 exit ", hex(code, 1), ": vmmcall after its loop, rip at the vmmcall ", at_vmmcall ? "yes" : "no");
    println("L2 looped ", regs.rcx, " times of ", iterations,
            ", its tsc readings within L1's vmrun: ", counted ? "yes" : "no");
    println("L2's registers intact: ", registers ? "yes" : "no");
    println("L2 done");
    return at_vmmcall && registers && counted ? 0 : 1;
}
