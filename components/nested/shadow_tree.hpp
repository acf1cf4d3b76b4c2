// The vendor-neutral core of a shadow nested page table (nested SVM's shadow NPT, nested VMX's
// shadow EPT): L0's own four-level tree that the CPU walks while L2 runs, composed of L1's
// tables and L0's mapping of L1. It is filled one 4 KiB leaf at a time, at the nested page fault
// that needs it, like a TLB, and dropped whole: on L1's flushes, a new L1 root, an L0 unmap, and
// when its table budget is spent. The vendor parts walk L1's tables in their own format and make
// the leaf; this core owns the frames, the budget, the intermediate tables and the flush request
// that follows every drop.
#pragma once

#include "nestor/lib/types.hpp"

namespace nestor::nested {

// Zeroed 4 KiB frames for the shadow tables, from L0's allocator.
class TableFrames {
public:
    virtual bool allocate(paddr& frame) = 0;  // false: out of memory
    virtual u64* table(paddr frame) = 0;      // the frame's 512 entries, writable by L0
    virtual void free(paddr frame) = 0;

protected:
    ~TableFrames() = default;
};

inline constexpr unsigned kShadowLevels = 4;  // 48 bits of L2-physical address, 9 bits a level
inline constexpr u64 kShadowEntries = 512;
constexpr unsigned shadow_level_shift(unsigned level) { return 12 + 9 * (level - 1); }
constexpr u64 shadow_level_index(u64 address, unsigned level) {
    return (address >> shadow_level_shift(level)) & (kShadowEntries - 1);
}

// What the core needs to know of the vendor's entry format.
struct ShadowFormat {
    u64 present;       // an entry with any of these bits maps something (NPT: P; EPT: R, W, X)
    u64 table_rights;  // an intermediate entry's bits besides its address: all rights (the leaf limits them)
    u64 address_mask;
};

// One vCPU's tree. No constructor: zero is empty (nested VMX keeps it in zeroed component memory).
struct ShadowTree {
    paddr root;  // 0: none yet
    u32 tables;  // frames in use, root included
    bool flush;  // set by every drop: L2's cached translations must go before it runs on the tree
};

// The tree's frames, format and budget (at most `max_tables` frames per tree).
struct ShadowSpace {
    TableFrames& frames;
    const ShadowFormat& format;
    u32 max_tables;
};

// The root, allocated if there is none yet; 0 when the budget or L0's memory is spent. Every
// entry into L2 asks for it: the common case, a root that exists, is inline.
paddr shadow_new_root(ShadowTree& tree, const ShadowSpace& space);
inline paddr shadow_root(ShadowTree& tree, const ShadowSpace& space) {
    return tree.root ? tree.root : shadow_new_root(tree, space);
}
// Installs `leaf` for the 4 KiB page of `l2_physical`, allocating the tables on the way. When the
// budget is spent, everything is dropped and a new root started first, as a full TLB would.
enum class ShadowInstall : u8 {
    added,          // there was no leaf
    replaced,       // a leaf was there: translations of it may be cached (an upgrade of rights)
    out_of_memory,  // no frame even after the drop
};
ShadowInstall shadow_install(ShadowTree& tree, const ShadowSpace& space, u64 l2_physical, u64 leaf);
// Frees every table and requests a flush; the next shadow_root() starts a new root.
void shadow_drop(ShadowTree& tree, const ShadowSpace& space);
// True once after every drop (asked at every entry into L2: inline).
inline bool shadow_take_flush(ShadowTree& tree) {
    bool flush = tree.flush;
    tree.flush = false;
    return flush;
}

// Every present leaf as visit(l2_physical, entry), for the invariant checks of tests and fuzzers.
template <typename Visit>
void shadow_for_each_leaf(const ShadowTree& tree, TableFrames& frames, const ShadowFormat& format, Visit visit) {
    auto walk = [&](auto& self, paddr table, unsigned level, u64 base) -> void {
        const u64* entries = frames.table(table);
        for (u64 i = 0; i < kShadowEntries; ++i) {
            if (!(entries[i] & format.present)) continue;
            u64 address = base | (i << shadow_level_shift(level));
            if (level == 1)
                visit(address, entries[i]);
            else
                self(self, entries[i] & format.address_mask, level - 1, address);
        }
    };
    if (tree.root) walk(walk, tree.root, kShadowLevels, 0);
}

}  // namespace nestor::nested
