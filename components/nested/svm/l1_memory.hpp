// What nested SVM needs from the world, as two small interfaces the kernel implements (and the
// host tests fake): L1's guest-physical memory, and frames for the shadow nested page tables.
// The component never touches hardware or host memory any other way.
#pragma once

#include "../shadow_tree.hpp"
#include "nestor/lib/types.hpp"

namespace nestor::nested::svm {

// One 4 KiB page of L1's guest-physical space as L0 maps it (the domain's mappings).
struct L1Page {
    bool ram;       // false: MMIO, a hole or beyond L1's memory (nothing may map it for L2)
    paddr host;     // the host frame backing it (ram only)
    bool writable;  // L0's rights on it, which L2 can never exceed
    bool executable;
};

// L1's guest-physical memory. Every read copies: the caller keeps what it read and never reads
// the same field twice (L1 may change its memory at any time, from another vCPU).
class L1Memory {
public:
    // Copies [l1_physical, l1_physical + bytes) of L1's RAM; false (and nothing copied that the
    // caller may trust) if any byte is not RAM.
    virtual bool read(u64 l1_physical, void* out, usize bytes) = 0;
    // Writes into L1's RAM; false (nothing written) if any byte is not writable RAM.
    virtual bool write(u64 l1_physical, const void* in, usize bytes) = 0;
    // The page holding `l1_physical` (any alignment).
    virtual L1Page page(u64 l1_physical) = 0;
    // L0's view of [l1_physical, l1_physical + bytes) when it is L1 RAM in one piece (writable
    // when `writable`), or nullptr. Valid until the component returns to the kernel, and after
    // that for as long as the VM's mapping generation stays the same (nested_hardware.hpp: L0
    // unmaps nothing without changing it); for copying many fields of one structure at once (the
    // VMRUN snapshot of vmcb12, the #VMEXIT into it). L1 may change its memory at any time: what
    // is read through it is read once.
    virtual u8* window(u64 l1_physical, usize bytes, bool writable) = 0;
    // Atomically ORs `bits` into the 8-byte aligned u64 at `l1_physical` (the Accessed / Dirty
    // bits of L1's nested page-table entries, which L1 may be changing at the same moment);
    // false if it is not writable RAM.
    virtual bool set_bits(u64 l1_physical, u64 bits) = 0;

protected:
    ~L1Memory() = default;
};

// Whether [base, base + bytes) is entirely L1 RAM (no MMIO, no hole, no wrap).
bool is_l1_ram(L1Memory& memory, u64 base, u64 bytes);

}  // namespace nestor::nested::svm
