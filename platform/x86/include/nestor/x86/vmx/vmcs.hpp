// Intel VMX architectural constants for the backend (platform/x86/vmx): capability MSRs, VMCS
// field encodings, control bits, exit reasons and exit-information layouts, defined once in the
// SDK (nestor/arch/vmx_vmcs.hpp), and the control-register, EFER and RFLAGS bits
// (nestor/arch/x86_regs.hpp). The kernel never sees a VMCS.
#pragma once

#include "nestor/arch/vmx_vmcs.hpp"
#include "nestor/arch/x86_regs.hpp"
#include "nestor/lib/types.hpp"

namespace nestor::x86::vmx {

using namespace intel_vmx;
using namespace x86_regs;

}  // namespace nestor::x86::vmx
