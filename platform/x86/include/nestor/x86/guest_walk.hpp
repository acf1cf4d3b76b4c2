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

// The guest-physical address of `linear`, or false if the guest's tables do not map it (or a
// table itself is not guest memory). Paging off, 32-bit (with 4 MiB pages), PAE and 4-level long
// mode paging are understood; permissions are not checked (the instruction already ran).
bool guest_translate(const GuestPaging& paging, u64 linear, GuestPhysicalReader& memory, u64& gpa);

// Copies up to `size` bytes at guest-linear `linear`; returns how many could be read.
usize read_guest_linear(const GuestPaging& paging, u64 linear, GuestPhysicalReader& memory, u8* out, usize size);

}  // namespace nestor::x86
