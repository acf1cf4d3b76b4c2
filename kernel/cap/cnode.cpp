// CNode: a table of capability slots laid out right after its header.
#include "nestor/cap/cnode.hpp"

#include "nestor/lib/assert.hpp"
#include "nestor/lib/placement_new.hpp"

namespace nestor::cap {

static_assert(sizeof(CNode) % alignof(Slot) == 0, "slots must follow the header aligned");

CNode::CNode(u32 radix_bits) : KernelObject(ObjectType::cnode), radix_bits_(radix_bits) {
    for (u64 i = 0; i < slot_count(); ++i) {
        Slot* slot = new (&slots()[i]) Slot();
        slot->container = this;
    }
}

u64 CNode::footprint_for(u32 radix_bits) { return sizeof(CNode) + (u64{1} << radix_bits) * sizeof(Slot); }

Slot& CNode::slot(u64 index) {
    ASSERT(index < slot_count());
    return slots()[index];
}

void CNode::clear_all(Reaper& reaper) {
    for (u64 i = 0; i < slot_count(); ++i) {
        if (!slots()[i].empty()) clear(slots()[i], reaper);
    }
}

}  // namespace nestor::cap
