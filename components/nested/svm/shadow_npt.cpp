// The shadow nested page table (see shadow_npt.hpp).
#include "shadow_npt.hpp"

namespace nestor::nested::svm {

using namespace arch;

namespace {

constexpr u64 kAccessed = bit(5);
constexpr u64 kDirty = bit(6);
constexpr u64 kAccessBits = npf_info::write | npf_info::fetch;
constexpr u64 kWhereBits = npf_info::final_address | npf_info::table_walk;

u64 bits_at_or_above(unsigned width) { return width >= 64 ? 0 : ~u64{0} << width; }

// Bits that must be zero in an entry of L1's nested table at `level` (4: PML4 ... 1: PTE).
u64 reserved_bits(unsigned level, unsigned physical_bits, bool nxe) {
    u64 reserved = pte::address_mask & bits_at_or_above(physical_bits);
    if (!nxe) reserved |= pte::no_execute;
    if (level == 4) reserved |= pte::large;
    return reserved;
}

// A large leaf's address bits below its size, other than the PAT bit (12), must be zero.
u64 large_leaf_reserved(unsigned level) { return (bit(shadow_level_shift(level)) - 1) & ~u64{0x1FFF}; }

ShadowResult reflect(u64 l2_physical, u64 error_code, u64 hardware_info_1) {
    u64 info = error_code | npf_info::user | (hardware_info_1 & (kAccessBits | kWhereBits));
    return ShadowResult{ShadowOutcome::reflect_npf, info, l2_physical, 0};
}

ShadowResult outcome(ShadowOutcome o, u64 l1_physical = 0) { return ShadowResult{o, 0, 0, l1_physical}; }

}  // namespace

// What walking L1's tables found for one L2-physical address.
struct ShadowNpt::Walk {
    u64 entry_pa[pte::levels];  // where each level's entry lives in L1 memory (for A/D)
    unsigned leaf_level;
    u64 l1_physical;  // the 4 KiB page of L1-physical memory the access reaches
    bool writable;
    bool executable;
    bool dirty;
};

bool ShadowNpt::take_flush_request() { return shadow_take_flush(tree_); }

void ShadowNpt::drop_all() { shadow_drop(tree_, space_); }

paddr ShadowNpt::prepare(u64 l1_nested_cr3, bool l1_nxe) {
    u64 l1_root = l1_nested_cr3 & pte::address_mask;
    if (l1_root != l1_root_ || l1_nxe != l1_nxe_) drop_all();
    l1_root_ = l1_root;
    l1_nxe_ = l1_nxe;
    return shadow_root(tree_, space_);
}

ShadowResult ShadowNpt::walk_l1(L1Memory& memory, u64 l2_physical, u64 access, Walk& walk) const {
    u64 table = l1_root_;
    walk.writable = walk.executable = true;
    bool user = true;
    for (unsigned level = pte::levels; level >= 1; --level) {
        u64 entry_pa = table + shadow_level_index(l2_physical, level) * sizeof(u64);
        u64 entry = 0;  // read once: L1 may be rewriting it
        if (!memory.read(entry_pa, &entry, sizeof(entry))) return outcome(ShadowOutcome::l1_table_not_ram);
        walk.entry_pa[pte::levels - level] = entry_pa;
        if (!(entry & pte::present)) return reflect(l2_physical, 0, access);
        bool leaf = level == 1 || (level <= 3 && (entry & pte::large));
        u64 reserved =
            reserved_bits(level, physical_bits_, l1_nxe_) | (leaf && level > 1 ? large_leaf_reserved(level) : 0);
        if (entry & reserved) return reflect(l2_physical, npf_info::present | npf_info::reserved, access);
        walk.writable &= (entry & pte::writable) != 0;
        walk.executable &= !(l1_nxe_ && (entry & pte::no_execute));
        user &= (entry & pte::user) != 0;
        if (leaf) {
            u64 size = bit(shadow_level_shift(level));
            u64 base = entry & pte::address_mask & ~(size - 1);
            walk.leaf_level = level;
            walk.l1_physical = base + (l2_physical & (size - 1) & ~u64{kPageMask});
            walk.dirty = (entry & kDirty) != 0;
            break;
        }
        table = entry & pte::address_mask;
    }
    bool write = access & npf_info::write, fetch = access & npf_info::fetch;
    // Nested walks are user accesses: a supervisor-only entry refuses every one.
    if (!user || (write && !walk.writable) || (fetch && !walk.executable))
        return reflect(l2_physical, npf_info::present, access);
    return outcome(ShadowOutcome::mapped);
}

ShadowResult ShadowNpt::translate(L1Memory& memory, u64 l2_physical, u64 access) const {
    // As in fault(): the walk below takes 9 bits per level, so a wider address would alias one
    // under 2^48.
    if (l2_physical & bits_at_or_above(kL2PhysicalBits)) return reflect(l2_physical, 0, access);
    Walk walk{};
    ShadowResult walked = walk_l1(memory, l2_physical, access, walk);
    if (walked.outcome == ShadowOutcome::mapped) walked.l1_physical = walk.l1_physical;
    return walked;
}

ShadowResult ShadowNpt::compose(L1Memory& memory, u64 l2_physical, u64 access, const Walk& walk) {
    bool write = access & npf_info::write, fetch = access & npf_info::fetch;
    L1Page page = memory.page(walk.l1_physical);
    if (!page.ram || (write && !page.writable) || (fetch && !page.executable))
        return outcome(ShadowOutcome::l0_fault, walk.l1_physical);
    // The CPU would set Accessed (every level) and Dirty (leaf, on a write) in L1's tables.
    for (unsigned i = 0; i <= pte::levels - walk.leaf_level; ++i)
        if (!memory.set_bits(walk.entry_pa[i], kAccessed)) return outcome(ShadowOutcome::l1_table_not_ram);
    u64 leaf_pa = walk.entry_pa[pte::levels - walk.leaf_level];
    if (write && !memory.set_bits(leaf_pa, kDirty)) return outcome(ShadowOutcome::l1_table_not_ram);
    // Writable only once L1's entry is dirty, so that the first write still marks it.
    bool writable = walk.writable && page.writable && (walk.dirty || write);
    bool executable = walk.executable && page.executable;
    u64 leaf = (page.host & pte::address_mask) | pte::present | pte::user | (writable ? pte::writable : 0) |
               (executable ? 0 : pte::no_execute);
    if (shadow_install(tree_, space_, l2_physical, leaf) == ShadowInstall::out_of_memory)
        return outcome(ShadowOutcome::out_of_memory);
    return outcome(ShadowOutcome::mapped);
}

ShadowResult ShadowNpt::fault(L1Memory& memory, u64 l2_physical, u64 hardware_info_1) {
    u64 access = hardware_info_1 & (kAccessBits | kWhereBits);
    // A 4-level table translates 48 bits: beyond them nothing of L1's can map the access.
    if (l2_physical & bits_at_or_above(kL2PhysicalBits)) return reflect(l2_physical, 0, access);
    Walk walk{};
    ShadowResult walked = walk_l1(memory, l2_physical, access, walk);
    if (walked.outcome != ShadowOutcome::mapped) return walked;
    return compose(memory, l2_physical, access, walk);
}

}  // namespace nestor::nested::svm
