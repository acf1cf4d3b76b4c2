// Guarded capability lookup, iterative and bounded: every level consumes at least one bit.
#include "nestor/cap/cspace.hpp"

#include "nestor/abi/caps.h"
#include "nestor/cap/cnode.hpp"

namespace nestor::cap {

namespace {

// The count bits of cptr just below bit position top (exclusive).
u64 take_bits(u64 cptr, u32 top, u32 count) {
    if (count == 0) return 0;
    u64 shifted = cptr >> (top - count);
    return count >= 64 ? shifted : shifted & ((u64{1} << count) - 1);
}

}  // namespace

CapResult<SlotRef> resolve(Slot& root, u64 cptr) {
    const Capability* cap = &root.cap;
    u32 bits_left = 64;
    for (;;) {
        if (cap->type != ObjectType::cnode) return fail(Error::lookup_failed);
        auto& cnode = static_cast<CNode&>(*cap->object);
        u32 radix = cnode.radix_bits();
        if (cap->guard_bits + radix > bits_left) return fail(Error::lookup_failed);
        if (take_bits(cptr, bits_left, cap->guard_bits) != cap->guard) return fail(Error::guard_mismatch);
        bits_left -= cap->guard_bits;
        u64 index = take_bits(cptr, bits_left, radix);
        bits_left -= radix;
        Slot& slot = cnode.slot(index);
        if (bits_left == 0) return SlotRef{&slot, cap->rights};
        cap = &slot.cap;
    }
}

CapResult<Slot*> resolve_object(Slot& root, u64 cptr, ObjectType type, u32 rights) {
    auto found = resolve(root, cptr);
    if (!found) return fail(found.error());
    Slot* slot = found->slot;
    if (slot->empty()) return fail(Error::slot_empty);
    if (slot->cap.type != type) return fail(Error::wrong_type);
    if ((slot->cap.rights & rights) != rights) return fail(Error::insufficient_rights);
    return slot;
}

CapResult<Slot*> resolve_slot(Slot& root, u64 cnode_cptr, u64 index, u32 cnode_rights) {
    const Capability* cnode_cap = &root.cap;
    if (cnode_cptr != NESTOR_CSPACE_ROOT) {
        auto found = resolve_object(root, cnode_cptr, ObjectType::cnode, 0);
        if (!found) return fail(found.error());
        cnode_cap = &found.value()->cap;
    } else if (cnode_cap->type != ObjectType::cnode) {
        return fail(Error::lookup_failed);
    }
    if ((cnode_cap->rights & cnode_rights) != cnode_rights) return fail(Error::insufficient_rights);
    auto& cnode = static_cast<CNode&>(*cnode_cap->object);
    if (index >= cnode.slot_count()) return fail(Error::index_out_of_range);
    return &cnode.slot(index);
}

}  // namespace nestor::cap
