// MemoryRegion: guest memory. The header is kernel memory; the backing pages are a separate,
// page-aligned carve from the same untyped, zeroed before first use. A region is mapped into a
// domain's guest-physical space through a capability, and stays mapped while that cap exists.
#pragma once

#include "nestor/cap/object.hpp"

namespace nestor::cap {

class MemoryRegion final : public KernelObject {
public:
    MemoryRegion(paddr backing, u64 size) : KernelObject(ObjectType::memory), backing_(backing), size_(size) {}

    paddr backing() const { return backing_; }
    u64 size() const { return size_; }
    u32 mappings() const { return mappings_; }
    void mapped() { ++mappings_; }
    void unmapped() { --mappings_; }

private:
    paddr backing_;
    u64 size_;
    u32 mappings_ = 0;
};

}  // namespace nestor::cap
