// Reference counting and iterative destruction of kernel objects.
#include "nestor/cap/object.hpp"

#include "nestor/cap/cnode.hpp"
#include "nestor/cap/domain.hpp"
#include "nestor/cap/ioport_range.hpp"
#include "nestor/cap/irq.hpp"
#include "nestor/cap/memory_region.hpp"
#include "nestor/cap/notification.hpp"
#include "nestor/cap/untyped.hpp"
#include "nestor/cap/vcpu.hpp"
#include "nestor/lib/assert.hpp"

namespace nestor::cap {

u32 valid_rights(ObjectType type) {
    switch (type) {
    case ObjectType::null: return 0;
    case ObjectType::untyped: return NESTOR_RIGHTS_VALID_UNTYPED;
    case ObjectType::cnode: return NESTOR_RIGHTS_VALID_CNODE;
    case ObjectType::domain: return NESTOR_RIGHTS_VALID_DOMAIN;
    case ObjectType::vcpu: return NESTOR_RIGHTS_VALID_VCPU;
    case ObjectType::memory: return NESTOR_RIGHTS_VALID_MEMORY;
    case ObjectType::notification: return NESTOR_RIGHTS_VALID_NOTIFICATION;
    case ObjectType::ioport_range: return NESTOR_RIGHTS_VALID_IOPORT_RANGE;
    case ObjectType::irq: return NESTOR_RIGHTS_VALID_IRQ;
    }
    return 0;
}

KernelObject& lifetime_owner(KernelObject& object) {
    if (object.type == ObjectType::vcpu) return static_cast<VCpu&>(object).domain();
    return object;
}

bool unreferenced(const KernelObject& object) {
    if (object.cap_refs != 0) return false;
    // An untyped stays while objects carved from it live: they still occupy its memory.
    if (object.type == ObjectType::untyped) return static_cast<const Untyped&>(object).children() == 0;
    return true;
}

void acquire(KernelObject& object) {
    ++object.cap_refs;
    KernelObject& owner = lifetime_owner(object);
    if (&owner != &object) ++owner.cap_refs;
}

void release(KernelObject& object, Reaper& reaper) {
    ASSERT(object.cap_refs > 0);
    --object.cap_refs;
    KernelObject& owner = lifetime_owner(object);
    if (&owner != &object) {
        ASSERT(owner.cap_refs > 0);
        --owner.cap_refs;
    }
    if (unreferenced(owner) && !owner.doomed) reaper.doom(owner);
}

void Reaper::doom(KernelObject& object) {
    ASSERT(!object.doomed);
    object.doomed = true;
    object.next_doomed = head_;
    head_ = &object;
}

namespace {

System& system_of(KernelObject& object) {
    if (object.source != nullptr) return object.source->system();
    ASSERT(object.type == ObjectType::untyped);
    return static_cast<Untyped&>(object).system();
}

// Pays the object's memory back to the untyped it was carved from.
void return_memory(KernelObject& object, Reaper& reaper) {
    System& system = system_of(object);
    Untyped* source = object.source;
    if (source != nullptr && source->give_back(object)) reaper.doom(*source);
    system.object_destroyed();
}

void tear_down_domain(Domain& domain, Reaper& reaper) {
    domain.tear_down(reaper);
    for (u32 i = 0; i < domain.vcpu_count(); ++i) {
        VCpu& vcpu = domain.vcpu(i);
        ASSERT(vcpu.cap_refs == 0);
        return_memory(vcpu, reaper);
    }
}

void tear_down(KernelObject& object, Reaper& reaper) {
    switch (object.type) {
    case ObjectType::cnode: static_cast<CNode&>(object).clear_all(reaper); break;
    case ObjectType::domain: tear_down_domain(static_cast<Domain&>(object), reaper); break;
    case ObjectType::notification: {
        auto& notification = static_cast<Notification&>(object);
        if (notification.bound_irq() != nullptr) notification.bound_irq()->unbind(notification.bound_line());
        break;
    }
    case ObjectType::irq: static_cast<Irq&>(object).unbind_all(); break;
    case ObjectType::memory: ASSERT(static_cast<MemoryRegion&>(object).mappings() == 0); break;
    case ObjectType::untyped: ASSERT(static_cast<Untyped&>(object).children() == 0); break;
    case ObjectType::ioport_range: break;
    case ObjectType::vcpu:  // destroyed with its domain, never on its own
    case ObjectType::null: ASSERT_UNREACHABLE();
    }
}

}  // namespace

void Reaper::reap() {
    while (head_ != nullptr) {
        KernelObject* object = head_;
        head_ = object->next_doomed;
        ASSERT(unreferenced(*object));
        tear_down(*object, *this);
        return_memory(*object, *this);
    }
}

}  // namespace nestor::cap
