// Walks a guest's own page tables: to emulate an instruction the kernel must read the guest's
// code at CS:RIP, a linear address the guest's paging translates. Reads go through the guest's
// physical memory (the nested tables), never through host memory directly.
#pragma once

#include "nestor/lib/types.hpp"

namespace nestor::x86 {

// The guest's paging controls, as the backend last saw them.
struct GuestPaging {
    u64 cr0;
    u64 cr3;
    u64 cr4;
    u64 efer;
};

// Guest-physical memory, for the walk: false if [gpa, gpa + size) is not guest memory.
class GuestPhysicalReader {
public:
    virtual bool read(u64 gpa, void* out, usize size) = 0;

protected:
    ~GuestPhysicalReader() = default;
};

// Guest-physical memory for a walk the kernel makes as the CPU would (guest_translate_data),
// which also writes: the Accessed and Dirty flags of the entries it uses (SDM vol. 3A 4.8).
class GuestPageTables : public GuestPhysicalReader {
public:
    // ORs `flags` into the naturally aligned entry of `width` bytes (4 or 8) at `gpa` in one atomic
    // operation, as the CPU does; false if the VM does not map it writable.
    virtual bool set_entry_flags(u64 gpa, usize width, u64 flags) = 0;

protected:
    ~GuestPageTables() = default;
};

// Guest-physical memory that the VM's nested tables (NPT, EPT) map page by page to host memory
// the kernel reaches; a backend supplies the translation of one page.
class PagedGuestMemory : public GuestPageTables {
public:
    bool read(u64 gpa, void* out, usize size) final;
    bool set_entry_flags(u64 gpa, usize width, u64 flags) final;

protected:
    // The kernel's address of guest-physical page `gpa_page` (4 KiB aligned), or nullptr if the
    // VM does not map it (writable_host_page: writable).
    virtual const u8* host_page(u64 gpa_page) = 0;
    virtual u8* writable_host_page(u64 gpa_page) = 0;
    ~PagedGuestMemory() = default;
};

// The linear address of the instruction at CS:RIP: outside 64-bit mode CS.base + EIP wraps at
// 4 GiB.
constexpr u64 code_linear_address(u64 cs_base, u64 rip, bool long_mode64) {
    u64 linear = cs_base + rip;
    return long_mode64 ? linear : linear & 0xFFFFFFFF;
}

// The guest-physical address of `linear`, or false if the guest's tables do not map it (or a
// table itself is not guest memory). Paging off, 32-bit (with 4 MiB pages), PAE and 4-level long
// mode paging are understood; permissions are not checked (the instruction already ran).
bool guest_translate(const GuestPaging& paging, u64 linear, GuestPhysicalReader& memory, u64& gpa);

// A supervisor-mode data access the kernel makes for the guest (nested VMX's memory operands of
// L1's VMX instructions), checked as the CPU checks it (SDM vol. 3A 4.6, 4.7).
struct DataAccess {
    bool write;
    bool alignment_check;  // RFLAGS.AC: with CR4.SMAP, whether user pages may be accessed
    u32 physical_bits;     // MAXPHYADDR: address bits above it are reserved in the entries
};
// The page-fault error code's bits (SDM vol. 3A 4.7).
inline constexpr u32 kPageFaultPresent = 1u << 0;
inline constexpr u32 kPageFaultWrite = 1u << 1;
inline constexpr u32 kPageFaultReserved = 1u << 3;
enum class LinearFault : u8 {
    none,
    page_fault,  // error_code says why; CR2 is the linear address
    not_memory,  // a table the walk needs is not guest memory
};
struct LinearTranslation {
    LinearFault fault;
    u64 gpa;
    u32 error_code;
};
// The guest-physical address of `linear` for `access`, or the page fault the CPU would raise: a
// not-present entry; a reserved bit (in the 64-bit formats: address bits beyond MAXPHYADDR, XD
// without EFER.NXE, PS in a PML4 entry, a large page's address bits below its size but PAT); a
// write through a read-only entry with CR0.WP; with CR4.SMAP, a user page while RFLAGS.AC is
// clear. Protection keys are not checked (PKS is not offered; PKU concerns user accesses). As the
// CPU, the walk sets the Accessed flag of every entry it uses and, for a write it allows, the
// Dirty flag of the leaf; an entry it cannot write back is LinearFault::not_memory.
LinearTranslation guest_translate_data(const GuestPaging& paging, u64 linear, const DataAccess& access,
                                       GuestPageTables& memory);

// PAE paging's four PDPTEs, which the CPU loads from the 32-byte-aligned table at CR3 bits 31:5
// (SDM vol. 3A 4.4.1): a present one with a reserved bit set (bits 2:1, 8:5, those from
// MAXPHYADDR up) makes the load fail, a MOV to CR0 / CR3 / CR4 then #GPs and a VM entry fails.
inline constexpr usize kPaePdptes = 4;
constexpr u64 pae_pdpt_address(u64 cr3) { return cr3 & 0xFFFFFFE0; }
constexpr bool pae_pdpte_valid(u64 pdpte, u32 physical_bits) {
    constexpr u64 kPresent = 1, kReservedLow = 0x1E6;
    u64 reserved = kReservedLow | (physical_bits < 64 ? ~u64{0} << physical_bits : 0);
    return !(pdpte & kPresent) || !(pdpte & reserved);
}

// Copies up to `size` bytes at guest-linear `linear`; returns how many could be read.
usize read_guest_linear(const GuestPaging& paging, u64 linear, GuestPhysicalReader& memory, u8* out, usize size);

}  // namespace nestor::x86
