// Nested SVM core, the shadow NPT: composition, refusals, L1's faults, invalidation, teardown.
#include <catch2/catch.hpp>

#include "nested_svm_fixture.hpp"

using namespace nested_svm_test;

namespace {

constexpr u64 kRead = arch::npf_info::user | arch::npf_info::final_address;
constexpr u64 kWrite = kRead | arch::npf_info::write;
constexpr u64 kFetch = kRead | arch::npf_info::fetch;

struct Shadow {
    FakeL1 l1;
    FakeFrames frames;
    L1Tables tables{l1};
    ShadowNpt npt{frames, 40, 64};
    Shadow() { REQUIRE(npt.prepare(kNcr3, true) != 0); }

    // The shadow leaf for `l2`, 0 if none.
    u64 leaf(u64 l2) {
        u64 found = 0;
        npt.for_each_leaf([&](u64 address, u64 entry) {
            if (address == (l2 & ~u64{0xFFF})) found = entry;
        });
        return found;
    }
    usize leaves() {
        usize n = 0;
        npt.for_each_leaf([&](u64, u64) { ++n; });
        return n;
    }
};

}  // namespace

TEST_CASE("nested_svm.shadow_npt_composes_l1_and_l0") {
    Shadow s;
    s.tables.map(0x7000000, 0x250000);
    ShadowResult r = s.npt.fault(s.l1, 0x7000123, kRead);
    REQUIRE(r.outcome == ShadowOutcome::mapped);
    u64 leaf = s.leaf(0x7000000);
    CHECK((leaf & arch::pte::address_mask) == FakeL1::kHostBase + 0x250000);
    CHECK((leaf & arch::pte::present) != 0);
    CHECK((leaf & arch::pte::writable) == 0);  // read first: L1's entry is not dirty yet
    CHECK(s.npt.fault(s.l1, 0x7000123, kWrite).outcome == ShadowOutcome::mapped);
    CHECK((s.leaf(0x7000000) & arch::pte::writable) != 0);
    CHECK(s.leaves() == 1);
}

TEST_CASE("nested_svm.shadow_npt_sets_accessed_and_dirty_in_l1s_tables") {
    Shadow s;
    u64 entry_pa = s.tables.map(0x5000, 0x260000);
    REQUIRE(s.npt.fault(s.l1, 0x5000, kRead).outcome == ShadowOutcome::mapped);
    CHECK((s.l1.get<u64>(entry_pa) & 0x60) == 0x20);  // accessed
    CHECK((s.l1.get<u64>(kNcr3) & 0x20) != 0);
    REQUIRE(s.npt.fault(s.l1, 0x5000, kWrite).outcome == ShadowOutcome::mapped);
    CHECK((s.l1.get<u64>(entry_pa) & 0x60) == 0x60);  // and dirty
}

TEST_CASE("nested_svm.shadow_npt_large_l1_pages_become_4k_entries") {
    Shadow s;
    s.tables.map(0x40000000, 0x200000, 0x7, 2);  // a 2 MiB page
    REQUIRE(s.npt.fault(s.l1, 0x40012345, kWrite).outcome == ShadowOutcome::mapped);
    CHECK((s.leaf(0x40012000) & arch::pte::address_mask) == FakeL1::kHostBase + 0x212000);
    // A 2 MiB leaf with reserved low address bits: L1's fault, with RSVD.
    s.tables.map(0x40200000, 0x202000, 0x7, 2);
    ShadowResult r = s.npt.fault(s.l1, 0x40200000, kRead);
    CHECK(r.outcome == ShadowOutcome::reflect_npf);
    CHECK((r.exit_info_1 & arch::npf_info::reserved) != 0);
}

TEST_CASE("nested_svm.shadow_npt_never_maps_outside_l1") {
    Shadow s;
    s.tables.map(0x1000, FakeL1::kMmioBase);  // L1's MMIO: L0's business (device emulation)
    s.tables.map(0x2000, 0x7FF000000);        // beyond L1's RAM
    s.tables.map(0x3000, 0x270000);           // RAM, but L0 maps it read-only
    s.l1.read_only[0x270] = true;
    ShadowResult mmio = s.npt.fault(s.l1, 0x1000, kRead);
    CHECK(mmio.outcome == ShadowOutcome::l0_fault);
    CHECK(mmio.l1_physical == FakeL1::kMmioBase);
    CHECK(s.npt.fault(s.l1, 0x2000, kRead).outcome == ShadowOutcome::l0_fault);
    ShadowResult ro = s.npt.fault(s.l1, 0x3000, kWrite);
    CHECK(ro.outcome == ShadowOutcome::l0_fault);
    CHECK(ro.l1_physical == 0x270000);
    CHECK(s.leaves() == 0);
    // A read of the read-only page maps it, never writable.
    REQUIRE(s.npt.fault(s.l1, 0x3000, kRead).outcome == ShadowOutcome::mapped);
    CHECK((s.leaf(0x3000) & arch::pte::writable) == 0);
}

TEST_CASE("nested_svm.shadow_npt_l1_faults_become_npf_exits") {
    Shadow s;
    s.tables.map(0x1000, 0x250000, 0x5);                          // read-only for L2
    s.tables.map(0x2000, 0x251000, 0x7 | arch::pte::no_execute);  // no execute
    s.tables.map(0x3000, 0x252000, 0x3);                          // supervisor: refuses nested walks
    s.tables.map(0x4000, 0x253000 | (u64{1} << 45), 0x7);         // reserved address bits
    ShadowResult missing = s.npt.fault(s.l1, 0x9000000, kWrite);
    CHECK(missing.outcome == ShadowOutcome::reflect_npf);
    CHECK(missing.exit_info_1 == (arch::npf_info::user | arch::npf_info::write | arch::npf_info::final_address));
    CHECK(missing.exit_info_2 == 0x9000000);
    ShadowResult ro = s.npt.fault(s.l1, 0x1010, kWrite);
    CHECK(ro.outcome == ShadowOutcome::reflect_npf);
    CHECK(ro.exit_info_1 ==
          (arch::npf_info::present | arch::npf_info::user | arch::npf_info::write | arch::npf_info::final_address));
    CHECK(ro.exit_info_2 == 0x1010);
    ShadowResult nx = s.npt.fault(s.l1, 0x2000, kFetch);
    CHECK(nx.outcome == ShadowOutcome::reflect_npf);
    CHECK((nx.exit_info_1 & arch::npf_info::fetch) != 0);
    CHECK((nx.exit_info_1 & arch::npf_info::present) != 0);
    CHECK(s.npt.fault(s.l1, 0x3000, kRead).outcome == ShadowOutcome::reflect_npf);
    ShadowResult rsvd = s.npt.fault(s.l1, 0x4000, kRead);
    CHECK(rsvd.outcome == ShadowOutcome::reflect_npf);
    CHECK((rsvd.exit_info_1 & arch::npf_info::reserved) != 0);
    // A fault during L2's own page walk keeps that bit for L1.
    ShadowResult walk = s.npt.fault(s.l1, 0x9000000, arch::npf_info::user | arch::npf_info::table_walk);
    CHECK((walk.exit_info_1 & arch::npf_info::table_walk) != 0);
    CHECK((walk.exit_info_1 & arch::npf_info::final_address) == 0);
    CHECK(s.leaves() == 0);
}

TEST_CASE("nested_svm.shadow_npt_l1_tables_outside_ram_stop") {
    Shadow s;
    s.l1.put<u64>(kNcr3, FakeL1::kMmioBase | 0x7);  // L1's PDPT over its MMIO
    CHECK(s.npt.fault(s.l1, 0x1000, kRead).outcome == ShadowOutcome::l1_table_not_ram);
}

TEST_CASE("nested_svm.shadow_npt_invalidation_drops_everything") {
    Shadow s;
    s.tables.map(0x1000, 0x250000);
    s.tables.map(0x200000, 0x251000);
    CHECK(s.npt.take_flush_request());  // a fresh shadow: flush once
    REQUIRE(s.npt.fault(s.l1, 0x1000, kRead).outcome == ShadowOutcome::mapped);
    REQUIRE(s.npt.fault(s.l1, 0x200000, kRead).outcome == ShadowOutcome::mapped);
    CHECK(s.leaves() == 2);
    CHECK_FALSE(s.npt.take_flush_request());
    s.npt.drop_all();  // TLB_CONTROL, INVLPGA, L0 unmapping L1 memory
    CHECK(s.frames.live() == 0);
    CHECK(s.npt.take_flush_request());
    REQUIRE(s.npt.prepare(kNcr3, true) != 0);
    CHECK(s.leaves() == 0);
    // A new N_CR3 (or NXE) is another translation: dropped too.
    REQUIRE(s.npt.fault(s.l1, 0x1000, kRead).outcome == ShadowOutcome::mapped);
    REQUIRE(s.npt.prepare(kNcr3 + 0x1000, true) != 0);
    CHECK(s.leaves() == 0);
    CHECK(s.frames.live() == 1);
}

TEST_CASE("nested_svm.shadow_npt_budget_starts_over") {
    FakeL1 l1;
    FakeFrames frames;
    L1Tables tables{l1};
    ShadowNpt npt{frames, 40, 5};  // root + 3 for a first leaf, one spare
    REQUIRE(npt.prepare(kNcr3, true) != 0);
    for (u64 i = 0; i < 4; ++i) tables.map(i << 30, 0x250000 + (i << 12));  // each needs its own PD + PT
    for (u64 i = 0; i < 4; ++i) {
        INFO(i);
        REQUIRE(npt.fault(l1, i << 30, kRead).outcome == ShadowOutcome::mapped);
        CHECK(npt.tables() <= 5);
    }
    frames.fail_after = frames.allocated;  // L0 out of frames
    tables.map(u64{5} << 30, 0x260000);
    CHECK(npt.fault(l1, u64{5} << 30, kRead).outcome == ShadowOutcome::out_of_memory);
}

TEST_CASE("nested_svm.teardown_frees_every_frame_in_any_state") {
    {  // in guest mode, after faults
        Machine m;
        L1Tables tables{m.l1};
        tables.map(0x1000, 0x250000);
        m.store(valid_vmcb12());
        REQUIRE(m.vmrun().result == VmrunResult::entered);
        REQUIRE(m.vcpu->shadow.fault(m.l1, 0x1000, kRead).outcome == ShadowOutcome::mapped);
        CHECK(m.frames.live() > 1);
        m.vcpu.reset();
        CHECK(m.frames.live() == 0);
    }
    {  // abandoned (vCPU reset) while in guest mode
        Machine m;
        L1Tables tables{m.l1};
        REQUIRE(m.vmrun().result == VmrunResult::entered);
        abandon_guest_mode(*m.vcpu);
        CHECK(m.frames.live() == 0);
        CHECK_FALSE(m.vcpu->guest_mode);
        CHECK(m.vcpu->gif);
    }
    {  // after a failed VMRUN, and never run
        Machine m;
        Vmcb v = valid_vmcb12();
        v.control.guest_asid = 0;
        m.store(v);
        CHECK(m.vmrun().result == VmrunResult::vmexit_invalid);
        m.vcpu.reset();
        CHECK(m.frames.live() == 0);
    }
}

// The CPU walks L1's nested tables in L1's own paging mode: bit 63 of L1's entries means
// no-execute when L1's EFER.NXE is set and is reserved when it is clear, whatever vmcb12's EFER
// (L2's) says. Booted L1s keep NXE on and may run L2s without it, and the reverse.
TEST_CASE("nested_svm.shadow_npt_reads_bit_63_by_l1s_nxe_not_l2s") {
    const u64 kNx = arch::pte::no_execute;
    {  // L1 with NXE, L2 without: a fetch from L1's no-execute page is a rights fault.
        Machine m;
        L1Tables tables{m.l1};
        tables.map(0x1000, 0x250000, 0x7 | kNx);
        m.vmcb01.save.efer |= arch::kEferNxe;
        Vmcb v = valid_vmcb12();
        v.save.efer &= ~arch::kEferNxe;
        m.store(v);
        REQUIRE(m.vmrun().result == VmrunResult::entered);
        ShadowResult fetch = m.vcpu->shadow.fault(m.l1, 0x1000, kFetch);
        CHECK(fetch.outcome == ShadowOutcome::reflect_npf);
        CHECK(fetch.exit_info_1 ==
              (arch::npf_info::present | arch::npf_info::user | arch::npf_info::fetch | arch::npf_info::final_address));
        REQUIRE(m.vcpu->shadow.fault(m.l1, 0x1000, kRead).outcome == ShadowOutcome::mapped);
        u64 leaf = 0;
        m.vcpu->shadow.for_each_leaf([&](u64, u64 e) { leaf = e; });
        CHECK((leaf & arch::pte::no_execute) != 0);
    }
    {  // L1 without NXE, L2 with: the same entry has a reserved bit set.
        Machine m;
        L1Tables tables{m.l1};
        tables.map(0x1000, 0x250000, 0x7 | kNx);
        REQUIRE((m.vmcb01.save.efer & arch::kEferNxe) == 0);
        REQUIRE((valid_vmcb12().save.efer & arch::kEferNxe) != 0);
        REQUIRE(m.vmrun().result == VmrunResult::entered);
        ShadowResult read = m.vcpu->shadow.fault(m.l1, 0x1000, kRead);
        CHECK(read.outcome == ShadowOutcome::reflect_npf);
        CHECK(read.exit_info_1 == (arch::npf_info::present | arch::npf_info::reserved | arch::npf_info::user |
                                   arch::npf_info::final_address));
    }
}

TEST_CASE("nested_svm.shadow_npt_dropped_when_l1_changes_its_nxe") {
    Machine m;
    L1Tables tables{m.l1};
    tables.map(0x1000, 0x250000);
    REQUIRE(m.vmrun().result == VmrunResult::entered);
    REQUIRE(m.vcpu->shadow.fault(m.l1, 0x1000, kRead).outcome == ShadowOutcome::mapped);
    abandon_guest_mode(*m.vcpu);
    REQUIRE(m.vmrun().result == VmrunResult::entered);  // same L1 state: the shadow stays
    REQUIRE(m.vcpu->shadow.fault(m.l1, 0x1000, kRead).outcome == ShadowOutcome::mapped);
    usize leaves = 0;
    m.vcpu->shadow.for_each_leaf([&](u64, u64) { ++leaves; });
    CHECK(leaves == 1);
    m.vmcb01.save.efer |= arch::kEferNxe;  // L1 turned NXE on between its VMRUNs
    REQUIRE(m.vmrun().result == VmrunResult::entered);
    leaves = 0;
    m.vcpu->shadow.for_each_leaf([&](u64, u64) { ++leaves; });
    CHECK(leaves == 0);
}

// root() is what the wiring gives vmcb02 after a fault: the current root, a new one after the
// budget made the shadow start over, and the L1 root and NXE of the last prepare() either way.
TEST_CASE("nested_svm.shadow_npt_root_follows_a_restart") {
    FakeL1 l1;
    FakeFrames frames;
    L1Tables tables{l1};
    ShadowNpt npt{frames, 40, 5};
    paddr first = npt.prepare(kNcr3, false);
    REQUIRE(first != 0);
    CHECK(npt.root() == first);
    tables.map(0x1000, 0x250000, 0x7 | arch::pte::no_execute);
    for (u64 i = 1; i < 4; ++i) tables.map(i << 30, 0x250000);
    for (u64 i = 1; i < 4; ++i) REQUIRE(npt.fault(l1, i << 30, kRead).outcome == ShadowOutcome::mapped);
    paddr now = npt.root();
    CHECK(now != 0);
    CHECK(npt.tables() <= 5);
    // Still without NXE: bit 63 stays reserved after the restart.
    CHECK((npt.fault(l1, 0x1000, kRead).exit_info_1 & arch::npf_info::reserved) != 0);
    npt.drop_all();
    CHECK(frames.live() == 0);
    CHECK(npt.root() != 0);
    CHECK(frames.live() == 1);
}

// A 4-level table translates 48 bits: an address beyond them must not alias the one below (L2's
// VMLOAD / VMSAVE operand goes through translate, where a CPU raises #GP).
TEST_CASE("nested_svm.shadow_npt_translate_refuses_beyond_48_bits") {
    Shadow s;
    s.tables.map(0x5000, 0x250000);
    ShadowResult below = s.npt.translate(s.l1, 0x5000, kRead);
    REQUIRE(below.outcome == ShadowOutcome::mapped);
    CHECK(below.l1_physical == 0x250000);
    for (u64 high : {u64{1} << 48, u64{1} << 52, u64{1} << 63}) {
        ShadowResult beyond = s.npt.translate(s.l1, high | 0x5000, kRead);
        CHECK(beyond.outcome == ShadowOutcome::reflect_npf);
        CHECK(beyond.exit_info_2 == (high | 0x5000));
        CHECK(s.npt.fault(s.l1, high | 0x5000, kRead).outcome == ShadowOutcome::reflect_npf);
    }
    CHECK(s.leaves() == 0);
}
