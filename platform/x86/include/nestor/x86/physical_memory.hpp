// How boot-time x86 code reaches physical memory. The parsers, the frame allocator and the
// page-table builder never dereference a physical address themselves: the kernel first reaches
// memory through an identity map of the low 1 GiB and later through the direct map, and the host
// tests use fake memory, so the caller supplies the access policy.
#pragma once

#include "nestor/lib/types.hpp"
#include "nestor/lib/util.hpp"

namespace nestor::x86 {

// Bounded reads, for tables the boot loader wrote: a wrong pointer must become an error, not a
// fault, so every read says whether [address, address + size) is readable at all.
class PhysicalReader {
public:
    virtual bool read(paddr address, void* out, usize size) const = 0;

protected:
    ~PhysicalReader() = default;  // never deleted through the interface; no operator delete needed
};

// Writable access to whole 4 KiB frames (free-frame bitmap, page tables).
class PhysicalMemory {
public:
    // The 4 KiB-aligned frame at `frame_address` as 512 words, or nullptr if it is not reachable.
    virtual u64* frame(paddr frame_address) = 0;

protected:
    ~PhysicalMemory() = default;
};

// Physical memory seen through a linear window: virtual = physical + offset for physical
// addresses below `limit`. Offset 0 with limit 1 GiB is the early identity map; offset
// 0xFFFF800000000000 with the top of RAM is the direct map. retarget() switches an existing
// object (which the allocator keeps a reference to) from one to the other.
class WindowedPhysicalMemory final : public PhysicalReader, public PhysicalMemory {
public:
    constexpr WindowedPhysicalMemory(u64 offset, paddr limit) : offset_(offset), limit_(limit) {}

    void retarget(u64 offset, paddr limit) {
        offset_ = offset;
        limit_ = limit;
    }

    bool read(paddr address, void* out, usize size) const override {
        if (!inside(address, size)) return false;
        copy_bytes(out, reinterpret_cast<const void*>(address + offset_), size);
        return true;
    }

    u64* frame(paddr frame_address) override {
        if (!is_aligned(frame_address, kPageSize) || !inside(frame_address, kPageSize)) return nullptr;
        return reinterpret_cast<u64*>(frame_address + offset_);
    }

private:
    bool inside(paddr address, u64 size) const {
        u64 end = 0;
        return checked_add(address, size, end) && end <= limit_;
    }

    u64 offset_;
    paddr limit_;
};

}  // namespace nestor::x86
