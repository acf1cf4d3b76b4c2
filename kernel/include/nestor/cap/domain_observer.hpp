// Who must hear about changes to a domain that the capability runtime makes: the kernel keeps a
// domain's nested page tables equal to its mapping table, and its vCPUs alive no longer than it.
// The runtime calls these after the change is decided; they cannot refuse it.
#pragma once

namespace nestor::cap {

class Domain;
struct Mapping;

class DomainObserver {
public:
    virtual void mapped(Domain& domain, const Mapping& mapping) = 0;
    // Called before the mapping is forgotten: once it returns, the guest must not reach it.
    virtual void unmapped(Domain& domain, const Mapping& mapping) = 0;
    // Called when destruction starts, before the domain's mappings are taken down.
    virtual void destroyed(Domain& domain) = 0;

protected:
    ~DomainObserver() = default;
};

}  // namespace nestor::cap
