// A vCPU's registers as the VCPU_READ / VCPU_WRITE calls number them (NESTOR_VCPU_REG_*).
#include "nestor/cap/vcpu.hpp"

namespace nestor::cap {
namespace {

// The RFLAGS bits software may set (CF, PF, AF, ZF, SF, TF, IF, DF, OF, IOPL, NT, RF, VM, AC, VIF,
// VIP, ID); the others are reserved, and bit 1 is always set.
constexpr u64 kRflagsDefined = 0x3F7FD5;

// The register itself, of a const state or not.
template <typename State> auto& register_of(State& state, u32 reg) {
    switch (reg) {
    case NESTOR_VCPU_REG_RIP: return state.rip;
    case NESTOR_VCPU_REG_RSP: return state.gpr[static_cast<usize>(virt::Gpr::rsp)];
    case NESTOR_VCPU_REG_RFLAGS: return state.rflags;
    default: return state.gpr[reg - NESTOR_VCPU_REG_GPR0];
    }
}

}  // namespace

u64 VCpu::read(u32 reg) const { return register_of(state_, reg); }

void VCpu::write(u32 reg, u64 value) {
    if (reg == NESTOR_VCPU_REG_RFLAGS) value = (value & kRflagsDefined) | virt::kRflagsFixed1;
    register_of(state_, reg) = value;
}

}  // namespace nestor::cap
