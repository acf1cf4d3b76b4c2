#include "nestor/x86/guest_walk.hpp"

#include "nestor/arch/x86_regs.hpp"
#include "nestor/lib/util.hpp"

namespace nestor::x86 {
namespace {

using x86_regs::kCr0Pg;
using x86_regs::kCr0Wp;
using x86_regs::kCr4Pae;
using x86_regs::kCr4Pse;
using x86_regs::kCr4Smap;
using x86_regs::kEferLma;
using x86_regs::kEferNxe;
constexpr u64 kPresent = 1;
constexpr u64 kWritable = u64{1} << 1;
constexpr u64 kUser = u64{1} << 2;
constexpr u64 kAccessed = u64{1} << 5;
constexpr u64 kDirty = u64{1} << 6;
constexpr u64 kLarge = u64{1} << 7;
constexpr u64 kNoExecute = u64{1} << 63;
constexpr u64 kLargePat = u64{1} << 12;  // a large page's PAT bit, below its address
constexpr u64 kAddress52 = 0x000FFFFFFFFFF000;

bool read_entry(GuestPhysicalReader& memory, u64 gpa, usize width, u64& entry) {
    entry = 0;
    return memory.read(gpa, &entry, width);
}

// 4-level (long mode) and 3-level (PAE) walks share everything but the top.
bool walk_64bit_entries(u64 table, int top_level, u64 linear, GuestPhysicalReader& memory, u64& gpa) {
    for (int level = top_level; level >= 1; --level) {
        u64 shift = 12 + 9 * static_cast<u64>(level - 1);
        u64 entry = 0;
        if (!read_entry(memory, table + ((linear >> shift) & 511) * 8, 8, entry) || !(entry & kPresent)) return false;
        bool leaf = level == 1 || ((level == 2 || level == 3) && (entry & kLarge));
        if (leaf) {
            u64 page_mask = (u64{1} << shift) - 1;
            gpa = (entry & kAddress52 & ~page_mask) | (linear & page_mask);
            return true;
        }
        table = entry & kAddress52;
    }
    return false;
}

bool walk_pae(u64 cr3, u64 linear, GuestPhysicalReader& memory, u64& gpa) {
    u64 pdpte = 0;
    u64 index = (linear >> 30) & 3;
    if (!read_entry(memory, pae_pdpt_address(cr3) + index * 8, 8, pdpte) || !(pdpte & kPresent)) return false;
    return walk_64bit_entries(pdpte & kAddress52, 2, linear & 0x3FFFFFFF, memory, gpa);
}

bool walk_32bit(const GuestPaging& p, u64 linear, GuestPhysicalReader& memory, u64& gpa) {
    u64 pde = 0;
    if (!read_entry(memory, (p.cr3 & 0xFFFFF000) + ((linear >> 22) & 1023) * 4, 4, pde) || !(pde & kPresent))
        return false;
    if ((pde & kLarge) && (p.cr4 & kCr4Pse)) {
        gpa = (pde & 0xFFC00000) | (linear & 0x3FFFFF);
        return true;
    }
    u64 pte = 0;
    if (!read_entry(memory, (pde & 0xFFFFF000) + ((linear >> 12) & 1023) * 4, 4, pte) || !(pte & kPresent))
        return false;
    gpa = (pte & 0xFFFFF000) | (linear & 0xFFF);
    return true;
}

// What a checked walk gathered: the rights of every entry on the way.
struct Rights {
    bool writable = true;
    bool user = true;
};

LinearTranslation page_fault(const DataAccess& access, u32 error) {
    return {LinearFault::page_fault, 0, error | (access.write ? kPageFaultWrite : 0)};
}

constexpr LinearTranslation kNotMemory = {LinearFault::not_memory, 0, 0};

// The entry at `gpa` is used: its Accessed flag set, unless it is already.
bool mark_accessed(GuestPageTables& memory, u64 gpa, usize width, u64 entry) {
    return (entry & kAccessed) || memory.set_entry_flags(gpa, width, kAccessed);
}

// The leaf at `leaf_gpa` allowed the access: a write sets its Dirty flag.
LinearTranslation finish(const GuestPaging& p, const DataAccess& access, const Rights& rights, u64 gpa,
                         GuestPageTables& memory, u64 leaf_gpa, usize width, u64 leaf) {
    if (access.write && !rights.writable && (p.cr0 & kCr0Wp)) return page_fault(access, kPageFaultPresent);
    if (rights.user && (p.cr4 & kCr4Smap) && !access.alignment_check) return page_fault(access, kPageFaultPresent);
    if (access.write && !(leaf & kDirty) && !memory.set_entry_flags(leaf_gpa, width, kDirty)) return kNotMemory;
    return {LinearFault::none, gpa, 0};
}

u64 reserved_bits(const GuestPaging& p, const DataAccess& access, int level, bool leaf) {
    u64 reserved = access.physical_bits >= 52 ? 0 : kAddress52 & (~u64{0} << access.physical_bits);
    if (!(p.efer & kEferNxe)) reserved |= kNoExecute;
    if (level == 4) reserved |= kLarge;  // PS in a PML4 entry
    if (leaf && level > 1) reserved |= ((u64{1} << (12 + 9 * (level - 1))) - 1) & ~u64{0xFFF} & ~kLargePat;
    return reserved;
}

[[gnu::cold]] LinearTranslation walk_64bit_checked(const GuestPaging& p, u64 table, int top_level, u64 linear,
                                                   const DataAccess& access, GuestPageTables& memory) {
    Rights rights;
    for (int level = top_level; level >= 1; --level) {
        u64 shift = 12 + 9 * static_cast<u64>(level - 1);
        u64 at = table + ((linear >> shift) & 511) * 8;
        u64 entry = 0;
        if (!read_entry(memory, at, 8, entry)) return kNotMemory;
        if (!(entry & kPresent)) return page_fault(access, 0);
        bool leaf = level == 1 || ((level == 2 || level == 3) && (entry & kLarge));
        if (entry & reserved_bits(p, access, level, leaf))
            return page_fault(access, kPageFaultPresent | kPageFaultReserved);
        if (!mark_accessed(memory, at, 8, entry)) return kNotMemory;
        rights.writable &= (entry & kWritable) != 0;
        rights.user &= (entry & kUser) != 0;
        if (leaf) {
            u64 page_mask = (u64{1} << shift) - 1;
            u64 gpa = (entry & kAddress52 & ~page_mask) | (linear & page_mask);
            return finish(p, access, rights, gpa, memory, at, 8, entry);
        }
        table = entry & kAddress52;
    }
    return kNotMemory;
}

[[gnu::cold]] LinearTranslation walk_32bit_checked(const GuestPaging& p, u64 linear, const DataAccess& access,
                                                   GuestPageTables& memory) {
    Rights rights;
    u64 pde_at = (p.cr3 & 0xFFFFF000) + ((linear >> 22) & 1023) * 4;
    u64 pde = 0;
    if (!read_entry(memory, pde_at, 4, pde)) return kNotMemory;
    if (!(pde & kPresent)) return page_fault(access, 0);
    if (!mark_accessed(memory, pde_at, 4, pde)) return kNotMemory;
    rights.writable = pde & kWritable;
    rights.user = pde & kUser;
    if ((pde & kLarge) && (p.cr4 & kCr4Pse))
        return finish(p, access, rights, (pde & 0xFFC00000) | (linear & 0x3FFFFF), memory, pde_at, 4, pde);
    u64 pte_at = (pde & 0xFFFFF000) + ((linear >> 12) & 1023) * 4;
    u64 pte = 0;
    if (!read_entry(memory, pte_at, 4, pte)) return kNotMemory;
    if (!(pte & kPresent)) return page_fault(access, 0);
    if (!mark_accessed(memory, pte_at, 4, pte)) return kNotMemory;
    rights.writable &= (pte & kWritable) != 0;
    rights.user &= (pte & kUser) != 0;
    return finish(p, access, rights, (pte & 0xFFFFF000) | (linear & 0xFFF), memory, pte_at, 4, pte);
}

}  // namespace

// Only for the rare memory operands of L1's VMX instructions: for size, not speed.
[[gnu::cold]] LinearTranslation guest_translate_data(const GuestPaging& p, u64 linear, const DataAccess& access,
                                                     GuestPageTables& memory) {
    if (!(p.cr0 & kCr0Pg)) return {LinearFault::none, (p.efer & kEferLma) ? linear : linear & 0xFFFFFFFF, 0};
    if (p.efer & kEferLma) return walk_64bit_checked(p, p.cr3 & kAddress52, 4, linear, access, memory);
    if (!(p.cr4 & kCr4Pae)) return walk_32bit_checked(p, linear & 0xFFFFFFFF, access, memory);
    // PAE: the PDPTEs were loaded with CR3 (their reserved bits fault there, not here); they have
    // no Accessed flag.
    u64 pdpte = 0;
    if (!read_entry(memory, pae_pdpt_address(p.cr3) + ((linear >> 30) & 3) * 8, 8, pdpte)) return kNotMemory;
    if (!(pdpte & kPresent)) return page_fault(access, 0);
    return walk_64bit_checked(p, pdpte & kAddress52, 2, linear & 0xFFFFFFFF, access, memory);
}

bool guest_translate(const GuestPaging& p, u64 linear, GuestPhysicalReader& memory, u64& gpa) {
    if (!(p.cr0 & kCr0Pg)) {
        gpa = (p.efer & kEferLma) ? linear : linear & 0xFFFFFFFF;
        return true;
    }
    if (p.efer & kEferLma) return walk_64bit_entries(p.cr3 & kAddress52, 4, linear, memory, gpa);
    if (p.cr4 & kCr4Pae) return walk_pae(p.cr3, linear & 0xFFFFFFFF, memory, gpa);
    return walk_32bit(p, linear & 0xFFFFFFFF, memory, gpa);
}

bool PagedGuestMemory::read(u64 gpa, void* out, usize size) {
    for (usize done = 0; done < size;) {
        u64 address = gpa + done;
        if (address < gpa) return false;  // wrapped past the top of the address space
        const u8* page = host_page(align_down(address, kPageSize));
        if (!page) return false;
        u64 offset = address & (kPageSize - 1);
        usize chunk = min<usize>(size - done, kPageSize - offset);
        copy_bytes(static_cast<u8*>(out) + done, page + offset, chunk);
        done += chunk;
    }
    return true;
}

bool PagedGuestMemory::set_entry_flags(u64 gpa, usize width, u64 flags) {
    if ((width != 4 && width != 8) || (gpa & (width - 1))) return false;
    u8* page = writable_host_page(align_down(gpa, kPageSize));
    if (!page) return false;
    u8* entry = page + (gpa & (kPageSize - 1));
    if (width == 8)
        __atomic_fetch_or(reinterpret_cast<u64*>(entry), flags, __ATOMIC_SEQ_CST);
    else
        __atomic_fetch_or(reinterpret_cast<u32*>(entry), static_cast<u32>(flags), __ATOMIC_SEQ_CST);
    return true;
}

usize read_guest_linear(const GuestPaging& paging, u64 linear, GuestPhysicalReader& memory, u8* out, usize size) {
    usize copied = 0;
    while (copied < size) {
        u64 gpa = 0;
        if (!guest_translate(paging, linear + copied, memory, gpa)) break;
        usize chunk = min<usize>(size - copied, kPageSize - ((linear + copied) & (kPageSize - 1)));
        if (!memory.read(gpa, out + copied, chunk)) break;
        copied += chunk;
    }
    return copied;
}

}  // namespace nestor::x86
