#include "nestor/x86/vmx/ept.hpp"

namespace nestor::x86::vmx {
namespace {

constexpr usize kEntries = 512;
constexpr u64 kPage = kPageSize;
constexpr u64 kLarge = kLargePageSize;

constexpr usize index_of(u64 guest_physical, int level) {
    return static_cast<usize>((guest_physical >> (12 + 9 * level)) & (kEntries - 1));
}
constexpr bool present(u64 entry) { return (entry & ept::permissions_mask) != 0; }
constexpr bool leaf(u64 entry, int level) { return level == 0 || (entry & ept::large_page); }

}  // namespace

const char* ept_error_name(EptError error) {
    switch (error) {
    case EptError::unaligned: return "unaligned";
    case EptError::empty_range: return "empty range";
    case EptError::out_of_range: return "address out of range";
    case EptError::overlapping: return "already mapped";
    case EptError::would_split_large_page: return "would split a large page";
    case EptError::out_of_memory: return "out of memory";
    case EptError::no_root: return "no root table";
    case EptError::not_mapped: return "not mapped";
    }
    return "?";
}

Status<EptError> EptBuilder::create_root() {
    paddr table = 0;
    if (!memory_.allocate_table(table)) return fail(EptError::out_of_memory);
    root_ = table;
    return {};
}

// Walks towards the 4 KiB entry of `guest_physical`, stopping at the first entry that is not
// present or is a leaf; returns that entry's level (3 = PML4 ... 0 = PT).
int EptBuilder::walk(u64 guest_physical, u64*& entry) const {
    paddr table = root_;
    for (int level = 3;; --level) {
        entry = &memory_.table(table)[index_of(guest_physical, level)];
        if (!present(*entry) || leaf(*entry, level)) return level;
        table = *entry & ept::address_mask;
    }
}

bool EptBuilder::use_large_page(u64 guest_physical, paddr host_physical, u64 remaining) const {
    if (!large_pages_ || remaining < kLarge || !is_aligned(guest_physical, kLarge) ||
        !is_aligned(host_physical, kLarge))
        return false;
    u64* entry = nullptr;
    int level = walk(guest_physical, entry);
    return level >= 1 && !present(*entry);  // no page table below this 2 MiB slot
}

Status<EptError> EptBuilder::map_page(u64 guest_physical, u64 leaf_entry, int leaf_level) {
    paddr table = root_;
    for (int level = 3; level > leaf_level; --level) {
        u64& entry = memory_.table(table)[index_of(guest_physical, level)];
        if (!present(entry)) {
            paddr next = 0;
            if (!memory_.allocate_table(next)) return fail(EptError::out_of_memory);
            entry = next | ept::read | ept::write | ept::execute;
        }
        table = entry & ept::address_mask;
    }
    memory_.table(table)[index_of(guest_physical, leaf_level)] = leaf_entry;
    return {};
}

Status<EptError> EptBuilder::map(u64 guest_physical, paddr host_physical, u64 size, EptPermissions permissions,
                                 u64 memory_type) {
    if (!root_) return fail(EptError::no_root);
    if (size == 0) return fail(EptError::empty_range);
    if (!is_aligned(guest_physical, kPage) || !is_aligned(host_physical, kPage) || !is_aligned(size, kPage))
        return fail(EptError::unaligned);
    u64 guest_end = 0, host_end = 0;
    if (!checked_add(guest_physical, size, guest_end) || guest_end > kGuestPhysicalLimit ||
        !checked_add(host_physical, size, host_end) || host_end > kHostPhysicalLimit)
        return fail(EptError::out_of_range);

    // Check the whole range first: nothing is written if any page is taken. The loop advances by
    // at least 4 KiB per step, so it runs at most size / 4 KiB times.
    for (u64 offset = 0; offset < size;) {
        u64 gpa = guest_physical + offset;
        bool large = use_large_page(gpa, host_physical + offset, size - offset);
        u64* entry = nullptr;
        walk(gpa, entry);
        if (present(*entry)) return fail(EptError::overlapping);
        offset += large ? kLarge : kPage;
    }

    u64 bits = ept::read | (permissions.write ? ept::write : 0) | (permissions.execute ? ept::execute : 0) |
               ((memory_type << ept::memory_type_shift) & ept::memory_type_mask);
    for (u64 offset = 0; offset < size;) {
        u64 gpa = guest_physical + offset, hpa = host_physical + offset;
        bool large = use_large_page(gpa, hpa, size - offset);
        auto mapped = large ? map_page(gpa, hpa | bits | ept::large_page, 1) : map_page(gpa, hpa | bits, 0);
        if (!mapped) return mapped;
        offset += large ? kLarge : kPage;
    }
    return {};
}

Result<EptTranslation, EptError> EptBuilder::translate(u64 guest_physical) const {
    if (!root_) return fail(EptError::no_root);
    if (guest_physical >= kGuestPhysicalLimit) return fail(EptError::out_of_range);
    u64* entry = nullptr;
    int level = walk(guest_physical, entry);
    if (!present(*entry)) return fail(EptError::not_mapped);
    u64 page_mask = (u64{1} << (12 + 9 * level)) - 1;
    EptTranslation t{};
    t.host_physical = (*entry & ept::address_mask & ~page_mask) | (guest_physical & page_mask);
    t.readable = *entry & ept::read;
    t.writable = *entry & ept::write;
    t.executable = *entry & ept::execute;
    t.memory_type = static_cast<u8>((*entry & ept::memory_type_mask) >> ept::memory_type_shift);
    t.large = level > 0;
    return t;
}

Status<EptError> EptBuilder::unmap(u64 guest_physical, u64 size) {
    if (!root_) return fail(EptError::no_root);
    if (size == 0) return fail(EptError::empty_range);
    if (!is_aligned(guest_physical, kPage) || !is_aligned(size, kPage)) return fail(EptError::unaligned);
    u64 end = 0;
    if (!checked_add(guest_physical, size, end) || end > kGuestPhysicalLimit) return fail(EptError::out_of_range);
    // Pass 0 checks that no large page straddles the range, pass 1 clears: a refused unmap
    // changes nothing. Each step advances by at least 4 KiB.
    for (int pass = 0; pass < 2; ++pass) {
        for (u64 offset = 0; offset < size;) {
            u64 gpa = guest_physical + offset;
            u64* entry = nullptr;
            int level = walk(gpa, entry);
            u64 step = u64{1} << (12 + 9 * level);
            if (!present(*entry)) {
                offset += step - (gpa & (step - 1));  // nothing mapped below this entry
                continue;
            }
            if (level > 0 && (!is_aligned(gpa, step) || size - offset < step))
                return fail(EptError::would_split_large_page);
            if (pass == 1) *entry = 0;
            offset += step;
        }
    }
    return {};
}

void EptBuilder::visit_tables(paddr table, int level, void (*visit)(paddr, void*), void* context) const {
    if (level > 0) {
        const u64* entries = memory_.table(table);
        for (usize i = 0; i < kEntries; ++i)
            if (present(entries[i]) && !leaf(entries[i], level))
                visit_tables(entries[i] & ept::address_mask, level - 1, visit, context);
    }
    visit(table, context);
}

void EptBuilder::for_each_table(void (*visit)(paddr table, void* context), void* context) const {
    if (root_) visit_tables(root_, 3, visit, context);
}

}  // namespace nestor::x86::vmx
