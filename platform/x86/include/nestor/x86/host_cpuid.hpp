// The real CPU's CPUID in the form the kernel's CPUID policy takes it (VirtOps::host_cpuid): one
// function for both backends' tables.
#pragma once

#include "nestor/virt/virt_ops.hpp"

namespace nestor::x86 {

virt::CpuidValues host_cpuid(u32 leaf, u32 subleaf);

}  // namespace nestor::x86
