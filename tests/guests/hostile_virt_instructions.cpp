// Virtualization without nested rights: every SVM and VMX instruction must raise #UD, the
// virtualization MSRs #GP, EFER.SVME stays out of reach, and CPUID hides SVM and VMX. The
// instructions that reach shared hardware are the kernel's too: INVD / WBINVD / WBNOINVD complete
// without touching the caches, RDPMC #GPs, MONITOR / MWAIT #UD (CPUID hides them).
// The same lines hold on AMD (the kernel intercepts and injects #UD) and on Intel (the VMX
// instructions exit and get #UD; the SVM ones are #UD natively). VMCALL/VMMCALL are left out:
// one of them is the hypercall on each vendor.
#include "hostile.hpp"

using namespace nestor::guest;

namespace {

alignas(4096) u8 region[4096];

struct Probe {
    const char* name;
    void (*run)();
};

// Memory operands through RAX (region); register operands RAX/RBX.
#define HOSTILE_PROBE(name, bytes)                                                                                     \
    Probe {                                                                                                            \
        name, [] {                                                                                                     \
            asm volatile(                                                                                              \
                "mov %0, %%rax; xor %%ebx, %%ebx; xor %%ecx, %%ecx; .byte " bytes ::"r"(reinterpret_cast<u64>(region)) \
                : "rax", "rbx", "rcx", "memory");                                                                      \
        }                                                                                                              \
    }

const Probe kProbes[] = {
    HOSTILE_PROBE("vmrun", "0x0f, 0x01, 0xd8"),
    HOSTILE_PROBE("vmload", "0x0f, 0x01, 0xda"),
    HOSTILE_PROBE("vmsave", "0x0f, 0x01, 0xdb"),
    HOSTILE_PROBE("stgi", "0x0f, 0x01, 0xdc"),
    HOSTILE_PROBE("clgi", "0x0f, 0x01, 0xdd"),
    HOSTILE_PROBE("skinit", "0x0f, 0x01, 0xde"),
    HOSTILE_PROBE("invlpga", "0x0f, 0x01, 0xdf"),
    HOSTILE_PROBE("vmxon", "0xf3, 0x0f, 0xc7, 0x30"),
    HOSTILE_PROBE("vmclear", "0x66, 0x0f, 0xc7, 0x30"),
    HOSTILE_PROBE("vmptrld", "0x0f, 0xc7, 0x30"),
    HOSTILE_PROBE("vmptrst", "0x0f, 0xc7, 0x38"),
    HOSTILE_PROBE("vmread", "0x0f, 0x78, 0xc3"),
    HOSTILE_PROBE("vmwrite", "0x0f, 0x79, 0xc3"),
    HOSTILE_PROBE("vmlaunch", "0x0f, 0x01, 0xc2"),
    HOSTILE_PROBE("vmresume", "0x0f, 0x01, 0xc3"),
    HOSTILE_PROBE("vmxoff", "0x0f, 0x01, 0xc4"),
    HOSTILE_PROBE("invept", "0x66, 0x0f, 0x38, 0x80, 0x18"),
    HOSTILE_PROBE("invvpid", "0x66, 0x0f, 0x38, 0x81, 0x18"),
    HOSTILE_PROBE("vmfunc", "0x0f, 0x01, 0xd4"),
};

struct MsrProbe {
    const char* name;
    u32 index;
};
const MsrProbe kMsrReads[] = {
    {"VM_CR", 0xC0010114},
    {"VM_HSAVE_PA", 0xC0010117},
    {"IA32_VMX_BASIC", 0x480},
    {"IA32_VMX_PROCBASED_CTLS", 0x482},
};

}  // namespace

extern "C" int guest_main(const nestor_guest_boot* boot) {
    u32 ud = 0;
    for (const Probe& p : kProbes) {
        ExceptionRecord r = probe(p.run);
        hostile::print_all("virt: ", p.name, ": ");
        hostile::print_outcome(r);
        println();
        if (r.raised && r.vector == kVectorUD) ++ud;
    }
    println("virt: ", ud, " of ", sizeof(kProbes) / sizeof(kProbes[0]), " instructions raised #UD");

    for (const MsrProbe& m : kMsrReads) {
        u32 index = m.index;
        hostile::print_all("virt: rdmsr ", m.name, ": ");
        hostile::print_outcome(try_run([index] { rdmsr(index); }));
        println();
    }
    u64 feature_control = 0;
    ExceptionRecord fc = try_run([&] { feature_control = rdmsr(0x3A); });
    print("virt: rdmsr IA32_FEATURE_CONTROL: ");
    hostile::print_outcome(fc);
    println(", value ", hex(feature_control));
    print("virt: wrmsr IA32_FEATURE_CONTROL=0x5: ");
    hostile::print_outcome(try_run([] { wrmsr(0x3A, 0x5); }));
    println();
    print("virt: wrmsr VM_HSAVE_PA=0x200000: ");
    hostile::print_outcome(try_run([] { wrmsr(0xC0010117, 0x200000); }));
    println();

    u64 efer = rdmsr(kMsrEfer);
    print("virt: wrmsr EFER|SVME: ");
    hostile::print_outcome(try_run([efer] { wrmsr(kMsrEfer, efer | kEferSvme); }));
    println(", EFER.SVME now ", (rdmsr(kMsrEfer) & kEferSvme) ? 1 : 0);

    // Cmdline "cr4-vmxe": CR4.VMXE is a feature CPUID hides, so setting it must #GP on both
    // backends (QEMU's SVM would take it and fail the next VMRUN; VMX would let it through).
    if (boot->cmdline_has("cr4-vmxe")) {
        u64 cr4 = read_cr4();
        print("virt: mov cr4|VMXE: ");
        hostile::print_outcome(try_run([cr4] { asm volatile("mov %0, %%cr4" ::"r"(cr4 | kCr4Vmxe) : "memory"); }));
        println(", CR4.VMXE now ", (read_cr4() & kCr4Vmxe) ? 1 : 0);
        // What a CPU refuses of any CR4 write: a reserved bit, and clearing PAE in long mode (QEMU's
        // SVM would take both and fail the next VMRUN, stopping the domain as an invalid state).
        constexpr u64 kCr4Reserved19 = u64{1} << 19;
        print("virt: mov cr4|bit19: ");
        hostile::print_outcome(try_run([cr4] {
            asm volatile("mov %0, %%cr4" ::"r"(cr4 | kCr4Reserved19) : "memory");
        }));
        print(", mov cr4&~PAE: ");
        hostile::print_outcome(try_run([cr4] { asm volatile("mov %0, %%cr4" ::"r"(cr4 & ~kCr4Pae) : "memory"); }));
        println(", CR4 unchanged ", read_cr4() == cr4 ? 1 : 0);
        // EFER.LME may not change while paging is on.
        print("virt: wrmsr EFER&~LME: ");
        hostile::print_outcome(try_run([efer] { wrmsr(kMsrEfer, efer & ~kEferLme); }));
        println(", EFER unchanged ", rdmsr(kMsrEfer) == efer ? 1 : 0);
    }

    // INVD would drop the host's dirty cache lines, WBINVD and WBNOINVD flush the caches every
    // domain shares; the kernel completes them without doing so (each an exit: the kernel's count).
    print("virt: invd: ");
    hostile::print_outcome(try_run([] { asm volatile("invd" ::: "memory"); }));
    print(", wbinvd: ");
    hostile::print_outcome(try_run([] { asm volatile("wbinvd" ::: "memory"); }));
    print(", wbnoinvd: ");
    hostile::print_outcome(try_run([] { asm volatile(".byte 0xf3, 0x0f, 0x09" ::: "memory"); }));
    println("");
    // No performance counters are offered: RDPMC #GPs as for a counter that does not exist.
    print("virt: rdpmc 0: ");
    hostile::print_outcome(try_run([] { asm volatile("rdpmc" ::"c"(0) : "rax", "rdx"); }));
    print(", rdpmc 0x40000000: ");
    hostile::print_outcome(try_run([] { asm volatile("rdpmc" ::"c"(0x40000000) : "rax", "rdx"); }));
    println("");
    // MONITOR/MWAIT are hidden: #UD, as on a CPU without them.
    print("virt: monitor: ");
    hostile::print_outcome(try_run([] {
        asm volatile("monitor" ::"a"(reinterpret_cast<u64>(region)), "c"(0), "d"(0) : "memory");
    }));
    print(", mwait: ");
    hostile::print_outcome(try_run([] { asm volatile("mwait" ::"a"(0), "c"(0) : "memory"); }));
    println("");
    println("virt: cpuid.1:ecx.monitor ", (cpuid(1).ecx >> 3) & 1, ", cpuid.80000001:ecx.monitorx ",
            (cpuid(0x80000001).ecx >> 29) & 1, ", cpuid.a:eax (performance counters) ", hex(cpuid(0xA).eax));

    println("virt: cpuid.1:ecx.vmx ", (cpuid(1).ecx >> 5) & 1, ", cpuid.80000001:ecx.svm ",
            (cpuid(0x80000001).ecx >> 2) & 1, ", cpuid.1:ecx.hypervisor ", (cpuid(1).ecx >> 31) & 1);
    // Leaves far out of range: answered, nothing breaks.
    CpuidResult high = cpuid(0x4fffffff);
    CpuidResult top = cpuid(0xffffffff, 0xffffffff);
    (void)high;
    (void)top;
    println("virt: cpuid 0x4fffffff and 0xffffffff answered");
    println("virt: still alive");
    return 0;
}
