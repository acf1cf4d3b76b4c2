// What a domain sees of nested virtualization: the physcaps bit, SVM/VMX in CPUID, the SVM MSRs
// and VMRUN; on Intel also IA32_FEATURE_CONTROL, CR4.VMXE and VMXON. With "mode=nested" it then
// turns EFER.SVME on and runs VMRUN (AMD) or sets CR4.VMXE and runs VMXON (Intel), which the kernel
// must answer: on AMD, VMRUN of a VMCB that fails the checks returns VMEXIT_INVALID, and a VMCB
// address that is unaligned or outside the domain's memory gets #GP.
#include "nestor/guest.hpp"

using namespace nestor::guest;

namespace {

constexpr u32 kMsrVmCr = 0xC0010114;
constexpr u32 kMsrHsavePa = 0xC0010117;
constexpr u32 kMsrFeatureControl = 0x3A;

void report_msr_read(const char* name, u32 index) {
    u64 value = 0;
    ExceptionRecord e = try_run([&] { value = rdmsr(index); });
    if (e.raised)
        println(name, ": ", exception_name(e.vector));
    else
        println(name, ": ", hex(value, 1));
}

void report_msr_write(const char* name, u32 index, u64 value) {
    ExceptionRecord e = try_run([&] { wrmsr(index, value); });
    println(name, " <- ", hex(value, 1), ": ", e.raised ? exception_name(e.vector) : "ok");
}

// VMRUN of an all-zero VMCB (no VMRUN intercept, ASID 0: it fails VMRUN's checks), `offset`
// bytes into its page. Returned: the exit code VMRUN left in it (VMEXIT_INVALID is -1).
void report_vmrun(const char* when, u64 offset = 0) {
    alignas(4096) static u8 vmcb[4096];
    for (u8& byte : vmcb) byte = 0;
    ExceptionRecord e = try_run([&] {
        u64 address = reinterpret_cast<u64>(vmcb) + offset;
        asm volatile("vmrun" ::"a"(address) : "memory");
    });
    if (e.raised) {
        println("vmrun ", when, ": ", exception_name(e.vector));
        return;
    }
    i64 exit_code = 0;
    __builtin_memcpy(&exit_code, vmcb + 0x70, sizeof(exit_code));
    println("vmrun ", when, ": returned, exit code ", exit_code);
}

// Intel: the VMX side of the same questions.
void probe_vmx(bool nested) {
    report_msr_read("feature_control", kMsrFeatureControl);
    u64 cr4 = read_cr4();
    ExceptionRecord set = try_run([cr4] { asm volatile("mov %0, %%cr4" ::"r"(cr4 | kCr4Vmxe) : "memory"); });
    println("cr4.vmxe: ", set.raised ? exception_name(set.vector) : "ok");
    if (!nested) return;
    alignas(4096) static u8 vmxon_region[4096];
    u64 address = reinterpret_cast<u64>(vmxon_region);
    ExceptionRecord e = try_run([&] { asm volatile("vmxon %0" ::"m"(address) : "memory", "cc"); });
    println("vmxon: ", e.raised ? exception_name(e.vector) : "returned");
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot* boot) {
    char mode[16];
    bool nested = boot->cmdline_value("mode", mode, sizeof(mode)) && string_equal(mode, "nested");
    println("physcaps nested_virt=", (physcaps().value[0] & NESTOR_PHYSCAP_NESTED_VIRT) ? 1 : 0);
    println("cpuid svm=", (cpuid(0x80000001).ecx >> 2) & 1, " vmx=", (cpuid(1).ecx >> 5) & 1);
    CpuidResult svm = cpuid(0x8000000A);
    println("cpuid 8000000a: eax=", hex(svm.eax, 1), " np=", svm.edx & 1, " nrips=", (svm.edx >> 3) & 1);
    report_msr_read("vm_cr", kMsrVmCr);
    report_msr_write("hsave_pa", kMsrHsavePa, 0x200000);
    report_msr_write("hsave_pa", kMsrHsavePa, 0x200010);
    report_vmrun("before svme");
    if (cpuid(0).ebx == 0x756E6547) {  // "Genu": Intel
        probe_vmx(nested);
        return 0;
    }
    if (!nested) return 0;
    report_msr_write("efer", kMsrEfer, rdmsr(kMsrEfer) | kEferSvme);
    report_vmrun("with svme");
    report_vmrun("unaligned", 8);
    report_vmrun("beyond memory", u64{1} << 40);
    return 0;
}
