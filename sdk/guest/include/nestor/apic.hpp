// The local APIC as a guest programs it (Intel SDM vol. 3 chapter 11): its registers, MSRs and
// fields are nestor/arch/apic_regs.hpp's; IA32_APIC_BASE, its bits and IA32_TSC_DEADLINE
// nestor/arch/x86_regs.hpp's.
#pragma once

#include "nestor/arch/apic_regs.hpp"
#include "nestor/guest.hpp"

namespace nestor::guest::apic {

using namespace nestor::apic_regs;

// SVR software-enabled, spurious vector 0xFF.
inline constexpr u32 kSvrEnabled = kSvrEnable | kSvrReset;

// Switches the hardware-enabled APIC to x2APIC mode and software-enables it.
inline void enter_x2apic() {
    wrmsr(kMsrApicBase, rdmsr(kMsrApicBase) | kApicBaseX2apic);
    wrmsr(kMsrX2apicSvr, kSvrEnabled);
}

// An IPI through the x2APIC's ICR: `command` (vector, delivery mode, level, shorthand) to the
// APIC whose x2APIC ID is `apic_id`.
inline void send_ipi(u32 apic_id, u64 command) { wrmsr(kMsrX2apicIcr, (u64{apic_id} << 32) | command); }

}  // namespace nestor::guest::apic
