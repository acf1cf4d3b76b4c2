// The real CPU's CPUID in the form the kernel's CPUID policy takes it (VirtOps::host_cpuid): one
// function for both backends' tables. A feature the CPU claims but carries out wrongly, found by
// a check at boot, is reported absent, so that no guest is offered it.
#pragma once

#include "nestor/virt/virt_ops.hpp"

namespace nestor::x86 {

virt::CpuidValues host_cpuid(u32 leaf, u32 subleaf);

// Runs XSAVEC once with AVX state in use and keeps it out of CPUID(0xD, 1) if the image it writes
// is not the compacted format (virt::xsavec_image_is_compacted). Needs CR4.OSXSAVE and `xcr0`,
// with AVX, in XCR0; clobbers YMM0, so it runs before any guest's state is loaded.
void check_xsavec(u64 xcr0);

}  // namespace nestor::x86
