// Keeps each VM's nested page tables (NPT / EPT) equal to its domain's mapping table: the
// capability runtime tells its observer of every map, unmap and destruction, and this one
// applies it to the VM bound to that domain.
#pragma once

#include "nestor/cap/domain_observer.hpp"
#include "nestor/virt/vm.hpp"

namespace nestor::virt {

class MappingSync final : public cap::DomainObserver {
public:
    constexpr MappingSync() = default;
    // The VMs whose domains it follows (the array outlives it).
    void follow(Vm* const* vms, u32 count) {
        vms_ = vms;
        count_ = count;
    }

    void mapped(cap::Domain& domain, const cap::Mapping& m) override;
    void unmapped(cap::Domain& domain, const cap::Mapping& m) override;
    void destroyed(cap::Domain& domain) override;

private:
    Vm* vm_of(const cap::Domain& domain) const;

    Vm* const* vms_ = nullptr;
    u32 count_ = 0;
};

}  // namespace nestor::virt
