#include "nestor/x86/cpu.hpp"

#include "nestor/platform.hpp"

namespace nestor {
namespace {

CpuFeatures features;

void copy_registers(char* out, const u32* regs, usize count) {
    for (usize i = 0; i < count; ++i) __builtin_memcpy(out + 4 * i, &regs[i], 4);
}

void detect_vendor() {
    x86::CpuidResult r = x86::cpuid(0);
    const u32 regs[] = {r.ebx, r.edx, r.ecx};
    copy_registers(features.vendor_string, regs, 3);
    features.vendor_string[12] = '\0';
    if (__builtin_memcmp(features.vendor_string, "AuthenticAMD", 12) == 0)
        features.vendor = CpuVendor::amd;
    else if (__builtin_memcmp(features.vendor_string, "GenuineIntel", 12) == 0)
        features.vendor = CpuVendor::intel;
    else
        features.vendor = CpuVendor::unknown;
}

void detect_brand() {
    features.brand[0] = '\0';
    if (x86::cpuid(0x80000000).eax < 0x80000004) return;
    for (u32 i = 0; i < 3; ++i) {
        x86::CpuidResult r = x86::cpuid(0x80000002 + i);
        const u32 regs[] = {r.eax, r.ebx, r.ecx, r.edx};
        copy_registers(features.brand + usize{16} * i, regs, 4);
    }
    features.brand[48] = '\0';
}

void detect_svm() {
    if (x86::cpuid(0x80000000).eax < 0x8000000A) return;
    features.svm = x86::cpuid(0x80000001).ecx & (1u << 2);
    if (!features.svm) return;
    x86::CpuidResult r = x86::cpuid(0x8000000A);
    features.svm_asids = r.ebx;
    features.npt = r.edx & (1u << 0);
    features.nrips = r.edx & (1u << 3);
}

void detect_vmx() {
    features.vmx = x86::cpuid(1).ecx & (1u << 5);
    if (!features.vmx) return;
    // Secondary controls exist only if their allowed-1 bit (31 of the high word) is set.
    u64 procbased = x86::rdmsr(x86::msr::vmx_procbased_ctls);
    if (!(procbased >> 32 & (1u << 31))) return;
    u32 secondary_allowed = static_cast<u32>(x86::rdmsr(x86::msr::vmx_procbased_ctls2) >> 32);
    features.ept = secondary_allowed & (1u << 1);
    features.vpid = secondary_allowed & (1u << 5);
    features.unrestricted_guest = secondary_allowed & (1u << 7);
}

}  // namespace

void x86::detect_cpu_features() {
    detect_vendor();
    detect_brand();
    detect_svm();
    detect_vmx();
}

const CpuFeatures& platform::cpu_features() { return features; }
u64 platform::timestamp() { return x86::rdtsc(); }

}  // namespace nestor
