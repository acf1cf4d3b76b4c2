// Test support: a heap buffer standing for physical memory, and a booted capability system.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "nestor/cap/cnode.hpp"
#include "nestor/cap/domain.hpp"
#include "nestor/cap/hypercall.hpp"
#include "nestor/cap/operations.hpp"
#include "nestor/cap/system.hpp"
#include "nestor/cap/untyped.hpp"

namespace nestor::cap::test {

// "Physical" memory at a fake base address. Every window is bounds-checked: the runtime must
// only ever reach memory inside the range it was given.
class HostPhysicalMemory final : public KernelMemory {
public:
    static constexpr paddr kBase = 0x100000000ull;

    explicit HostPhysicalMemory(usize size) : size_(size) {
        buffer_ = static_cast<unsigned char*>(std::aligned_alloc(kPageSize, size));
        std::memset(buffer_, 0xA5, size);
    }
    ~HostPhysicalMemory() { std::free(buffer_); }
    HostPhysicalMemory(const HostPhysicalMemory&) = delete;
    HostPhysicalMemory& operator=(const HostPhysicalMemory&) = delete;

    void* window(paddr base, usize size) override {
        if (base < kBase || size > size_ || base - kBase > size_ - size) {
            std::fprintf(stderr, "window [%#llx, +%#zx) outside physical memory\n",
                         static_cast<unsigned long long>(base), static_cast<size_t>(size));
            std::abort();
        }
        ++windows_;
        return buffer_ + (base - kBase);
    }
    unsigned char* bytes(paddr base) { return buffer_ + (base - kBase); }
    usize size() const { return size_; }
    u64 windows() const { return windows_; }

private:
    unsigned char* buffer_;
    usize size_;
    u64 windows_ = 0;
};

inline PlatformCaps full_platform() {
    PlatformCaps caps;
    caps.hvm_svm = true;
    caps.nested_paging = true;
    caps.nested_virt = true;
    return caps;
}

// A booted system: the boot domain with all of memory in its untyped at kBootSlotUntyped.
struct Booted {
    explicit Booted(usize memory_bytes = 8u << 20, PlatformCaps caps = full_platform(), u32 cspace_bits = 6)
        : memory(memory_bytes), system(memory, caps) {
        DomainConfig config;
        config.vcpus = 1;
        config.memory_bytes = 1u << 20;
        config.cspace_bits = cspace_bits;
        auto booted = bootstrap(system, HostPhysicalMemory::kBase, memory_bytes, config);
        if (!booted) {
            std::fprintf(stderr, "bootstrap failed: %u\n", static_cast<unsigned>(booted.error()));
            std::abort();
        }
        root = booted.value();
    }

    CNode& root_cnode() { return static_cast<CNode&>(*root->cspace_root().cap.object); }
    Slot& slot(u64 index) { return root_cnode().slot(index); }
    Untyped& untyped() { return static_cast<Untyped&>(*slot(kBootSlotUntyped).cap.object); }

    HypercallResult result;
    Disposition disposition = Disposition::done;

    u64 call(u64 number, u64 a0 = 0, u64 a1 = 0, u64 a2 = 0, u64 a3 = 0, u64 a4 = 0, u64 a5 = 0) {
        HypercallArgs args;
        args.number = number;
        u64 values[] = {a0, a1, a2, a3, a4, a5};
        for (usize i = 0; i < NESTOR_HYPERCALL_ARGS; ++i) args.arg[i] = values[i];
        disposition = dispatch(*root, args, result);
        return result.status;
    }

    HostPhysicalMemory memory;
    System system;
    Domain* root = nullptr;
};

}  // namespace nestor::cap::test
