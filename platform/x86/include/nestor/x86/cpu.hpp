// Thin wrappers over x86 instructions that touch machine state.
#pragma once

#include "nestor/arch/vmx_vmcs.hpp"
#include "nestor/lib/types.hpp"

namespace nestor::x86 {

struct CpuidResult {
    u32 eax, ebx, ecx, edx;
};

inline CpuidResult cpuid(u32 leaf, u32 subleaf = 0) {
    CpuidResult r;
    asm volatile("cpuid" : "=a"(r.eax), "=b"(r.ebx), "=c"(r.ecx), "=d"(r.edx) : "a"(leaf), "c"(subleaf));
    return r;
}

inline void outb(u16 port, u8 value) { asm volatile("outb %0, %1" ::"a"(value), "Nd"(port)); }
inline void outw(u16 port, u16 value) { asm volatile("outw %0, %1" ::"a"(value), "Nd"(port)); }
inline u8 inb(u16 port) {
    u8 value;
    asm volatile("inb %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}

inline u64 rdmsr(u32 msr) {
    u32 lo, hi;
    asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return (static_cast<u64>(hi) << 32) | lo;
}
inline void wrmsr(u32 msr, u64 value) {
    asm volatile("wrmsr" ::"c"(msr), "a"(static_cast<u32>(value)), "d"(static_cast<u32>(value >> 32)));
}

inline u64 rdtsc() {
    u32 lo, hi;
    asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (static_cast<u64>(hi) << 32) | lo;
}

#define NESTOR_CR_ACCESSORS(n)                        \
    inline u64 read_cr##n() {                         \
        u64 v;                                        \
        asm volatile("mov %%cr" #n ", %0" : "=r"(v)); \
        return v;                                     \
    }                                                 \
    inline void write_cr##n(u64 v) { asm volatile("mov %0, %%cr" #n ::"r"(v) : "memory"); }
NESTOR_CR_ACCESSORS(0)
NESTOR_CR_ACCESSORS(2)
NESTOR_CR_ACCESSORS(3)
NESTOR_CR_ACCESSORS(4)
#undef NESTOR_CR_ACCESSORS

[[noreturn]] inline void halt_forever() {
    for (;;) asm volatile("cli; hlt");
}

// A machine check that struck while a guest ran (an intercepted #MC; on VMX also a machine check
// during VM entry) is the host's, never the guest's: run the host's own #MC handler, as if it had
// struck the host (KVM does the same). Today that handler reports and stops the machine.
inline void host_machine_check() { asm volatile("int $18" ::: "memory"); }

namespace msr {
inline constexpr u32 efer = intel_vmx::vmx_msr::efer;
inline constexpr u32 feature_control = intel_vmx::vmx_msr::feature_control;
inline constexpr u32 vmx_basic = intel_vmx::vmx_msr::vmx_basic;
inline constexpr u32 vmx_procbased_ctls = intel_vmx::vmx_msr::vmx_procbased_ctls;
inline constexpr u32 vmx_procbased_ctls2 = intel_vmx::vmx_msr::vmx_procbased_ctls2;
inline constexpr u32 vmx_true_procbased_ctls = intel_vmx::vmx_msr::vmx_true_procbased_ctls;
}  // namespace msr

// Fills the neutral feature description from CPUID (and the VMX capability MSRs on Intel).
void detect_cpu_features();

}  // namespace nestor::x86
