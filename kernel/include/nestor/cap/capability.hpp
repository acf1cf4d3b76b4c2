// A capability slot and the derivation tree (CDT). Every non-empty slot records the slot it was
// derived from; a child never carries more rights than its parent when both name one object.
#pragma once

#include "nestor/cap/object.hpp"
#include "nestor/lib/types.hpp"

namespace nestor::cap {

class Domain;

struct Capability {
    ObjectType type = ObjectType::null;
    u32 rights = 0;
    u64 badge = 0;
    KernelObject* object = nullptr;
    // CNode: the guard a lookup must match before indexing.
    u8 guard_bits = 0;
    u64 guard = 0;
    // IoPortRange: the ports this capability covers.
    u32 first_port = 0;
    u32 port_count = 0;
    // Irq: a control capability issues lines; a line capability binds one line.
    bool irq_control = false;
    u32 irq_line = 0;
    // MemoryRegion: the mapping this capability backs, if any; deleting the cap unmaps it.
    Domain* mapped_in = nullptr;
    u32 mapping_index = 0;

    bool empty() const { return type == ObjectType::null; }
};

struct Slot {
    Capability cap;
    // The object this slot is part of (a CNode, or a Domain for its CSpace root); null for a
    // transient slot used while booting.
    KernelObject* container = nullptr;
    Slot* cdt_parent = nullptr;
    Slot* first_child = nullptr;
    Slot* next_sibling = nullptr;
    Slot* prev_sibling = nullptr;

    bool empty() const { return cap.empty(); }
    bool has_children() const { return first_child != nullptr; }
};

// A CNode's capability to itself does not keep it alive: otherwise a CNode holding its own
// capability (as the boot CSpace does) would outlive every capability from outside.
bool counts_as_reference(const Slot& slot, const Capability& cap);
// Whether storing cap in dst would make a CNode contain itself through other CNodes. Such a
// cycle would keep all its members alive after their last outside capability is gone.
bool would_form_cycle(const Capability& cap, const Slot& dst);

// Puts cap into the empty slot dst as a child of parent (nullptr: a root of the tree) and takes
// a reference on its object.
void install(Slot& dst, const Capability& cap, Slot* parent);
// Empties slot: unmaps what it backs, hands its children to its parent, drops its reference.
void clear(Slot& slot, Reaper& reaper);
// Moves the capability and its place in the tree from src to the empty slot dst. Moving a
// CNode's last outside capability into the CNode itself leaves it unreferenced (queued on reaper).
void transfer(Slot& src, Slot& dst, Reaper& reaper);
// Whether descendant lies under ancestor in the derivation tree.
bool is_descendant(const Slot& ancestor, const Slot& descendant);

}  // namespace nestor::cap
