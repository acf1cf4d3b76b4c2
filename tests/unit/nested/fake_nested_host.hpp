// The kernel's side of nested virtualization, faked for the component's wiring tests: L1's memory
// is 1 MiB of RAM at guest-physical 0 (each page backed by a made-up host frame), and L0 memory
// comes from the C heap ("physical" = the pointer), with what is live kept to catch leaks.
#pragma once

#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "nestor/nested/nested_ops.hpp"
#include "nestor/x86/svm/vmcb.hpp"

namespace nested_test {

using namespace nestor;

class FakeNestedHost final : public nested::Host {
public:
    static constexpr u64 kL1Bytes = 1u << 20;

    FakeNestedHost() : ram(kL1Bytes) {}
    ~FakeNestedHost() {
        for (auto& [p, bytes] : live) std::free(reinterpret_cast<void*>(p));
    }
    bool read(u64 gpa, void* out, usize bytes) override {
        if (!inside(gpa, bytes)) return false;
        std::memcpy(out, ram.data() + gpa, bytes);
        return true;
    }
    bool write(u64 gpa, const void* in, usize bytes) override {
        if (!inside(gpa, bytes)) return false;
        std::memcpy(ram.data() + gpa, in, bytes);
        return true;
    }
    nested::GuestPage page(u64 gpa) override {
        if (gpa >= kL1Bytes) return {false, 0, false, false};
        return {true, 0x40000000 + (gpa & ~u64{0xFFF}), true, true};
    }
    u8* window(u64 gpa, usize bytes, bool) override { return inside(gpa, bytes) ? ram.data() + gpa : nullptr; }
    bool set_bits(u64 gpa, u64 bits) override {
        u64 v = 0;
        if (!read(gpa, &v, 8)) return false;
        v |= bits;
        return write(gpa, &v, 8);
    }
    void* allocate(usize bytes, paddr& physical) override {
        void* p = std::aligned_alloc(4096, bytes);
        std::memset(p, 0, bytes);
        physical = reinterpret_cast<paddr>(p);
        live.push_back({physical, bytes});
        return p;
    }
    void release(paddr physical, usize) override {
        for (auto it = live.begin(); it != live.end(); ++it)
            if (it->first == physical) {
                std::free(reinterpret_cast<void*>(physical));
                live.erase(it);
                return;
            }
        FAIL("released memory that was not allocated");
    }
    void* pointer(paddr physical) override { return reinterpret_cast<void*>(physical); }
    x86::svm::Vmcb& vmcb_at(u64 gpa) { return *reinterpret_cast<x86::svm::Vmcb*>(ram.data() + gpa); }
    void put(u64 gpa, u64 value) { REQUIRE(write(gpa, &value, sizeof(value))); }

    std::vector<u8> ram;
    std::vector<std::pair<paddr, usize>> live;

private:
    static bool inside(u64 gpa, usize bytes) { return gpa < kL1Bytes && kL1Bytes - gpa >= bytes; }
};

}  // namespace nested_test
