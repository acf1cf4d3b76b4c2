// The header every kernel object starts with, and the reaper that destroys objects once their
// last capability is gone. Destruction is iterative (a worklist), never recursive: destroying a
// CNode deletes the capabilities it holds, which may doom further objects.
#pragma once

#include "nestor/abi/caps.h"
#include "nestor/lib/types.hpp"

namespace nestor::cap {

enum class ObjectType : u8 {
    null = NESTOR_CAP_NULL,
    untyped = NESTOR_CAP_UNTYPED,
    cnode = NESTOR_CAP_CNODE,
    domain = NESTOR_CAP_DOMAIN,
    vcpu = NESTOR_CAP_VCPU,
    memory = NESTOR_CAP_MEMORY,
    notification = NESTOR_CAP_NOTIFICATION,
    ioport_range = NESTOR_CAP_IOPORT_RANGE,
    irq = NESTOR_CAP_IRQ,
};

// The rights bits a capability of this type may carry.
u32 valid_rights(ObjectType type);

class Untyped;

struct KernelObject {
    explicit KernelObject(ObjectType t) : type(t) {}

    ObjectType type;
    // Capabilities naming this object. A vCPU's capabilities also count on its Domain, which
    // owns it: a vCPU lives exactly as long as its Domain.
    u32 cap_refs = 0;
    bool doomed = false;
    // Where the memory came from, so destruction can pay it back.
    Untyped* source = nullptr;
    u64 carve_begin = 0;  // offset in source where this object's carve began (before padding)
    u64 carve_end = 0;    // offset in source just past this object
    u64 footprint = 0;    // bytes charged to source, alignment padding excluded
    paddr phys = 0;
    // Siblings carved from the same untyped (accounting and audits).
    KernelObject* prev_carved = nullptr;
    KernelObject* next_carved = nullptr;
    KernelObject* next_doomed = nullptr;
    // Cycle search through CNodes: the search that last visited, and its work list.
    u64 visit_epoch = 0;
    KernelObject* next_visit = nullptr;
};

// Collects objects whose last reference went away during one operation and destroys them when
// the operation is done, so no slot disappears under an operation still walking the tree.
class Reaper {
public:
    void doom(KernelObject& object);
    // Destroys every doomed object, including those doomed while destroying others.
    void reap();
    bool empty() const { return head_ == nullptr; }

private:
    KernelObject* head_ = nullptr;
};

// Reference counting done by capabilities.
void acquire(KernelObject& object);
void release(KernelObject& object, Reaper& reaper);
// The object whose lifetime governs this one (a vCPU's Domain, otherwise itself).
KernelObject& lifetime_owner(KernelObject& object);
// Whether nothing keeps the object alive any more.
bool unreferenced(const KernelObject& object);

}  // namespace nestor::cap
