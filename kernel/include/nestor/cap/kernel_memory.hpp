// The capability runtime never dereferences a physical address itself: it asks a KernelMemory
// for a window onto memory it holds an Untyped capability for. The kernel supplies a direct map;
// host tests supply a heap buffer standing for physical memory, which also bounds-checks.
#pragma once

#include "nestor/lib/types.hpp"

namespace nestor::cap {

class KernelMemory {
public:
    // A kernel-virtual pointer to [base, base + size). Only called for ranges inside an Untyped.
    virtual void* window(paddr base, usize size) = 0;

protected:
    ~KernelMemory() = default;
};

// Physical memory mapped linearly at a fixed offset (the kernel's direct map).
class DirectMapMemory final : public KernelMemory {
public:
    static constexpr u64 kKernelDirectMapBase = 0xFFFF800000000000ull;
    explicit DirectMapMemory(u64 offset = kKernelDirectMapBase) : offset_(offset) {}
    void* window(paddr base, usize) override { return reinterpret_cast<void*>(base + offset_); }

private:
    u64 offset_;
};

}  // namespace nestor::cap
