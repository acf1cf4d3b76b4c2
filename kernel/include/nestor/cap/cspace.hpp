// Capability-space lookup. A cptr is resolved with guarded lookup through a tree of CNodes, most
// significant bits first: at each level the CNode capability's guard must match the next
// guard_bits of the cptr, then the next radix_bits index the CNode. Resolution ends when all 64
// bits are consumed; bits left over at a slot that holds no CNode capability fail the lookup.
#pragma once

#include "nestor/cap/capability.hpp"
#include "nestor/cap/error.hpp"

namespace nestor::cap {

struct SlotRef {
    Slot* slot = nullptr;
    u32 cnode_rights = 0;  // rights of the CNode capability the slot was reached through
};

// Resolves cptr to a slot, starting from the capability in root (the CSpace root slot).
CapResult<SlotRef> resolve(Slot& root, u64 cptr);
// Resolves a non-empty slot holding a capability of type with at least rights.
CapResult<Slot*> resolve_object(Slot& root, u64 cptr, ObjectType type, u32 rights);
// Resolves a slot operand: slot index of the CNode named by cnode_cptr (NESTOR_CSPACE_ROOT for
// the root CNode itself). The CNode capability must carry cnode_rights.
CapResult<Slot*> resolve_slot(Slot& root, u64 cnode_cptr, u64 index, u32 cnode_rights);

}  // namespace nestor::cap
