// Builds x86-64 4-level page tables (PML4 -> PDPT -> PD -> PT). Memory comes through
// PageTableMemory, so the same code fills the kernel's tables and fake memory in host tests.
//
// Policy: W^X is enforced (writable && executable is refused), non-executable leaves carry NX
// (so EFER.NXE must be set before the tables are loaded), 2 MiB pages are used wherever the
// virtual and physical addresses are 2 MiB aligned, at least 2 MiB remain and no page table
// already exists there; 4 KiB pages otherwise. Nothing is ever silently overwritten: mapping over
// a present page or inside an existing large page is an error, detected for the whole range before
// anything is written. Only running out of table memory can leave a range partly mapped.
#pragma once

#include "nestor/lib/result.hpp"
#include "nestor/x86/frame_allocator.hpp"
#include "nestor/x86/physical_memory.hpp"

namespace nestor::x86 {

// Where page tables come from and how they are reached.
class PageTableMemory {
public:
    // A 4 KiB-aligned, zero-filled frame for a new table; false when memory is exhausted.
    virtual bool allocate_table(paddr& table) = 0;
    // The table at `table` as 512 entries.
    virtual u64* table(paddr table) = 0;

protected:
    ~PageTableMemory() = default;
};

// Tables from the frame allocator, reached through `memory` (identity or direct map).
class AllocatorTableMemory final : public PageTableMemory {
public:
    AllocatorTableMemory(FrameAllocator& frames, PhysicalMemory& memory) : frames_(frames), memory_(memory) {}
    bool allocate_table(paddr& table) override;
    u64* table(paddr table) override;

private:
    FrameAllocator& frames_;
    PhysicalMemory& memory_;
};

struct Permissions {
    bool writable = false;
    bool executable = false;
    bool user = false;
    bool global = false;
    bool uncached = false;  // device memory (MMIO): strong uncacheable
};

enum class PageSize : u8 { size_4k, size_2m, size_1g };

struct Translation {
    paddr physical;
    Permissions permissions;  // effective: what every level of the walk allows
    PageSize page_size;
};

enum class MapError : u8 {
    writable_and_executable,  // W^X
    unaligned,                // virtual, physical or size not 4 KiB aligned
    empty_range,              // size 0
    non_canonical,            // virtual range leaves a canonical half (or wraps)
    physical_out_of_range,    // physical range beyond the 52-bit architectural limit
    already_mapped,           // a page in the range is present
    would_split_large_page,   // a 4 KiB page inside an existing 2 MiB / 1 GiB page
    out_of_memory,            // no frame for a new table
    no_root,                  // create_root() / use_root() was not called
    not_mapped,               // translate: nothing there
};

const char* map_error_name(MapError error);

// The kernel's own tables never hold a page both writable and executable. A guest's RAM seen
// through nested tables must be both: the guest decides, within it, what its code is.
enum class WxPolicy : u8 { enforce, allow };

class PageTableBuilder {
public:
    explicit PageTableBuilder(PageTableMemory& memory, WxPolicy wx = WxPolicy::enforce) : memory_(memory), wx_(wx) {}

    // A fresh, empty PML4.
    Status<MapError> create_root();
    // Continue editing an existing hierarchy (its tables must be reachable through memory).
    void use_root(paddr pml4) { root_ = pml4; }
    paddr root() const { return root_; }  // the CR3 value (without PCID/flags)

    Status<MapError> map(u64 virtual_address, paddr physical_address, u64 size, Permissions permissions);
    Result<Translation, MapError> translate(u64 virtual_address) const;
    // Removes every mapping in the range; pages not mapped are skipped. Refuses (changing
    // nothing) when the range covers only part of a large page. Tables are kept; the caller
    // flushes the TLB.
    Status<MapError> unmap(u64 virtual_address, u64 size);

private:
    int walk(u64 virtual_address, int level, u64*& entry) const;
    bool use_large_page(u64 virtual_address, paddr physical_address, u64 remaining) const;
    Status<MapError> check_page(u64 virtual_address, u64 page) const;
    Status<MapError> map_page(u64 virtual_address, paddr physical_address, u64 page, u64 leaf);

    PageTableMemory& memory_;
    WxPolicy wx_;
    paddr root_ = 0;
};

}  // namespace nestor::x86
