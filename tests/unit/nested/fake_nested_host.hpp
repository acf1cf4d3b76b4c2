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

#include "l1_ram_host.hpp"
#include "nestor/nested/nested_ops.hpp"
#include "nestor/x86/svm/nested_hardware.hpp"
#include "nestor/x86/svm/vmcb.hpp"

namespace nested_test {

using namespace nestor;

class FakeNestedHost final : public L1RamHost {
public:
    static constexpr u8 kPoison = 0xA5;

    ~FakeNestedHost() {
        for (auto& [p, bytes] : live) std::free(reinterpret_cast<void*>(p));
        for (auto& [p, bytes] : released) std::free(reinterpret_cast<void*>(p));
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

    std::vector<std::pair<paddr, usize>> live;
    std::vector<std::pair<paddr, usize>> released;  // poisoned, freed only by the destructor
};

// The SVM backend's side of one nested vCPU (nestor/x86/svm/nested_hardware.hpp) as the wiring
// tests drive it: its operations do what the contract says the backend's do (which VMCB runs, the
// kernel's state loaded from it or written into it, the stale-shadow hand-off), on made-up
// "physical" addresses the component never dereferences, and count the calls.
class FakeSvmBackend final : public x86::svm::NestedHardware {
public:
    explicit FakeSvmBackend(const x86::svm::NestedResources& allocated) { resources_ = allocated; }

    void enter_l2(virt::VcpuState& state) override {
        ++l2_entries;
        running_l2_ = true;
        shadow_stale_ = false;
        pending_event = resources_.vmcb02->control.event_inject;
        load(resources_.vmcb02->save, state);
    }
    void enter_l1(virt::VcpuState& state) override {
        ++l1_entries;
        leave_l2();
        load(resources_.vmcb01->save, state);
    }
    void reset_to_l1() override {
        ++resets;
        leave_l2();
    }
    int immediate_exits = 0;
    void request_immediate_exit() override { ++immediate_exits; }
    void write_state(const virt::VcpuState& state) override {
        ++state_writes;
        x86::svm::VmcbSave& s = running().save;
        s.rip = state.rip;
        s.rflags = state.rflags | 2;
        s.rax = state.reg(virt::Gpr::rax);
        s.rsp = state.reg(virt::Gpr::rsp);
        s.efer = state.efer | kSvme;
    }

    // What the backend does when it sees L0's unmap at the next entry: vmcb02, when it is on a
    // shadow (not on L0's tables of L1, vmcb01's), moves to the empty root and is flagged.
    void l0_unmapped() {
        if (resources_.vmcb02->control.nested_cr3 == resources_.vmcb01->control.nested_cr3) return;
        shadow_stale_ = true;
        resources_.vmcb02->control.nested_cr3 = resources_.empty_npt_root;
    }
    x86::svm::Vmcb& running() const { return running_l2_ ? *resources_.vmcb02 : *resources_.vmcb01; }
    bool shadow_flagged() const { return shadow_stale_; }  // without taking it

    int l2_entries = 0, l1_entries = 0, resets = 0, state_writes = 0;
    u64 pending_event = 0;  // EVENTINJ for the next entry

private:
    static constexpr u64 kSvme = u64{1} << 12;
    void leave_l2() {
        if (!running_l2_) return;
        running_l2_ = false;
        pending_event = 0;
    }
    static void load(const x86::svm::VmcbSave& s, virt::VcpuState& state) {
        state.rip = s.rip;
        state.rflags = s.rflags;
        state.reg(virt::Gpr::rax) = s.rax;
        state.reg(virt::Gpr::rsp) = s.rsp;
        state.cr0 = s.cr0;
        state.efer = s.efer & ~kSvme;
        bool long_mode = (s.efer & (u64{1} << 10)) && (s.cs.attrib & x86::svm::attrib::long_mode);
        state.mode = long_mode                                     ? virt::CpuMode::long64
                     : !(s.cr0 & 1)                                ? virt::CpuMode::real16
                     : (s.cs.attrib & x86::svm::attrib::default32) ? virt::CpuMode::protected32
                                                                   : virt::CpuMode::protected16;
    }
};

// One nested vCPU's backend resources: vmcb01 (L1, ASID 1, L0's tables of L1 at 0x8000) and
// vmcb02, L0's permission maps for L1 (everything intercepted), the merged maps, an empty nested
// root and the VM's mapping generation, with the backend's operations on them (`hw`).
struct FakeNestedHardware {
    static constexpr paddr kEmptyNptRoot = 0x9000;

    x86::svm::Vmcb* vmcb01 = new (std::aligned_alloc(4096, sizeof(x86::svm::Vmcb))) x86::svm::Vmcb{};
    x86::svm::Vmcb* vmcb02 = new (std::aligned_alloc(4096, sizeof(x86::svm::Vmcb))) x86::svm::Vmcb{};
    std::vector<u8> l0_iopm = std::vector<u8>(0x3000, 0xFF), l0_msrpm = std::vector<u8>(0x2000, 0xFF);
    std::vector<u8> merged_iopm = std::vector<u8>(0x3000), merged_msrpm = std::vector<u8>(0x2000);
    u64 mapping_generation = 1;  // the VM's: changed by every unmap
    FakeSvmBackend hw{x86::svm::NestedResources{.vmcb01 = vmcb01,
                                                .vmcb02 = vmcb02,
                                                .l2_asid = 7,
                                                .l0_iopm = l0_iopm.data(),
                                                .l0_msrpm = l0_msrpm.data(),
                                                .merged_iopm = merged_iopm.data(),
                                                .merged_msrpm = merged_msrpm.data(),
                                                .merged_iopm_pa = 0x3000,
                                                .merged_msrpm_pa = 0x5000,
                                                .empty_npt_root = kEmptyNptRoot,
                                                .mapping_generation = &mapping_generation}};

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
    // What the kernel hands the component (NestedVcpu::hardware), as the backend gives it.
    void* handle() { return static_cast<x86::svm::NestedHardware*>(&hw); }
};

}  // namespace nested_test
