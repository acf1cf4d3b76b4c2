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

// Guest-physical memory that the VM's nested tables (NPT, EPT) map page by page to host memory
// the kernel reaches; a backend supplies the translation of one page.
class PagedGuestMemory : public GuestPhysicalReader {
public:
    bool read(u64 gpa, void* out, usize size) final;

protected:
    // The kernel's address of guest-physical page `gpa_page` (4 KiB aligned), or nullptr if the
    // VM does not map it.
    virtual const u8* host_page(u64 gpa_page) = 0;
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

// Copies up to `size` bytes at guest-linear `linear`; returns how many could be read.
usize read_guest_linear(const GuestPaging& paging, u64 linear, GuestPhysicalReader& memory, u8* out, usize size);

}  // namespace nestor::x86
