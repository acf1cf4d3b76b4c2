// x86-64 4-level page-table construction. See page_table_builder.hpp for the mapping policy.
#include "nestor/x86/page_table_builder.hpp"

namespace nestor::x86 {

namespace {

// Entry bits (Intel SDM vol. 3, 4.5). Only the ones whose meaning we rely on are named.
constexpr u64 kPresent = u64{1} << 0;
constexpr u64 kWritable = u64{1} << 1;
constexpr u64 kUser = u64{1} << 2;
constexpr u64 kWriteThrough = u64{1} << 3;  // PWT and PCD together select UC with the reset PAT
constexpr u64 kCacheDisable = u64{1} << 4;
constexpr u64 kLargePage = u64{1} << 7;   // PS: a leaf at PDPT (1 GiB) or PD (2 MiB) level
constexpr u64 kGlobal = u64{1} << 8;      // survives CR3 reloads: only meaningful in leaves
constexpr u64 kNoExecute = u64{1} << 63;  // needs EFER.NXE, otherwise a reserved bit
// Frame address bits 12..51: 52 bits is the architectural MAXPHYADDR limit.
constexpr u64 kTableAddressMask = 0x000F'FFFF'FFFF'F000;
// Large leaves keep the PAT bit at 12, so their address starts at their own alignment.
constexpr u64 kLarge2mAddressMask = 0x000F'FFFF'FFE0'0000;
constexpr u64 kLarge1gAddressMask = 0x000F'FFFF'C000'0000;
// Intermediate entries allow everything; x86 ANDs rights down the walk, so the leaf alone then
// decides, and one table can hold leaves of different permissions.
constexpr u64 kTableEntryBits = kPresent | kWritable | kUser;

constexpr u64 kEntriesPerTable = 512;
constexpr u64 kPhysicalLimit = u64{1} << 52;
constexpr u64 kLowerHalfEnd = u64{1} << 47;             // first non-canonical address
constexpr u64 kUpperHalfStart = 0xFFFF'8000'0000'0000;  // first canonical upper-half address

constexpr int kPml4Level = 4;
constexpr int kPdptLevel = 3;
constexpr int kPdLevel = 2;
constexpr int kPtLevel = 1;

constexpr u64 kSize1g = u64{1} << 30;

u64 index_at(u64 virtual_address, int level) {
    return (virtual_address >> (12 + 9 * (level - 1))) & (kEntriesPerTable - 1);
}

bool is_canonical(u64 address) { return address < kLowerHalfEnd || address >= kUpperHalfStart; }

bool is_large_leaf(u64 entry, int level) {
    return (level == kPdptLevel || level == kPdLevel) && (entry & kLargePage) != 0;
}

bool is_present(u64 entry) { return (entry & kPresent) != 0; }

u64 leaf_bits(Permissions permissions) {
    u64 bits = kPresent;
    if (permissions.writable) bits |= kWritable;
    if (permissions.user) bits |= kUser;
    if (permissions.global) bits |= kGlobal;
    if (permissions.uncached) bits |= kWriteThrough | kCacheDisable;
    if (!permissions.executable) bits |= kNoExecute;
    return bits;
}

Status<MapError> check_request(u64 virtual_address, paddr physical_address, u64 size, Permissions permissions,
                               WxPolicy wx) {
    if (wx == WxPolicy::enforce && permissions.writable && permissions.executable)
        return fail(MapError::writable_and_executable);
    if (size == 0) return fail(MapError::empty_range);
    if (!is_aligned(virtual_address, kPageSize) || !is_aligned(physical_address, kPageSize) ||
        !is_aligned(size, kPageSize))
        return fail(MapError::unaligned);
    u64 last = 0;
    if (!checked_add(virtual_address, size - 1, last) || !is_canonical(virtual_address) || !is_canonical(last) ||
        (virtual_address < kLowerHalfEnd) != (last < kLowerHalfEnd))
        return fail(MapError::non_canonical);
    u64 physical_end = 0;
    if (!checked_add(physical_address, size, physical_end) || physical_end > kPhysicalLimit)
        return fail(MapError::physical_out_of_range);
    return {};
}

}  // namespace

bool AllocatorTableMemory::allocate_table(paddr& table) {
    auto frame = frames_.allocate();
    if (!frame) return false;
    u64* entries = memory_.frame(frame.value());
    if (entries == nullptr) {  // unreachable frame: give it back rather than leak it
        (void)frames_.free(frame.value());
        return false;
    }
    fill_bytes(entries, 0, kPageSize);
    table = frame.value();
    return true;
}

u64* AllocatorTableMemory::table(paddr table) {
    u64* entries = memory_.frame(table);
    ASSERT(entries != nullptr);
    return entries;
}

Status<MapError> PageTableBuilder::create_root() {
    paddr table = 0;
    if (!memory_.allocate_table(table)) return fail(MapError::out_of_memory);
    root_ = table;
    return {};
}

// Follows the walk towards `level` without changing anything. Stops early at a non-present entry
// or a large leaf; `entry` is where it stopped and the return value says at which level.
int PageTableBuilder::walk(u64 virtual_address, int level, u64*& entry) const {
    paddr table = root_;
    for (int current = kPml4Level;; --current) {
        entry = &memory_.table(table)[index_at(virtual_address, current)];
        if (current == level || !is_present(*entry) || is_large_leaf(*entry, current)) return current;
        table = *entry & kTableAddressMask;
    }
}

// A 2 MiB page fits when both addresses are 2 MiB aligned, 2 MiB remain, and no page table sits
// in that slot already (it may hold 4 KiB pages; replacing it would drop them).
bool PageTableBuilder::use_large_page(u64 virtual_address, paddr physical_address, u64 remaining) const {
    if (!is_aligned(virtual_address, kLargePageSize) || !is_aligned(physical_address, kLargePageSize) ||
        remaining < kLargePageSize)
        return false;
    u64* entry = nullptr;
    const int level = walk(virtual_address, kPdLevel, entry);
    return !(level == kPdLevel && is_present(*entry) && !is_large_leaf(*entry, level));
}

Status<MapError> PageTableBuilder::check_page(u64 virtual_address, u64 page) const {
    u64* entry = nullptr;
    const int target = page == kLargePageSize ? kPdLevel : kPtLevel;
    const int level = walk(virtual_address, target, entry);
    if (!is_present(*entry)) return {};
    if (level > target) {
        // A large leaf above the target: a 2 MiB page inside a 1 GiB one is as occupied as a
        // 4 KiB page inside a 2 MiB one, but only the latter would be a split of our own making.
        return fail(target == kPtLevel ? MapError::would_split_large_page : MapError::already_mapped);
    }
    return fail(MapError::already_mapped);
}

// Descends to the leaf level for `page`, creating missing tables on the way.
Status<MapError> PageTableBuilder::map_page(u64 virtual_address, paddr physical_address, u64 page, u64 leaf) {
    const int target = page == kLargePageSize ? kPdLevel : kPtLevel;
    paddr table = root_;
    for (int level = kPml4Level; level > target; --level) {
        u64& entry = memory_.table(table)[index_at(virtual_address, level)];
        ASSERT(!is_large_leaf(entry, level));  // check_page refused this before any write
        if (!is_present(entry)) {
            paddr fresh = 0;
            if (!memory_.allocate_table(fresh)) return fail(MapError::out_of_memory);
            entry = fresh | kTableEntryBits;
        }
        table = entry & kTableAddressMask;
    }
    u64& entry = memory_.table(table)[index_at(virtual_address, target)];
    ASSERT(!is_present(entry));
    entry = physical_address | leaf | (target == kPdLevel ? kLargePage : 0);
    return {};
}

Status<MapError> PageTableBuilder::map(u64 virtual_address, paddr physical_address, u64 size, Permissions permissions) {
    if (root_ == 0) return fail(MapError::no_root);
    if (auto status = check_request(virtual_address, physical_address, size, permissions, wx_); !status) return status;
    // First pass: refuse the whole range before writing anything. The second pass makes the same
    // page-size choices: the tables it creates lie in 2 MiB slots this range has already passed.
    for (u64 offset = 0; offset < size;) {
        const u64 page = use_large_page(virtual_address + offset, physical_address + offset, size - offset)
                             ? kLargePageSize
                             : kPageSize;
        if (auto status = check_page(virtual_address + offset, page); !status) return status;
        offset += page;
    }
    const u64 leaf = leaf_bits(permissions);
    for (u64 offset = 0; offset < size;) {
        const u64 page = use_large_page(virtual_address + offset, physical_address + offset, size - offset)
                             ? kLargePageSize
                             : kPageSize;
        if (auto status = map_page(virtual_address + offset, physical_address + offset, page, leaf); !status)
            return status;
        offset += page;
    }
    return {};
}

Result<Translation, MapError> PageTableBuilder::translate(u64 virtual_address) const {
    if (root_ == 0) return fail(MapError::no_root);
    if (!is_canonical(virtual_address)) return fail(MapError::non_canonical);
    Permissions effective{true, true, true, false, false};
    paddr table = root_;
    for (int level = kPml4Level;; --level) {
        const u64 entry = memory_.table(table)[index_at(virtual_address, level)];
        if (!is_present(entry)) return fail(MapError::not_mapped);
        effective.writable = effective.writable && (entry & kWritable) != 0;
        effective.user = effective.user && (entry & kUser) != 0;
        effective.executable = effective.executable && (entry & kNoExecute) == 0;
        if (is_large_leaf(entry, level) || level == kPtLevel) {
            effective.global = (entry & kGlobal) != 0;
            effective.uncached = (entry & (kWriteThrough | kCacheDisable)) == (kWriteThrough | kCacheDisable);
            if (level == kPdptLevel)
                return Translation{(entry & kLarge1gAddressMask) | (virtual_address & (kSize1g - 1)), effective,
                                   PageSize::size_1g};
            if (level == kPdLevel)
                return Translation{(entry & kLarge2mAddressMask) | (virtual_address & (kLargePageSize - 1)), effective,
                                   PageSize::size_2m};
            return Translation{(entry & kTableAddressMask) | (virtual_address & (kPageSize - 1)), effective,
                               PageSize::size_4k};
        }
        table = entry & kTableAddressMask;
    }
}

const char* map_error_name(MapError error) {
    switch (error) {
    case MapError::writable_and_executable: return "writable and executable mapping refused";
    case MapError::unaligned: return "address or size not 4 KiB aligned";
    case MapError::empty_range: return "empty mapping";
    case MapError::non_canonical: return "non-canonical virtual range";
    case MapError::physical_out_of_range: return "physical range beyond 52 bits";
    case MapError::already_mapped: return "page already mapped";
    case MapError::would_split_large_page: return "mapping would split a large page";
    case MapError::out_of_memory: return "out of memory for page tables";
    case MapError::no_root: return "no root page table";
    case MapError::not_mapped: return "not mapped";
    }
    return "unknown mapping error";
}

}  // namespace nestor::x86

namespace nestor::x86 {

// Checks that no large page straddles the range before anything is cleared, so a refused
// unmap changes nothing.
Status<MapError> PageTableBuilder::unmap(u64 virtual_address, u64 size) {
    if (root_ == 0) return fail(MapError::no_root);
    if (size == 0) return fail(MapError::empty_range);
    if (!is_aligned(virtual_address, kPageSize) || !is_aligned(size, kPageSize)) return fail(MapError::unaligned);
    u64 last = 0;
    if (!checked_add(virtual_address, size - 1, last) || !is_canonical(virtual_address) || !is_canonical(last))
        return fail(MapError::non_canonical);
    for (int pass = 0; pass < 2; ++pass) {
        for (u64 offset = 0; offset < size;) {
            u64 va = virtual_address + offset;
            u64* entry = nullptr;
            int level = walk(va, kPtLevel, entry);
            u64 step = level == kPdptLevel ? kSize1g : level == kPdLevel ? kLargePageSize : kPageSize;
            if (!is_present(*entry) && level != kPtLevel) {
                offset += step - (va & (step - 1));  // nothing mapped below this entry
                continue;
            }
            if (is_large_leaf(*entry, level) && (!is_aligned(va, step) || size - offset < step))
                return fail(MapError::would_split_large_page);
            if (pass == 1) *entry = 0;
            offset += step;
        }
    }
    return {};
}

}  // namespace nestor::x86
