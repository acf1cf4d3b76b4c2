// The shadow tree's core (see shadow_tree.hpp).
#include "shadow_tree.hpp"

namespace nestor::nested {
namespace {

bool allocate_table(ShadowTree& tree, const ShadowSpace& space, paddr& table) {
    if (tree.tables >= space.max_tables || !space.frames.allocate(table)) return false;
    ++tree.tables;
    return true;
}

void free_table(ShadowTree& tree, const ShadowSpace& space, paddr table, unsigned level) {
    if (level > 1) {
        const u64* entries = space.frames.table(table);
        for (u64 i = 0; i < kShadowEntries; ++i)
            if (entries[i] & space.format.present)
                free_table(tree, space, entries[i] & space.format.address_mask, level - 1);
    }
    space.frames.free(table);
    --tree.tables;
}

// The leaf entry for `l2_physical`, with the tables on the way; nullptr when the budget is spent.
u64* leaf_entry(ShadowTree& tree, const ShadowSpace& space, u64 l2_physical) {
    if (!shadow_root(tree, space)) return nullptr;
    u64* entries = space.frames.table(tree.root);
    for (unsigned level = kShadowLevels; level > 1; --level) {
        u64& entry = entries[shadow_level_index(l2_physical, level)];
        if (!(entry & space.format.present)) {
            paddr table = 0;
            if (!allocate_table(tree, space, table)) return nullptr;
            entry = table | space.format.table_rights;
        }
        entries = space.frames.table(entry & space.format.address_mask);
    }
    return &entries[shadow_level_index(l2_physical, 1)];
}

}  // namespace

paddr shadow_new_root(ShadowTree& tree, const ShadowSpace& space) {
    if (!allocate_table(tree, space, tree.root)) tree.root = 0;
    return tree.root;
}

ShadowInstall shadow_install(ShadowTree& tree, const ShadowSpace& space, u64 l2_physical, u64 leaf) {
    u64* entry = leaf_entry(tree, space, l2_physical);
    if (!entry) {
        shadow_drop(tree, space);
        entry = leaf_entry(tree, space, l2_physical);
        if (!entry) return ShadowInstall::out_of_memory;
    }
    bool replaced = (*entry & space.format.present) != 0;
    *entry = leaf;
    return replaced ? ShadowInstall::replaced : ShadowInstall::added;
}

void shadow_drop(ShadowTree& tree, const ShadowSpace& space) {
    if (tree.root) free_table(tree, space, tree.root, kShadowLevels);
    tree.root = 0;
    tree.flush = true;
}

}  // namespace nestor::nested
