// The capability derivation tree: slots linked to their parent and siblings, so deletion and
// revocation never search.
#include "nestor/cap/capability.hpp"

#include "nestor/cap/cnode.hpp"
#include "nestor/cap/domain.hpp"
#include "nestor/cap/untyped.hpp"
#include "nestor/lib/assert.hpp"

namespace nestor::cap {

namespace {

void link_child(Slot& parent, Slot& child) {
    child.cdt_parent = &parent;
    child.prev_sibling = nullptr;
    child.next_sibling = parent.first_child;
    if (parent.first_child != nullptr) parent.first_child->prev_sibling = &child;
    parent.first_child = &child;
}

void unlink(Slot& slot) {
    if (slot.prev_sibling != nullptr) {
        slot.prev_sibling->next_sibling = slot.next_sibling;
    } else if (slot.cdt_parent != nullptr) {
        slot.cdt_parent->first_child = slot.next_sibling;
    }
    if (slot.next_sibling != nullptr) slot.next_sibling->prev_sibling = slot.prev_sibling;
    slot.cdt_parent = nullptr;
    slot.prev_sibling = nullptr;
    slot.next_sibling = nullptr;
}

}  // namespace

bool counts_as_reference(const Slot& slot, const Capability& cap) {
    return !(cap.type == ObjectType::cnode && slot.container == cap.object);
}

bool would_form_cycle(const Capability& cap, const Slot& dst) {
    KernelObject* target = dst.container;
    if (cap.type != ObjectType::cnode || target == nullptr || target->type != ObjectType::cnode) return false;
    KernelObject* start = cap.object;
    if (start == target) return false;  // a self reference, which does not count
    // Depth-first search of the CNodes reachable from the stored one, without recursion: the work
    // list is threaded through the objects, and each CNode is visited once per search.
    u64 epoch = start->source->system().next_epoch();
    start->visit_epoch = epoch;
    start->next_visit = nullptr;
    KernelObject* work = start;
    while (work != nullptr) {
        auto& cnode = static_cast<CNode&>(*work);
        work = work->next_visit;
        for (u64 i = 0; i < cnode.slot_count(); ++i) {
            const Capability& held = cnode.slot(i).cap;
            if (held.type != ObjectType::cnode || held.object->visit_epoch == epoch) continue;
            if (held.object == target) return true;
            held.object->visit_epoch = epoch;
            held.object->next_visit = work;
            work = held.object;
        }
    }
    return false;
}

void install(Slot& dst, const Capability& cap, Slot* parent) {
    ASSERT(dst.empty() && !cap.empty() && cap.object != nullptr);
    ASSERT(dst.first_child == nullptr && dst.cdt_parent == nullptr);
    dst.cap = cap;
    // A mapping belongs to the one capability that made it; derived capabilities start unmapped.
    dst.cap.mapped_in = nullptr;
    dst.cap.mapping_index = 0;
    if (parent != nullptr) link_child(*parent, dst);
    if (counts_as_reference(dst, cap)) acquire(*cap.object);
}

void clear(Slot& slot, Reaper& reaper) {
    ASSERT(!slot.empty());
    if (slot.cap.mapped_in != nullptr) slot.cap.mapped_in->unmap(slot.cap.mapping_index);
    // Children outlive a deleted capability: they pass to its parent (or become roots).
    while (slot.first_child != nullptr) {
        Slot& child = *slot.first_child;
        unlink(child);
        if (slot.cdt_parent != nullptr) link_child(*slot.cdt_parent, child);
    }
    unlink(slot);
    KernelObject* object = slot.cap.object;
    bool counted = counts_as_reference(slot, slot.cap);
    slot.cap = Capability{};
    if (counted) release(*object, reaper);
}

void transfer(Slot& src, Slot& dst, Reaper& reaper) {
    ASSERT(!src.empty() && dst.empty() && &src != &dst);
    ASSERT(dst.first_child == nullptr && dst.cdt_parent == nullptr);
    dst.cap = src.cap;
    dst.cdt_parent = src.cdt_parent;
    dst.prev_sibling = src.prev_sibling;
    dst.next_sibling = src.next_sibling;
    if (dst.prev_sibling != nullptr) {
        dst.prev_sibling->next_sibling = &dst;
    } else if (dst.cdt_parent != nullptr) {
        dst.cdt_parent->first_child = &dst;
    }
    if (dst.next_sibling != nullptr) dst.next_sibling->prev_sibling = &dst;
    dst.first_child = src.first_child;
    for (Slot* child = dst.first_child; child != nullptr; child = child->next_sibling) child->cdt_parent = &dst;
    if (dst.cap.mapped_in != nullptr) dst.cap.mapped_in->rebind(dst.cap.mapping_index, dst);
    bool was_counted = counts_as_reference(src, src.cap);
    bool is_counted = counts_as_reference(dst, dst.cap);
    KernelObject* container = src.container;
    src = Slot{};
    src.container = container;
    if (is_counted && !was_counted) acquire(*dst.cap.object);
    if (was_counted && !is_counted) release(*dst.cap.object, reaper);
}

bool is_descendant(const Slot& ancestor, const Slot& descendant) {
    for (const Slot* at = descendant.cdt_parent; at != nullptr; at = at->cdt_parent) {
        if (at == &ancestor) return true;
    }
    return false;
}

}  // namespace nestor::cap
