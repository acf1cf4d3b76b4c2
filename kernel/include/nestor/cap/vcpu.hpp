// VCpu: a virtual CPU of a Domain. Vendor-neutral: it holds architectural register state only;
// the VMCB/VMCS lives with the platform backend. A vCPU is created and destroyed with its Domain.
#pragma once

#include "nestor/abi/hypercall.h"
#include "nestor/cap/object.hpp"

namespace nestor::cap {

class Domain;

class VCpu final : public KernelObject {
public:
    VCpu(Domain& domain, u32 index) : KernelObject(ObjectType::vcpu), domain_(&domain), index_(index) {}

    Domain& domain() const { return *domain_; }
    u32 index() const { return index_; }
    u64 read(u32 reg) const { return registers_[reg]; }
    void write(u32 reg, u64 value) { registers_[reg] = value; }

private:
    Domain* domain_;
    u32 index_;
    u64 registers_[NESTOR_VCPU_REG_COUNT] = {};
};

}  // namespace nestor::cap
