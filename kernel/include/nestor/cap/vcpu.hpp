// VCpu: a virtual CPU of a Domain. Vendor-neutral: it holds the vCPU's architectural register
// state, the very registers the kernel runs it with (virt::Vcpu points at them); the VMCB/VMCS
// lives with the platform backend. A vCPU is created and destroyed with its Domain.
//
// Its registers are reachable through a capability only while it is stopped: the backend owns
// them between an entry and the next exit, and the kernel's exit handling changes them at every
// exit, so a read of a running vCPU would be a guess and a write a race.
#pragma once

#include "nestor/abi/hypercall.h"
#include "nestor/cap/object.hpp"
#include "nestor/virt/vcpu_state.hpp"

namespace nestor::cap {

class Domain;

class VCpu final : public KernelObject {
public:
    VCpu(Domain& domain, u32 index) : KernelObject(ObjectType::vcpu), domain_(&domain), index_(index) {}

    Domain& domain() const { return *domain_; }
    u32 index() const { return index_; }

    // Register `reg` (NESTOR_VCPU_REG_*, checked by the caller).
    u64 read(u32 reg) const;
    void write(u32 reg, u64 value);

    virt::VcpuState& state() { return state_; }
    const virt::VcpuState& state() const { return state_; }
    // Set by the kernel's scheduler from the vCPU's first entry until it stops for good.
    bool running() const { return running_; }
    void set_running(bool running) { running_ = running; }

private:
    Domain* domain_;
    u32 index_;
    bool running_ = false;
    virt::VcpuState state_{};
};

}  // namespace nestor::cap
