// The shadow nested page table: what the CPU walks while L2 runs with L1's nested paging. It is
// the composition of L1's tables (L2-physical -> L1-physical, read from L1's memory) with L0's
// mapping of L1 (L1-physical -> host, L1Memory::page), built lazily, one 4 KiB entry per #NPF,
// like a TLB, in the tree nested VMX's shadow EPT uses too (../shadow_tree.hpp). Every leaf
// points at a host frame L1Memory called L1 RAM, with at most the rights both L1 and L0 give:
// nothing outside L1's memory is ever mapped for L2.
//
// Invalidation is "drop everything" (documented choice: simple and obviously correct): on L1's
// TLB_CONTROL, INVLPGA, a new N_CR3 or NXE, and whenever L0 changes its mapping of L1 (an unmap
// must never leave an L2 entry to a freed frame). After a drop, L2's ASID must be flushed.
#pragma once

#include "l1_memory.hpp"
#include "svm_arch.hpp"

namespace nestor::nested::svm {

namespace pte = arch::pte;

enum class ShadowOutcome : u8 {
    mapped,            // an entry was installed: resume L2
    reflect_npf,       // L1's tables refuse the access: #VMEXIT(NPF) with exit_info_1 / exit_info_2
    l0_fault,          // L1's tables allow it, L0's mapping does not (MMIO, a hole, L0's rights):
                       // the kernel's rule for an L1 access at `l1_physical` applies
    l1_table_not_ram,  // one of L1's tables is not L1 RAM: the domain is stopped
    out_of_memory,     // no frame for a shadow table even after dropping everything
};

struct ShadowResult {
    ShadowOutcome outcome;
    u64 exit_info_1;  // reflect_npf: the #PF-style error code L1 gets
    u64 exit_info_2;  // reflect_npf: the L2-physical address
    u64 l1_physical;  // l0_fault: where L1's tables sent the access
};

class ShadowNpt {
public:
    // `max_tables` bounds the frames one L1 can make L0 spend (reached: everything is dropped).
    ShadowNpt(TableFrames& frames, u8 l1_physical_bits, u32 max_tables)
        : space_{frames, kNptFormat, max_tables}, physical_bits_(l1_physical_bits) {}
    ShadowNpt(const ShadowNpt&) = delete;
    ShadowNpt& operator=(const ShadowNpt&) = delete;
    ~ShadowNpt() { drop_all(); }

    // Before each VMRUN with nested paging: the shadow follows L1's root and NXE (a change drops
    // it). Returns the root for vmcb02's N_CR3, or 0 when no frame is left. `l1_nxe` is L1's own
    // EFER.NXE at its VMRUN, not vmcb12's: the CPU walks nested tables in the host's paging mode
    // (APM 15.25.5), so whether bit 63 of L1's entries means no-execute or is reserved is L1's.
    paddr prepare(u64 l1_nested_cr3, bool l1_nxe);
    // The root for the L1 root and NXE of the last prepare(): a new one after a drop (fault()
    // may drop everything when the budget is spent), 0 when no frame is left.
    paddr root() { return prepare(l1_root_, l1_nxe_); }
    // An #NPF of vmcb02: `hardware_info_1` is its EXITINFO1 (the access), `l2_physical` its EXITINFO2.
    ShadowResult fault(L1Memory& memory, u64 l2_physical, u64 hardware_info_1);
    // Where L1's tables send an L2-physical address for `access` (npf_info bits), without
    // installing anything: `mapped` with l1_physical (the page), `reflect_npf` (also beyond 48
    // bits, as fault()), or `l1_table_not_ram`. For instructions L0 emulates for L2 with an
    // address operand.
    ShadowResult translate(L1Memory& memory, u64 l2_physical, u64 access) const;
    // Frees every table; the next prepare() starts a new root.
    void drop_all();
    // True once after every drop: L2's ASID must be flushed before it runs again.
    bool take_flush_request();

    u32 tables() const { return tree_.tables; }
    // Every present leaf, for the invariant checks of the tests and the fuzzer.
    template <typename Visit> void for_each_leaf(Visit visit) const {
        shadow_for_each_leaf(tree_, space_.frames, kNptFormat, visit);
    }

private:
    static constexpr ShadowFormat kNptFormat{pte::present, pte::present | pte::writable | pte::user, pte::address_mask};
    struct Walk;
    ShadowResult walk_l1(L1Memory& memory, u64 l2_physical, u64 access, Walk& walk) const;
    ShadowResult compose(L1Memory& memory, u64 l2_physical, u64 access, const Walk& walk);

    ShadowSpace space_;
    u8 physical_bits_;
    ShadowTree tree_{0, 0, true};
    u64 l1_root_ = 0;
    bool l1_nxe_ = false;
};

}  // namespace nestor::nested::svm
