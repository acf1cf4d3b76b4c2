// Shared by the nested SVM core tests and its fuzzer: a fake L1 (RAM with an MMIO hole, each page
// backed by a made-up host frame), fake frames for the shadow tables that count what is live, and
// a valid vmcb12 to start from.
#pragma once

#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "nested_vmrun.hpp"

namespace nested_svm_test {

using namespace nestor;
using namespace nestor::nested::svm;
using nestor::nested::TableFrames;
namespace vmcb = nestor::x86::svm;

// L1's memory: `ram_bytes` of RAM at 0 with [kMmioBase, kMmioBase + kMmioBytes) a hole (MMIO).
// Page p is backed by host frame kHostBase + p: every shadow leaf must point into that range.
class FakeL1 final : public L1Memory {
public:
    static constexpr u64 kMmioBase = 0x300000;
    static constexpr u64 kMmioBytes = 0x10000;
    static constexpr u64 kHostBase = 0x40000000;

    explicit FakeL1(u64 ram_bytes = 4u << 20) : ram(ram_bytes, 0) {}

    bool is_ram(u64 gpa) const { return gpa < ram.size() && !(gpa >= kMmioBase && gpa < kMmioBase + kMmioBytes); }
    bool range_ram(u64 gpa, u64 bytes) const {
        for (u64 a = gpa; a < gpa + bytes; a = (a & ~u64{0xFFF}) + 0x1000)
            if (a < gpa || !is_ram(a)) return false;
        return bytes != 0 && gpa + bytes >= gpa;
    }

    bool read(u64 gpa, void* out, usize bytes) override {
        ++reads;
        if (!range_ram(gpa, bytes)) return false;
        std::memcpy(out, &ram[gpa], bytes);
        if (after_read) after_read(gpa, bytes);
        return true;
    }
    bool write(u64 gpa, const void* in, usize bytes) override {
        if (!range_ram(gpa, bytes) || read_only_page(gpa, bytes)) return false;
        std::memcpy(&ram[gpa], in, bytes);
        return true;
    }
    u8* window(u64 gpa, usize bytes, bool writable) override {
        ++windows;
        if (!range_ram(gpa, bytes) || (writable && read_only_page(gpa, bytes))) return nullptr;
        if (pages_apart && (gpa & 0xFFF) + bytes > 0x1000) return nullptr;
        if (writable || !after_window) return &ram[gpa];
        // A window looked at with an adversary watching: the caller sees L1's memory as it was
        // when it looked, and L1 rewrites it right after (after_window), so whatever is read
        // again later sees L1's new bytes.
        looked.emplace_back(ram.data() + gpa, ram.data() + gpa + bytes);
        after_window(gpa, bytes);
        return looked.back().data();
    }
    L1Page page(u64 gpa) override {
        if (!is_ram(gpa)) return L1Page{false, 0, false, false};
        u64 frame = gpa >> 12;
        return L1Page{true, kHostBase + (frame << 12), !read_only.count(frame), !no_exec.count(frame)};
    }
    bool set_bits(u64 gpa, u64 bits) override {
        if ((gpa & 7) || !range_ram(gpa, 8)) return false;
        u64 v = get<u64>(gpa);
        put<u64>(gpa, v | bits);
        return true;
    }

    template <typename T> T get(u64 gpa) const {
        T v;
        std::memcpy(&v, &ram[gpa], sizeof(T));
        return v;
    }
    template <typename T> void put(u64 gpa, const T& v) { std::memcpy(&ram[gpa], &v, sizeof(T)); }

    bool read_only_page(u64 gpa, u64 bytes) const {
        for (u64 f = gpa >> 12; f <= (gpa + bytes - 1) >> 12; ++f)
            if (read_only.count(f)) return true;
        return false;
    }

    std::vector<u8> ram;
    std::map<u64, bool> read_only;  // frames L0 maps read-only
    std::map<u64, bool> no_exec;    // frames L0 maps non-executable
    int reads = 0;
    int windows = 0;
    std::function<void(u64, usize)> after_read;
    // L0 maps each page on its own: no window spans two pages, reads still do.
    bool pages_apart = false;
    std::function<void(u64, usize)> after_window;  // after every read-only window
    std::deque<std::vector<u8>> looked;            // what read-only windows showed while after_window is set
};

// Frames for the shadow tables: host-physical addresses far from L1's, each a real 4 KiB table.
class FakeFrames final : public TableFrames {
public:
    bool allocate(paddr& frame) override {
        if (fail_after >= 0 && allocated >= fail_after) return false;
        frame = next;
        next += 0x1000;
        tables[frame] = std::make_unique<u64[]>(512);
        ++allocated;
        return true;
    }
    u64* table(paddr frame) override { return tables.at(frame).get(); }
    void free(paddr frame) override { REQUIRE_FREE(tables.erase(frame) == 1); }
    usize live() const { return tables.size(); }

    static void REQUIRE_FREE(bool ok) {
        if (!ok) __builtin_trap();  // freeing a frame twice or one never given out
    }

    std::map<paddr, std::unique_ptr<u64[]>> tables;
    paddr next = 0x900000000;
    int allocated = 0;
    int fail_after = -1;
};

inline constexpr u64 kVmcb12 = 0x10000;
inline constexpr u64 kIopm = 0x20000;   // 3 pages
inline constexpr u64 kMsrpm = 0x24000;  // 2 pages
inline constexpr u64 kNcr3 = 0x100000;  // L1's nested tables live at 0x100000..
inline constexpr u32 kL1Asid = 1;
inline constexpr u32 kL2Asid = 7;

inline L1Offer offer() {
    return L1Offer{true, 40, arch::kEferSce | arch::kEferLme | arch::kEferLma | arch::kEferNxe | arch::kEferSvme,
                   0x3FFFFF & ~(u64{1} << 13) & ~(u64{1} << 15)};  // no VMXE, reserved bit 15
}

// A vmcb12 that passes every check: a 64-bit L2 with nested paging and the usual intercepts.
inline Vmcb valid_vmcb12() {
    Vmcb v{};
    VmcbControl& c = v.control;
    c.intercept_misc1 = vmcb::intercept1::cpuid | vmcb::intercept1::hlt | vmcb::intercept1::ioio_prot |
                        vmcb::intercept1::msr_prot | vmcb::intercept1::intr | vmcb::intercept1::shutdown;
    c.intercept_misc2 = vmcb::intercept2::vmrun | vmcb::intercept2::vmmcall;
    c.intercept_exceptions = 1u << 14;  // #PF
    c.iopm_base_pa = kIopm;
    c.msrpm_base_pa = kMsrpm;
    c.guest_asid = 3;
    c.tsc_offset = 1000;
    c.nested_control = vmcb::kNestedPagingEnable;
    c.nested_cr3 = kNcr3;
    c.int_ctl = arch::int_ctl::v_intr_masking;
    VmcbSave& s = v.save;
    s.efer = arch::kEferSvme | arch::kEferLme | arch::kEferLma | arch::kEferNxe;
    s.cr0 = arch::kCr0Pe | arch::kCr0Pg | (u64{1} << 4);
    s.cr4 = arch::kCr4Pae;
    s.cr3 = 0x200000;
    s.cs.attrib = vmcb::attrib::code_rx | vmcb::attrib::long_mode;
    s.dr6 = 0xFFFF0FF0;
    s.dr7 = 0x400;
    s.rflags = 2;
    s.rip = 0x401000;
    s.rsp = 0x7000;
    s.rax = 0x1234;
    s.g_pat = 0x0007040600070406;
    return v;
}

inline L0Controls l0_controls() {
    L0Controls l0{};
    l0.intercept_cr = vmcb::kInterceptCr4Write;
    l0.intercept_misc1 = vmcb::intercept1::intr | vmcb::intercept1::nmi;
    l0.tsc_offset = 5000;
    l0.l2_asid = kL2Asid;
    l0.l1_asid = kL1Asid;
    l0.iopm_pa = 0x800000000;
    l0.msrpm_pa = 0x800004000;
    l0.l1_npt_root = 0x700000000;
    return l0;
}

// L1's view of one vCPU: its VMCB (vmcb01) and what L0 keeps for it.
struct Machine {
    FakeL1 l1;
    FakeFrames frames;
    L1Offer l1_offer = offer();
    std::vector<u8> l0_iopm = std::vector<u8>(vmcb::kIopmBytes, 0);
    std::vector<u8> l0_msrpm = std::vector<u8>(vmcb::kMsrpmBytes, 0);
    std::vector<u8> merged_iopm = std::vector<u8>(vmcb::kIopmBytes, 0);
    std::vector<u8> merged_msrpm = std::vector<u8>(vmcb::kMsrpmBytes, 0);
    std::unique_ptr<NestedSvmVcpu> vcpu = std::make_unique<NestedSvmVcpu>(frames, 40, 64);
    Vmcb vmcb01{};
    Vmcb vmcb02{};
    u64 mapping_generation = 1;  // the VM's: L0 changes it at every unmap

    Machine() {
        vmcb01.save.efer = arch::kEferSvme | arch::kEferLme | arch::kEferLma;
        vmcb01.save.cr0 = arch::kCr0Pe | arch::kCr0Pg;
        vmcb01.save.rip = 0x5000;
        vmcb01.save.rsp = 0x9000;
        vmcb01.save.rax = kVmcb12;
        vmcb01.save.rflags = 0x202;
        vmcb01.save.fs.base = 0xF5;
        vmcb01.save.star = 0x5A;
        store(valid_vmcb12());
    }
    void store(const Vmcb& v) { l1.put(kVmcb12, v); }
    Vmcb vmcb12() const { return l1.get<Vmcb>(kVmcb12); }

    VmrunOutcome vmrun(u64 vmcb12_pa = kVmcb12) {
        VmrunEnvironment env{l1,
                             l1_offer,
                             l0_controls(),
                             l0_iopm.data(),
                             l0_msrpm.data(),
                             merged_iopm.data(),
                             merged_msrpm.data(),
                             mapping_generation};
        return emulate_vmrun(*vcpu, env, vmcb01.save, vmcb12_pa, vmcb01.save.rip + 3, vmcb02);
    }
};

// L1's nested tables: a 4-level table at kNcr3 built from the next free pages after it.
struct L1Tables {
    FakeL1& l1;
    u64 next = kNcr3 + 0x1000;
    explicit L1Tables(FakeL1& memory) : l1(memory) { std::memset(&l1.ram[kNcr3], 0, 0x1000); }

    u64 table_at(u64 table, u64 index) {
        u64 e = l1.get<u64>(table + index * 8);
        if (e & 1) return e & arch::pte::address_mask;
        u64 fresh = next;
        next += 0x1000;
        std::memset(&l1.ram[fresh], 0, 0x1000);
        l1.put<u64>(table + index * 8, fresh | 0x7);  // present, writable, user
        return fresh;
    }
    // Maps L2-physical `l2` to L1-physical `l1_pa` with `flags` at `level` (1: 4 KiB, 2: 2 MiB).
    u64 map(u64 l2, u64 l1_pa, u64 flags = 0x7, unsigned level = 1) {
        u64 table = kNcr3;
        for (unsigned lv = 4; lv > level; --lv) table = table_at(table, (l2 >> (12 + 9 * (lv - 1))) & 511);
        u64 entry_pa = table + ((l2 >> (12 + 9 * (level - 1))) & 511) * 8;
        l1.put<u64>(entry_pa, l1_pa | flags | (level > 1 ? arch::pte::large : 0));
        return entry_pa;
    }
};

}  // namespace nested_svm_test
