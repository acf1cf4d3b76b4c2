// Builds Intel EPT (extended page tables, SDM 28.3): the 4-level guest-physical -> host-physical
// translation of a VMX guest. EPT entries are not x86 page-table entries: bits 2:0 grant read,
// write and execute (an entry is present when any is set), leaves carry a memory type in bits
// 5:3, bit 7 marks a 2 MiB / 1 GiB leaf, and there are no user/NX/present bits. Memory comes
// through PageTableMemory, so the same code fills the kernel's tables and fake memory in tests.
//
// Policy: every mapping is readable; writable and executable at once is refused (a host frame is
// never both, as GuestMapping promises); 2 MiB pages are used where guest and host addresses are
// 2 MiB aligned, at least 2 MiB remain and no table exists there yet; 4 KiB pages otherwise.
// Nothing is ever overwritten: the whole range is checked for overlap before anything is written,
// so only running out of table memory can leave a range partly mapped.
#pragma once

#include "nestor/lib/result.hpp"
#include "nestor/x86/page_table_builder.hpp"
#include "nestor/x86/vmx/vmcs.hpp"

namespace nestor::x86::vmx {

enum class EptError : u8 {
    unaligned,               // guest, host or size not 4 KiB aligned
    empty_range,             // size 0
    out_of_range,            // guest range beyond 2^48 (4-level EPT), host beyond 2^52, or wraps
    overlapping,             // a page of the range is already mapped
    would_split_large_page,  // unmap: the range covers only part of a 2 MiB / 1 GiB page
    out_of_memory,           // no frame for a new table
    no_root,                 // create_root() / use_root() was not called
    not_mapped,              // translate: nothing there
};

const char* ept_error_name(EptError error);

struct EptPermissions {
    bool write = false;
    bool execute = false;
};

struct EptTranslation {
    paddr host_physical;
    bool readable, writable, executable;
    u8 memory_type;
    bool large;  // a 2 MiB (or 1 GiB) leaf
};

class EptBuilder {
public:
    static constexpr u64 kGuestPhysicalLimit = u64{1} << 48;
    static constexpr u64 kHostPhysicalLimit = u64{1} << 52;

    explicit EptBuilder(PageTableMemory& memory, bool large_pages = true)
        : memory_(memory), large_pages_(large_pages) {}

    Status<EptError> create_root();
    void use_root(paddr pml4) { root_ = pml4; }
    paddr root() const { return root_; }

    Status<EptError> map(u64 guest_physical, paddr host_physical, u64 size, EptPermissions permissions,
                         u64 memory_type = ept::memory_type_wb);
    Result<EptTranslation, EptError> translate(u64 guest_physical) const;
    // Removes every mapping in the range; pages not mapped are skipped. Refuses (changing
    // nothing) when the range covers only part of a large page. Tables are kept; the caller
    // invalidates (INVEPT).
    Status<EptError> unmap(u64 guest_physical, u64 size);

    // Calls visit(table, context) for every paging-structure frame, children before parents, the
    // root last: how the owner frees the tables.
    void for_each_table(void (*visit)(paddr table, void* context), void* context) const;

private:
    int walk(u64 guest_physical, u64*& entry) const;
    bool use_large_page(u64 guest_physical, paddr host_physical, u64 remaining) const;
    Status<EptError> map_page(u64 guest_physical, u64 leaf, int leaf_level);
    void visit_tables(paddr table, int level, void (*visit)(paddr, void*), void* context) const;

    PageTableMemory& memory_;
    bool large_pages_;
    paddr root_ = 0;
};

// The EPT pointer for a 4-level hierarchy at `root` (A/D flags off).
constexpr u64 make_eptp(paddr root, u64 memory_type = ept::memory_type_wb) {
    return (root & ept::address_mask) | memory_type | (u64{3} << ept::eptp_walk_length_shift);
}

}  // namespace nestor::x86::vmx
