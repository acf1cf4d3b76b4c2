// Nested SVM round trips, timed from inside the guests. This guest is an L1 hypervisor (its
// domain has nested_virt) running an L2 of a few instructions in its own memory, on its own page
// tables (L2 runs with L1's CR3). Under QEMU -icount a TSC tick is one instruction, and the TSC runs on in every level,
// so the figures split one round trip into who executed it:
//   - L2 times N round trips with rdtsc around its loop (the total);
//   - L1 reads the TSC right after VMRUN returns and right before its next VMRUN, and adds up
//     the difference: its own share (the exit handler);
//   - L2 runs the same loop once more with a NOP where the exiting instruction was: the loop's
//     own share;
//   - L0's share (Nestor: the exit, the reflection, emulating L1's VMRUN) is what is left.
// Two kinds of exit: a CPUID that L1 intercepts (reflected to L1, which steps over it and runs
// L2 again) and an OUT to the console port, which L1's IOPM lets through (Nestor's alone: L1
// never sees it). L1 does not execute STGI between round trips (VMRUN sets GIF itself), so every
// L0 instruction inside the loop belongs to the round trip. A third loop splits the reflected
// round trip into its two exits: L2 reads the TSC right before its CPUID and right after it is
// resumed, L1 right before VMRUN and right after it returns, so L0's reflected exit (L2's CPUID
// to L1 running again) and L0's emulated VMRUN (L1's VMRUN to L2 running again) are measured
// apart; each figure includes the 4 or 5 guest instructions between the TSC reads and the
// exiting instruction. Prints "bench NAME TICKS" lines for bench/run-benchmarks.
// On Intel VMX (Bochs, a TSC tick per instruction) the split loop runs the same way under
// VMLAUNCH / VMRESUME: L0's reflected exit (L2's CPUID to L1 running again) and L0's emulated
// VMRESUME (L1's VMRESUME to L2 running again). L1's VMWRITEs that step over the CPUID and set
// its host RSP and RIP exit to L0 too; they fall outside both windows.
#include "nestor/guest.hpp"
#include "nestor/svm.hpp"
#include "nestor/vmx.hpp"

using namespace nestor::guest;
namespace svm = nestor::guest::svm;
namespace vmx = nestor::guest::vmx;
namespace iv = nestor::intel_vmx;

// Each L2 loop: one warm-up iteration (it fills what Nestor caches), then 1000 timed ones
// (kL2Iterations); the loop state lives in memory, because L1 clobbers the registers the two
// share while it handles an exit. HLT (intercepted by L1) ends the run. `body` names a macro.
extern "C" {
extern char l2_cpuid_loop[], l2_cpuid_calibration[], l2_console_loop[], l2_console_calibration[], l2_cpuid_split[];
u64 l2_remaining, l2_start, l2_end, l2_before_exit, l2_after_entry;
}
asm(R"(
    .macro L2_TIMED_LOOP name, body
    .pushsection .text
    .globl \name
\name:
    \body
    movq $1000, l2_remaining(%rip)
    rdtsc
    shl $32, %rdx
    or %rdx, %rax
    mov %rax, l2_start(%rip)
1:  \body
    decq l2_remaining(%rip)
    jnz 1b
    rdtsc
    shl $32, %rdx
    or %rdx, %rax
    mov %rax, l2_end(%rip)
    hlt
    jmp \name
    .popsection
    .endm

    .macro l2_cpuid
    cpuid
    .endm
    .macro l2_nop
    nop
    .endm
    // A carriage return to the console: the emulated 16550 prints nothing for it.
    .macro l2_console_out
    mov $0x0d, %al
    mov $0x3f8, %dx
    outb %al, %dx
    .endm
    .macro l2_console_calibration_body
    mov $0x0d, %al
    mov $0x3f8, %dx
    nop
    .endm

    .pushsection .text
    .globl l2_cpuid_split
l2_cpuid_split:
    movq $1000, l2_remaining(%rip)
1:  rdtsc
    shl $32, %rdx
    or %rdx, %rax
    mov %rax, l2_before_exit(%rip)
    cpuid
    rdtsc
    shl $32, %rdx
    or %rdx, %rax
    mov %rax, l2_after_entry(%rip)
    decq l2_remaining(%rip)
    jnz 1b
    hlt
    jmp l2_cpuid_split
    .popsection

    L2_TIMED_LOOP l2_cpuid_loop, l2_cpuid
    L2_TIMED_LOOP l2_cpuid_calibration, l2_nop
    L2_TIMED_LOOP l2_console_loop, l2_console_out
    L2_TIMED_LOOP l2_console_calibration, l2_console_calibration_body
)");

namespace {

constexpr u64 kL2Iterations = 1000;  // as in L2_TIMED_LOOP
constexpr u16 kConsolePort = 0x3F8;
constexpr u32 kCpuid1EcxVmx = 1u << 5;

alignas(4096) svm::Vmcb vmcb;
alignas(4096) u8 host_save_area[4096];
alignas(4096) u8 iopm[svm::kIopmBytes];
alignas(4096) u8 msrpm[svm::kMsrpmBytes];
alignas(16) u8 l2_stack[4096];

// L1 as a hypervisor like KVM's or Xen's would set one up: CPUID, HLT, I/O and MSRs intercepted,
// through permission maps that intercept everything but the console port (L2 may use it
// directly, which on Nestor means Nestor's emulated console, with no word from L1).
void set_up_l2() {
    for (u64 i = 0; i < sizeof(vmcb); ++i) reinterpret_cast<volatile u8*>(&vmcb)[i] = 0;
    for (u64 i = 0; i < sizeof(iopm); ++i) iopm[i] = 0xFF;
    iopm[kConsolePort / 8] &= static_cast<u8>(~(1u << (kConsolePort % 8)));
    for (u64 i = 0; i < sizeof(msrpm); ++i) msrpm[i] = 0xFF;
    svm::VmcbControl& c = vmcb.control;
    c.intercept_misc1 =
        svm::intercept1::cpuid | svm::intercept1::hlt | svm::intercept1::ioio_prot | svm::intercept1::msr_prot;
    c.intercept_misc2 = svm::intercept2::vmrun | svm::intercept2::vmmcall;
    c.iopm_base_pa = reinterpret_cast<u64>(iopm);
    c.msrpm_base_pa = reinterpret_cast<u64>(msrpm);
    c.guest_asid = 1;
    svm::copy_own_state(vmcb.save);
}

struct VmrunTimes {
    u64 before;  // TSC right before VMRUN
    u64 after;   // and right after it returned (the #VMEXIT)
};

// VMRUN with the TSC read next to it, so that nearly every L1 instruction of the round trip falls
// between `after` and the next `before`. As svm::vmrun, it clobbers every register L2 may change.
void timed_vmrun(svm::Vmcb* guest, VmrunTimes* times) {
    asm volatile(
        "sub $128, %%rsp\n\t"
        "push %%rbp\n\t"
        "push %%rdi\n\t"
        "push %%rax\n\t"
        "rdtsc\n\t"
        "shl $32, %%rdx\n\t"
        "or %%rdx, %%rax\n\t"
        "mov %%rax, (%%rdi)\n\t"
        "pop %%rax\n\t"
        "vmrun %%rax\n\t"
        "rdtsc\n\t"
        "pop %%rdi\n\t"
        "shl $32, %%rdx\n\t"
        "or %%rdx, %%rax\n\t"
        "mov %%rax, 8(%%rdi)\n\t"
        "pop %%rbp\n\t"
        "add $128, %%rsp"
        : "+a"(guest), "+D"(times)
        :
        : "rbx", "rcx", "rdx", "rsi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "memory", "cc");
}

struct L2Run {
    bool ok;
    u64 l2_ticks_per_iteration;  // L2's own view: its loop's TSC difference / iterations
    u64 l1_ticks_per_exit;       // L1's handler, per exit it handled (0 if it handled none)
};

// Runs the L2 loop at `entry` to its HLT. Every exit before it must be `handled_exit` (stepped
// over with NRIP); L1's time from each such exit to the next VMRUN is added up.
L2Run run_l2(char* entry, u64 handled_exit) {
    vmcb.save.rip = reinterpret_cast<u64>(entry);
    vmcb.save.rsp = reinterpret_cast<u64>(l2_stack + sizeof(l2_stack));
    u64 l1_ticks = 0;
    u64 handled = 0;
    VmrunTimes times{};
    u64 handler_start = 0;
    for (;;) {
        timed_vmrun(&vmcb, &times);
        if (handled) l1_ticks += times.before - handler_start;
        handler_start = times.after;
        u64 code = vmcb.control.exit_code;
        if (code == svm::exit_code::hlt) break;
        if (code != handled_exit) {
            svm::stgi();
            println("unexpected L2 exit ", hex(code, 1), " at rip ", hex(vmcb.save.rip));
            return L2Run{false, 0, 0};
        }
        vmcb.save.rip = vmcb.control.next_rip;
        ++handled;
    }
    svm::stgi();  // every #VMEXIT cleared GIF
    return L2Run{true, (l2_end - l2_start) / kL2Iterations, handled ? l1_ticks / handled : 0};
}

// One benchmark: the loop that exits and its calibration twin. Prints the total and L0's share.
bool measure(const char* name, char* loop, u64 exit_code, char* calibration) {
    L2Run run = run_l2(loop, exit_code);
    L2Run bare = run_l2(calibration, ~u64{0});
    if (!run.ok || !bare.ok) return false;
    u64 l1_and_l2 = run.l1_ticks_per_exit + bare.l2_ticks_per_iteration;
    u64 l0 = run.l2_ticks_per_iteration > l1_and_l2 ? run.l2_ticks_per_iteration - l1_and_l2 : 0;
    println("bench ", name, " ", run.l2_ticks_per_iteration);
    println("bench ", name, "_l0 ", l0);
    println("bench ", name, "_l1 ", run.l1_ticks_per_exit);
    println("bench ", name, "_l2_loop ", bare.l2_ticks_per_iteration);
    return true;
}

// The reflected round trip's two exits apart: per CPUID, L0's share from L2's last TSC read to
// L1's first after VMRUN (the reflected exit) and from L1's last before VMRUN to L2's first
// after it (the emulated VMRUN).
bool measure_split(const char* name) {
    vmcb.save.rip = reinterpret_cast<u64>(l2_cpuid_split);
    vmcb.save.rsp = reinterpret_cast<u64>(l2_stack + sizeof(l2_stack));
    u64 reflected = 0, vmrun = 0, exits = 0;
    VmrunTimes times{};
    for (;;) {
        timed_vmrun(&vmcb, &times);
        u64 code = vmcb.control.exit_code;
        if (code == svm::exit_code::hlt) break;
        if (code != svm::exit_code::cpuid) {
            svm::stgi();
            println("unexpected L2 exit ", hex(code, 1), " at rip ", hex(vmcb.save.rip));
            return false;
        }
        reflected += times.after - l2_before_exit;
        if (exits) vmrun += l2_after_entry - times.before;  // the first run enters at the loop's start
        vmcb.save.rip = vmcb.control.next_rip;
        ++exits;
    }
    svm::stgi();
    if (exits < 2) return false;
    println("bench ", name, "_reflected_exit_l0 ", reflected / exits);
    println("bench ", name, "_vmrun_l0 ", vmrun / (exits - 1));
    return true;
}

alignas(4096) u8 vmxon_region[4096];
alignas(4096) u8 vmcs[4096];

// VMLAUNCH (`launch`) or VMRESUME with the TSC read right before it and right after the VM exit
// returns to L1 (the host RIP); 0, or RFLAGS with bit 63 set when the instruction failed. As
// vmx::enter, it clobbers every register L2 may change.
u64 timed_enter(bool launch, VmrunTimes* times) {
    u64 result = launch ? 1 : 0;
    asm volatile(
        "sub $128, %%rsp\n\t"
        "push %%rbp\n\t"
        "push %%rdi\n\t"
        "mov %[host_rsp], %%rdx\n\t"
        "vmwrite %%rsp, %%rdx\n\t"
        "lea 1f(%%rip), %%rcx\n\t"
        "mov %[host_rip], %%rdx\n\t"
        "vmwrite %%rcx, %%rdx\n\t"
        "mov %%rax, %%rsi\n\t"
        "rdtsc\n\t"
        "shl $32, %%rdx\n\t"
        "or %%rdx, %%rax\n\t"
        "mov %%rax, (%%rdi)\n\t"
        "test %%rsi, %%rsi\n\t"
        "jz 2f\n\t"
        "vmlaunch\n\t"
        "jmp 3f\n"
        "2:\n\t"
        "vmresume\n"
        "3:\n\t"
        "pushfq\n\t"
        "pop %%rax\n\t"
        "bts $63, %%rax\n\t"
        "pop %%rdi\n\t"
        "jmp 4f\n"
        "1:\n\t"
        "rdtsc\n\t"
        "pop %%rdi\n\t"
        "shl $32, %%rdx\n\t"
        "or %%rdx, %%rax\n\t"
        "mov %%rax, 8(%%rdi)\n\t"
        "xor %%eax, %%eax\n"
        "4:\n\t"
        "pop %%rbp\n\t"
        "add $128, %%rsp"
        : "+a"(result), "+D"(times)
        : [host_rsp] "i"(iv::field::host_rsp), [host_rip] "i"(iv::field::host_rip)
        : "rbx", "rcx", "rdx", "rsi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "memory", "cc");
    return result;
}

// measure_split on VMX: L1 intercepts CPUID (always) and HLT, L2 runs on L1's page tables.
bool measure_split_vmx(const char* name) {
    if (!vmx::enter_vmx_operation(vmxon_region, vmcs)) return false;
    vmx::write_64bit_controls(0, iv::primary::hlt_exiting, 0);
    vmx::write_own_host_state();
    vmx::write_own_guest_state(reinterpret_cast<u64>(l2_cpuid_split),
                               reinterpret_cast<u64>(l2_stack + sizeof(l2_stack)));
    u64 reflected = 0, vmresume = 0, exits = 0;
    VmrunTimes times{};
    for (bool launch = true;; launch = false) {
        u64 failed = timed_enter(launch, &times);
        if (failed) {
            println("VM entry failed, rflags ", hex(failed & 0xFFFFFFFF), ", error ",
                    vmx::vmread(iv::field::instruction_error));
            return false;
        }
        u64 reason = vmx::vmread(iv::field::exit_reason);
        if (reason == iv::exit_reason::hlt) break;
        if (reason != iv::exit_reason::cpuid) {
            println("unexpected L2 exit ", hex(reason, 1), " at rip ", hex(vmx::vmread(iv::field::guest_rip)));
            return false;
        }
        reflected += times.after - l2_before_exit;
        if (exits) vmresume += l2_after_entry - times.before;  // the VMLAUNCH enters at the loop's start
        vmx::skip_instruction();
        ++exits;
    }
    if (exits < 2) return false;
    println("bench ", name, "_reflected_exit_l0 ", reflected / exits);
    println("bench ", name, "_vmresume_l0 ", vmresume / (exits - 1));
    return true;
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    if (cpuid(1).ecx & kCpuid1EcxVmx) return measure_split_vmx("vmx_l2_cpuid") ? 0 : 1;
    if (!(cpuid(0x80000001).ecx & (1u << 2))) {
        println("no SVM in CPUID: this benchmark needs a domain with nested_virt on an AMD CPU");
        return 1;
    }
    wrmsr(svm::kMsrEfer, rdmsr(svm::kMsrEfer) | svm::kEferSvme);
    wrmsr(svm::kMsrVmHsavePa, reinterpret_cast<u64>(host_save_area));
    set_up_l2();
    // "split-only" on the command line: just the split loop, for profiling Nestor under a trace.
    if (boot_info().cmdline_has("split-only")) return measure_split("svm_l2_cpuid") ? 0 : 1;
    // "console-only": just the loop of exits Nestor handles alone.
    if (boot_info().cmdline_has("console-only"))
        return measure("svm_l2_exit_l0_only", l2_console_loop, ~u64{0}, l2_console_calibration) ? 0 : 1;
    if (!measure("svm_l2_cpuid_reflected", l2_cpuid_loop, svm::exit_code::cpuid, l2_cpuid_calibration)) return 1;
    if (!measure_split("svm_l2_cpuid")) return 1;
    if (!measure("svm_l2_exit_l0_only", l2_console_loop, ~u64{0}, l2_console_calibration)) return 1;
    return 0;
}
