// Nested SVM core, vmcb02: what L1 can and cannot put into the VMCB that really runs L2.
#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "nested_svm_fixture.hpp"

using namespace nested_svm_test;

namespace {

Vmcb entered(Machine& m, const Vmcb& v) {
    m.store(v);
    REQUIRE(m.vmrun().result == VmrunResult::entered);
    return m.vmcb02;
}

}  // namespace

TEST_CASE("nested_svm.merge_keeps_mandatory_intercepts") {
    Machine m;
    Vmcb v = valid_vmcb12();
    v.control.intercept_misc1 = 0;
    v.control.intercept_misc2 = vmcb::intercept2::vmrun;  // the least L1 can ask for
    v.control.intercept_exceptions = 0;
    Vmcb out = entered(m, v);
    CHECK((out.control.intercept_misc1 & mandatory::misc1) == mandatory::misc1);
    CHECK((out.control.intercept_misc2 & mandatory::misc2) == mandatory::misc2);
    CHECK((out.control.intercept_misc2 & vmcb::intercept2::vmload) != 0);
    CHECK((out.control.intercept_misc2 & vmcb::intercept2::vmsave) != 0);
    CHECK((out.control.intercept_exceptions & mandatory::exceptions) == mandatory::exceptions);
    CHECK((out.control.intercept_cr & vmcb::kInterceptCr4Write) != 0);  // L0's own
}

TEST_CASE("nested_svm.merge_adds_l1_intercepts") {
    Machine m;
    Vmcb v = valid_vmcb12();
    v.control.intercept_cr = 0x00110011;
    v.control.intercept_dr = 0xFF;
    v.control.intercept_exceptions = 0xFFFFFFFF;
    v.control.intercept_misc3 = 0x1F;
    Vmcb out = entered(m, v);
    CHECK((out.control.intercept_cr & 0x00110011) == 0x00110011);
    CHECK(out.control.intercept_dr == 0xFF);
    CHECK(out.control.intercept_exceptions == (0xFFFFFFFF & ~(1u << arch::kVectorMc)));  // #MC is L0's
    CHECK(out.control.intercept_misc3 == 0x1F);
    CHECK((out.control.intercept_misc1 & vmcb::intercept1::cpuid) != 0);
}

TEST_CASE("nested_svm.merge_takes_only_allow_listed_int_ctl_bits") {
    Machine m;
    Vmcb v = valid_vmcb12();
    v.control.int_ctl = 0xFFFFFFFF;  // AVIC, x2AVIC, vGIF, vNMI, everything
    v.control.int_vector = 0xFFFFFFFF;
    Vmcb out = entered(m, v);
    CHECK((out.control.int_ctl & ~kIntCtlFromL1) == 0);
    CHECK((out.control.int_ctl & arch::int_ctl::avic_enable) == 0);
    CHECK((out.control.int_ctl & arch::int_ctl::v_gif_enable) == 0);
    CHECK((out.control.int_ctl & arch::int_ctl::v_nmi_enable) == 0);
    CHECK((out.control.int_ctl & kIntCtlFromL1) == kIntCtlFromL1);
    CHECK(out.control.int_vector == 0xFF);
    // L1 without V_INTR_MASKING: vmcb02 still masks with the host's IF (L0's physical interrupts).
    Machine m2;
    v.control.int_ctl = arch::int_ctl::v_irq | 0x5;
    Vmcb out2 = entered(m2, v);
    CHECK(out2.control.int_ctl == (arch::int_ctl::v_irq | 0x5 | arch::int_ctl::v_intr_masking));
}

TEST_CASE("nested_svm.merge_never_takes_l1_virt_ext_avic_or_sev_fields") {
    Machine m;
    Vmcb v = valid_vmcb12();
    v.control.virt_ext = ~u64{0};  // virtual VMLOAD/VMSAVE, LBR virtualization (CVE-2021-3656)
    v.control.avic_apic_bar = ~u64{0};
    v.control.avic_backing_page = ~u64{0};
    v.control.avic_logical_table = ~u64{0};
    v.control.avic_physical_table = ~u64{0};
    v.control.ghcb_pa = ~u64{0};
    v.control.vmsa_pa = ~u64{0};
    v.control.nested_control = ~u64{0};  // SEV, SEV-ES bits on top of NP
    v.control.clean_bits = ~0u;
    v.control.next_rip = 0x1234;
    v.save.dbgctl = ~u64{0};
    v.save.s_cet = ~u64{0};
    Vmcb out = entered(m, v);
    CHECK(out.control.virt_ext == 0);
    CHECK(out.control.avic_apic_bar == 0);
    CHECK(out.control.avic_backing_page == 0);
    CHECK(out.control.avic_logical_table == 0);
    CHECK(out.control.avic_physical_table == 0);
    CHECK(out.control.ghcb_pa == 0);
    CHECK(out.control.vmsa_pa == 0);
    CHECK(out.control.nested_control == vmcb::kNestedPagingEnable);
    CHECK(out.control.clean_bits == 0);
    CHECK(out.control.next_rip == 0);
    CHECK(out.save.dbgctl == 0);
    CHECK(out.save.s_cet == 0);
}

TEST_CASE("nested_svm.merge_asid_is_l0s_choice") {
    for (u32 l1_value : {1u, 3u, kL2Asid, 0xFFFFFFFFu}) {
        Machine m;
        Vmcb v = valid_vmcb12();
        v.control.guest_asid = l1_value;
        Vmcb out = entered(m, v);
        CHECK(out.control.guest_asid == kL2Asid);
        CHECK(out.control.guest_asid != 0);
        CHECK(out.control.guest_asid != kL1Asid);
    }
    // L0 handing over ASID 0 or L1's own is refused, never run.
    Machine m;
    L0Controls l0 = l0_controls();
    Vmcb out{};
    l0.l2_asid = 0;
    CHECK(build_vmcb02(valid_vmcb12(), m.vmcb01.save, l0, out).error() == MergeError::bad_asid);
    l0.l2_asid = kL1Asid;
    CHECK(build_vmcb02(valid_vmcb12(), m.vmcb01.save, l0, out).error() == MergeError::bad_asid);
}

TEST_CASE("nested_svm.merge_tsc_offsets_compose") {
    Machine m;
    Vmcb v = valid_vmcb12();
    v.control.tsc_offset = static_cast<u64>(-7000);
    Vmcb out = entered(m, v);
    CHECK(out.control.tsc_offset == static_cast<u64>(5000 - 7000));
}

TEST_CASE("nested_svm.merge_nested_cr3_comes_from_l0") {
    Machine m;
    Vmcb out = entered(m, valid_vmcb12());
    CHECK(out.control.nested_cr3 != kNcr3);
    CHECK(m.frames.tables.count(out.control.nested_cr3) == 1);  // the shadow root
    // Without nested paging in L1, L2 runs on L0's tables of L1.
    Machine m2;
    Vmcb v = valid_vmcb12();
    v.control.nested_control = 0;
    Vmcb out2 = entered(m2, v);
    CHECK(out2.control.nested_control == vmcb::kNestedPagingEnable);
    CHECK(out2.control.nested_cr3 == l0_controls().l1_npt_root);
    CHECK(out2.save.g_pat == m2.vmcb01.save.g_pat);
    CHECK(m2.frames.live() == 0);
}

// VMRUN does not load FS or STAR: VMLOAD did, into the CPU, whose state L2 runs with (the backend
// loads vmcb01's for L2 too). vmcb12's never get into vmcb02, and L1's CPU keeps its own.
TEST_CASE("nested_svm.merge_leaves_the_vmload_state_to_l1s_cpu") {
    Machine m;
    Vmcb v = valid_vmcb12();
    v.save.fs.base = 0xBAD;
    v.save.star = 0xBAD;
    Vmcb out = entered(m, v);
    CHECK(out.save.fs.base != 0xBAD);
    CHECK(out.save.star != 0xBAD);
    CHECK(m.vmcb01.save.fs.base == 0xF5);
    CHECK(m.vmcb01.save.star == 0x5A);
}

TEST_CASE("nested_svm.merge_permission_maps_or_l0_and_l1") {
    Machine m;
    m.l0_iopm[0x60 / 8] = 1u << (0x60 % 8);         // L0 wants port 0x60
    m.l1.ram[kIopm + 0x70 / 8] = 1u << (0x70 % 8);  // L1 wants port 0x70
    m.l0_msrpm[0x10] = 0x3;
    m.l1.ram[kMsrpm + 0x800] = 0xC;
    entered(m, valid_vmcb12());
    CHECK(m.merged_iopm[0x60 / 8] == 1u << (0x60 % 8));
    CHECK(m.merged_iopm[0x70 / 8] == 1u << (0x70 % 8));
    CHECK(m.merged_msrpm[0x10] == 0x3);
    CHECK(m.merged_msrpm[0x800] == 0xC);
    // L1 not using its IOPM: the merge is L0's map alone.
    Machine m2;
    m2.l1.ram[kIopm + 0x70 / 8] = 0xFF;
    Vmcb v = valid_vmcb12();
    v.control.intercept_misc1 &= ~vmcb::intercept1::ioio_prot;
    entered(m2, v);
    CHECK(m2.merged_iopm[0x70 / 8] == 0);
}

// L1's maps across two pieces of its memory (no window spans them) are read run by run, with the
// same merge.
TEST_CASE("nested_svm.merge_reads_l1_maps_across_pieces_of_its_memory") {
    Machine m;
    m.l1.pages_apart = true;
    m.l0_iopm[0x60 / 8] = 1u << (0x60 % 8);
    m.l1.ram[kIopm + 0x2000 + 0x70 / 8] = 1u << (0x70 % 8);  // a byte of the map's third page
    m.l1.ram[kMsrpm + 0x800] = 0xC;
    int reads = m.l1.reads;
    entered(m, valid_vmcb12());
    CHECK(m.l1.reads > reads);
    CHECK(m.merged_iopm[0x60 / 8] == 1u << (0x60 % 8));
    CHECK(m.merged_iopm[0x2000 + 0x70 / 8] == 1u << (0x70 % 8));
    CHECK(m.merged_msrpm[0x800] == 0xC);
}

// L0 intercepting a whole 64-bit word of a map makes L1's word irrelevant: a VMRUN reads L1's maps
// only where L0 lets something through (as Nestor's L0 intercepts everything: not at all), and
// still sees every change L1 makes there between VMRUNs.
TEST_CASE("nested_svm.merge_reads_l1_maps_only_where_l0_lets_through") {
    Machine m;
    std::fill(m.l0_iopm.begin(), m.l0_iopm.end(), 0xFF);
    std::fill(m.l0_msrpm.begin(), m.l0_msrpm.end(), 0xFF);
    m.l0_iopm[0x60 / 8] = 0xFE;                    // L0 lets port 0x60 through (bit 0 of byte 12, in word 1)
    std::vector<std::pair<u64, usize>> map_reads;  // read, or seen through a window
    m.l1.after_read = m.l1.after_window = [&](u64 gpa, usize bytes) {
        // The checks' look at where a whole map lies reads nothing of it.
        if (bytes == vmcb::kIopmBytes || bytes == vmcb::kMsrpmBytes) return;
        if (gpa >= kIopm && gpa < kMsrpm + vmcb::kMsrpmBytes) map_reads.emplace_back(gpa, bytes);
    };
    entered(m, valid_vmcb12());  // L1's maps are zero: it intercepts nothing
    REQUIRE(map_reads.size() == 1);
    CHECK(map_reads[0] == std::pair<u64, usize>{kIopm + 8, 8});
    CHECK(m.merged_iopm[0x60 / 8] == 0xFE);
    CHECK(m.merged_iopm[0x70 / 8] == 0xFF);  // L1 lets 0x70 through, L0 does not
    CHECK(std::all_of(m.merged_msrpm.begin(), m.merged_msrpm.end(), [](u8 b) { return b == 0xFF; }));
    // L1 now intercepts port 0x60: the next VMRUN merges it.
    m.l1.ram[kIopm + 0x60 / 8] = 0x01;
    map_reads.clear();
    entered(m, valid_vmcb12());
    CHECK(map_reads.size() == 1);
    CHECK(m.merged_iopm[0x60 / 8] == 0xFF);
    // L1 stops using its IOPM: the merge is L0's map again, without reading L1's.
    Vmcb v = valid_vmcb12();
    v.control.intercept_misc1 &= ~vmcb::intercept1::ioio_prot;
    map_reads.clear();
    entered(m, v);
    CHECK(map_reads.empty());
    CHECK(m.merged_iopm[0x60 / 8] == 0xFE);
}

// vmcb02 is rebuilt field by field, not zeroed whole: what the last run left in it (the CPU's exit
// fields, state only L0 could have set) must not survive into the next VMRUN.
TEST_CASE("nested_svm.vmrun_clears_what_the_last_run_left_in_vmcb02") {
    Machine m;
    Vmcb first = entered(m, valid_vmcb12());
    VmcbControl& c = m.vmcb02.control;
    c.exit_code = 0x72;
    c.exit_info_1 = c.exit_info_2 = c.exit_int_info = c.next_rip = 0x1234;
    c.bytes_fetched = 3;
    c.guest_instruction_bytes[14] = 0x90;
    c.avic_apic_bar = c.ghcb_pa = c.virt_ext = c.avic_backing_page = c.vmsa_pa = 0x1000;
    c.avic_logical_table = c.avic_physical_table = 0x2000;
    c.clean_bits = 0xFFFFFFFF;
    VmcbSave& s = m.vmcb02.save;
    s.s_cet = s.ssp = s.isst_addr = s.dbgctl = s.br_from = s.br_to = s.last_excp_from = s.last_excp_to = 0x5;
    Vmcb second = entered(m, valid_vmcb12());
    CHECK(second.control.tlb_control == 0);  // the first run flushed L2's ASID, the second need not
    second.control.tlb_control = first.control.tlb_control;
    CHECK(std::memcmp(&second, &first, sizeof(Vmcb)) == 0);
}

TEST_CASE("nested_svm.tlb_flush_on_first_run_asid_change_or_l1_request") {
    Machine m;
    Vmcb v = valid_vmcb12();
    CHECK(entered(m, v).control.tlb_control == vmcb::kTlbControlFlushAll);  // first run
    CHECK(entered(m, v).control.tlb_control == vmcb::kTlbControlNothing);   // same L2 again
    v.control.guest_asid = 4;  // L1 switched to another L2: L0's single L2 ASID must forget
    CHECK(entered(m, v).control.tlb_control == vmcb::kTlbControlFlushAll);
    CHECK(entered(m, v).control.tlb_control == vmcb::kTlbControlNothing);
    v.control.tlb_control = 3;  // flush this guest's entries: L0 drops the shadow and flushes
    CHECK(entered(m, v).control.tlb_control == vmcb::kTlbControlFlushAll);
}
