#include "nestor/x86/host_cpuid.hpp"

#include "nestor/x86/cpu.hpp"

namespace nestor::x86 {

virt::CpuidValues host_cpuid(u32 leaf, u32 subleaf) {
    CpuidResult r = cpuid(leaf, subleaf);
    return {r.eax, r.ebx, r.ecx, r.edx};
}

}  // namespace nestor::x86
