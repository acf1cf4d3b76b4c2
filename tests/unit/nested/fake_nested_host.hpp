// The kernel's side of nested virtualization, faked for the component's wiring tests: L1's memory
// is 1 MiB of RAM at guest-physical 0 (each page backed by a made-up host frame), and L0 memory
// comes from the C heap ("physical" = the pointer), with what is live kept to catch leaks. What
// is released is poisoned and kept until the end, never handed out again: a VMCB still pointing
// at it is caught (is_live), and a walk through it finds no present entry that makes sense.
#pragma once

#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "nestor/nested/nested_ops.hpp"
#include "nestor/x86/svm/nested_context.hpp"
#include "nestor/x86/svm/vmcb.hpp"

namespace nested_test {

using namespace nestor;

class FakeNestedHost final : public nested::Host {
public:
    static constexpr u64 kL1Bytes = 1u << 20;

    FakeNestedHost() : ram(kL1Bytes) {}
    static constexpr u8 kPoison = 0xA5;

    ~FakeNestedHost() {
        for (auto& [p, bytes] : live) std::free(reinterpret_cast<void*>(p));
        for (auto& [p, bytes] : released) std::free(reinterpret_cast<void*>(p));
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
                std::memset(reinterpret_cast<void*>(physical), kPoison, it->second);
                released.push_back(*it);
                live.erase(it);
                return;
            }
        FAIL("released memory that was not allocated");
    }
    // Whether `physical` lies in memory allocated and not released since.
    bool is_live(paddr physical) const {
        for (auto& [p, bytes] : live)
            if (physical >= p && physical - p < bytes) return true;
        return false;
    }
    void* pointer(paddr physical) override { return reinterpret_cast<void*>(physical); }
    x86::svm::Vmcb& vmcb_at(u64 gpa) { return *reinterpret_cast<x86::svm::Vmcb*>(ram.data() + gpa); }
    void put(u64 gpa, u64 value) { REQUIRE(write(gpa, &value, sizeof(value))); }

    std::vector<u8> ram;
    std::vector<std::pair<paddr, usize>> live;
    std::vector<std::pair<paddr, usize>> released;  // poisoned, freed only by the destructor

private:
    static bool inside(u64 gpa, usize bytes) { return gpa < kL1Bytes && kL1Bytes - gpa >= bytes; }
};

// The SVM backend's side of one nested vCPU (nestor/x86/svm/nested_context.hpp) as the wiring
// tests drive it: vmcb01 (L1, ASID 1, L0's tables of L1 at 0x8000) and vmcb02, L0's permission
// maps for L1 (everything intercepted), the merged maps, an empty nested root and the VM's
// mapping generation. The "physical" addresses are made up; the component never dereferences them.
struct FakeNestedHardware {
    static constexpr paddr kEmptyNptRoot = 0x9000;

    x86::svm::Vmcb* vmcb01 = new (std::aligned_alloc(4096, sizeof(x86::svm::Vmcb))) x86::svm::Vmcb{};
    x86::svm::Vmcb* vmcb02 = new (std::aligned_alloc(4096, sizeof(x86::svm::Vmcb))) x86::svm::Vmcb{};
    std::vector<u8> l0_iopm = std::vector<u8>(0x3000, 0xFF), l0_msrpm = std::vector<u8>(0x2000, 0xFF);
    std::vector<u8> merged_iopm = std::vector<u8>(0x3000), merged_msrpm = std::vector<u8>(0x2000);
    u64 mapping_generation = 1;  // the VM's: changed by every unmap
    x86::svm::NestedContext hw{vmcb01,
                               0x1000,
                               vmcb02,
                               0x2000,
                               7,
                               l0_iopm.data(),
                               l0_msrpm.data(),
                               merged_iopm.data(),
                               merged_msrpm.data(),
                               0x3000,
                               0x5000,
                               false,
                               false,
                               false,
                               kEmptyNptRoot,
                               &mapping_generation,
                               false};

    FakeNestedHardware() {
        vmcb01->control.guest_asid = 1;
        vmcb01->control.nested_cr3 = 0x8000;
    }
    FakeNestedHardware(const FakeNestedHardware&) = delete;
    FakeNestedHardware& operator=(const FakeNestedHardware&) = delete;
    ~FakeNestedHardware() {
        std::free(vmcb01);
        std::free(vmcb02);
    }
};

}  // namespace nested_test
