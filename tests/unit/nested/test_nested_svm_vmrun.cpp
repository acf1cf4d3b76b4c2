// Nested SVM core, VMRUN: the snapshot, every consistency check and VMEXIT_INVALID.
#include <catch2/catch.hpp>

#include <algorithm>
#include <vector>

#include "nested_svm_fixture.hpp"

using namespace nested_svm_test;

namespace {

struct CheckCase {
    CheckFailure expected;
    void (*mutate)(Vmcb&, L1Offer&);
};

const CheckCase kCheckCases[] = {
    {CheckFailure::vmrun_not_intercepted,
     [](Vmcb& v, L1Offer&) { v.control.intercept_misc2 &= ~vmcb::intercept2::vmrun; }},
    {CheckFailure::asid_zero, [](Vmcb& v, L1Offer&) { v.control.guest_asid = 0; }},
    {CheckFailure::efer_svme_clear, [](Vmcb& v, L1Offer&) { v.save.efer &= ~arch::kEferSvme; }},
    {CheckFailure::cr0_nw_without_cd, [](Vmcb& v, L1Offer&) { v.save.cr0 |= arch::kCr0Nw; }},
    {CheckFailure::cr0_high_bits, [](Vmcb& v, L1Offer&) { v.save.cr0 |= u64{1} << 32; }},
    {CheckFailure::cr3_mbz, [](Vmcb& v, L1Offer&) { v.save.cr3 |= u64{1} << 45; }},
    {CheckFailure::cr4_mbz, [](Vmcb& v, L1Offer&) { v.save.cr4 |= u64{1} << 13; }},  // VMXE on AMD
    {CheckFailure::dr6_high_bits, [](Vmcb& v, L1Offer&) { v.save.dr6 |= u64{1} << 40; }},
    {CheckFailure::dr7_high_bits, [](Vmcb& v, L1Offer&) { v.save.dr7 |= u64{1} << 63; }},
    {CheckFailure::efer_mbz, [](Vmcb& v, L1Offer&) { v.save.efer |= u64{1} << 9; }},
    {CheckFailure::efer_mbz, [](Vmcb&, L1Offer& o) { o.efer_allowed &= ~(arch::kEferLme | arch::kEferLma); }},
    {CheckFailure::long_mode_without_pae, [](Vmcb& v, L1Offer&) { v.save.cr4 &= ~arch::kCr4Pae; }},
    {CheckFailure::long_mode_without_pe, [](Vmcb& v, L1Offer&) { v.save.cr0 &= ~arch::kCr0Pe; }},
    {CheckFailure::long_mode_cs_l_and_d, [](Vmcb& v, L1Offer&) { v.save.cs.attrib |= vmcb::attrib::default32; }},
    {CheckFailure::event_inject_type,
     [](Vmcb& v, L1Offer&) { v.control.event_inject = arch::event::valid | (1u << 8); }},
    {CheckFailure::event_inject_type,
     [](Vmcb& v, L1Offer&) { v.control.event_inject = arch::event::valid | (7u << 8); }},
    {CheckFailure::event_inject_vector,
     [](Vmcb& v, L1Offer&) { v.control.event_inject = arch::event::valid | (3u << 8) | 2; }},
    {CheckFailure::event_inject_vector,
     [](Vmcb& v, L1Offer&) { v.control.event_inject = arch::event::valid | (3u << 8) | 9; }},
    {CheckFailure::event_inject_vector,
     [](Vmcb& v, L1Offer&) { v.control.event_inject = arch::event::valid | (3u << 8) | 0x40; }},
    {CheckFailure::msrpm_outside_l1_ram, [](Vmcb& v, L1Offer&) { v.control.msrpm_base_pa = FakeL1::kMmioBase; }},
    {CheckFailure::msrpm_outside_l1_ram, [](Vmcb& v, L1Offer&) { v.control.msrpm_base_pa = (4u << 20) - 0x1000; }},
    {CheckFailure::iopm_outside_l1_ram, [](Vmcb& v, L1Offer&) { v.control.iopm_base_pa = FakeL1::kMmioBase - 0x1000; }},
    {CheckFailure::iopm_outside_l1_ram, [](Vmcb& v, L1Offer&) { v.control.iopm_base_pa = ~u64{0} & ~u64{0xFFF}; }},
    {CheckFailure::nested_paging_not_offered, [](Vmcb&, L1Offer& o) { o.nested_paging = false; }},
    {CheckFailure::nested_cr3_mbz, [](Vmcb& v, L1Offer&) { v.control.nested_cr3 |= u64{1} << 50; }},
    {CheckFailure::nested_cr3_outside_l1_ram, [](Vmcb& v, L1Offer&) { v.control.nested_cr3 = FakeL1::kMmioBase; }},
    {CheckFailure::gpat_invalid, [](Vmcb& v, L1Offer&) { v.save.g_pat = 0x0007040600070402; }},
};

}  // namespace

TEST_CASE("nested_svm.valid_vmcb12_enters_guest_mode") {
    Machine m;
    VmrunOutcome out = m.vmrun();
    CHECK(out.result == VmrunResult::entered);
    CHECK(out.failure == CheckFailure::none);
    CHECK(m.vcpu->guest_mode);
    CHECK(m.vcpu->gif);
    CHECK(m.vmcb01.save.rip == 0x5003);   // L1 resumes after its VMRUN at the #VMEXIT
    CHECK(m.vmcb01.save.rax == kVmcb12);  // the rest of L1's state stays as VMRUN found it
    CHECK(m.vmcb02.save.rip == 0x401000);
}

TEST_CASE("nested_svm.each_check_failing_alone_gives_vmexit_invalid") {
    for (const CheckCase& c : kCheckCases) {
        INFO("check: " << check_failure_name(c.expected));
        Machine m;
        Vmcb v = valid_vmcb12();
        c.mutate(v, m.l1_offer);
        m.store(v);
        VmrunOutcome out = m.vmrun();
        CHECK(out.result == VmrunResult::vmexit_invalid);
        CHECK(out.failure == c.expected);
        // vmcb12 says VMEXIT_INVALID and nothing else of it changed.
        Vmcb after = m.vmcb12();
        CHECK(after.control.exit_code == vmcb::exit_code::invalid);
        CHECK(after.control.exit_info_1 == 0);
        CHECK(after.control.exit_info_2 == 0);
        after.control.exit_code = v.control.exit_code;
        CHECK(std::memcmp(&after, &v, sizeof(v)) == 0);
        // A #VMEXIT all the same: GIF clear, L1 after its VMRUN, no guest mode.
        CHECK_FALSE(m.vcpu->gif);
        CHECK_FALSE(m.vcpu->guest_mode);
        CHECK(m.vmcb01.save.rip == 0x5003);
    }
}

TEST_CASE("nested_svm.every_check_has_a_case_and_a_name") {
    for (usize i = 1; i < kCheckFailureCount; ++i) {
        auto failure = static_cast<CheckFailure>(i);
        bool covered = false;
        for (const CheckCase& c : kCheckCases) covered |= c.expected == failure;
        INFO(check_failure_name(failure));
        CHECK(covered);
        CHECK(std::string(check_failure_name(failure)) != "unknown");
    }
}

TEST_CASE("nested_svm.maps_not_checked_when_not_used_but_width_still_is") {
    Machine m;
    Vmcb v = valid_vmcb12();
    v.control.intercept_misc1 &= ~(vmcb::intercept1::ioio_prot | vmcb::intercept1::msr_prot);
    v.control.iopm_base_pa = FakeL1::kMmioBase;  // never read: allowed
    m.store(v);
    CHECK(m.vmrun().result == VmrunResult::entered);
    Machine m2;
    v.control.msrpm_base_pa = u64{1} << 45;  // beyond the physical width: the CPU refuses it anyway
    m2.store(v);
    CHECK(m2.vmrun().failure == CheckFailure::msrpm_outside_l1_ram);
}

TEST_CASE("nested_svm.valid_event_injections_pass") {
    const u64 events[] = {arch::event::valid | 0x20,                                            // INTR
                          arch::event::valid | (2u << 8) | 2,                                   // NMI
                          arch::event::valid | (3u << 8) | 14 | arch::event::error_code_valid,  // #PF
                          arch::event::valid | (4u << 8) | 0x80};                               // INT n
    for (u64 e : events) {
        Machine m;
        Vmcb v = valid_vmcb12();
        v.control.event_inject = e | (u64{0x3FFFF} << 12);  // reserved bits: ignored, not passed on
        m.store(v);
        CHECK(m.vmrun().result == VmrunResult::entered);
        CHECK(m.vmcb02.control.event_inject == e);
    }
}

TEST_CASE("nested_svm.vmrun_rax_unaligned_or_outside_l1_gps") {
    Machine m;
    CHECK(m.vmrun(kVmcb12 + 8).result == VmrunResult::inject_gp);
    CHECK(m.vmrun(FakeL1::kMmioBase).result == VmrunResult::inject_gp);
    CHECK(m.vmrun(u64{1} << 40).result == VmrunResult::inject_gp);
    CHECK(m.vcpu->gif);
    CHECK_FALSE(m.vcpu->guest_mode);
}

TEST_CASE("nested_svm.snapshot_taken_before_check_is_the_only_vmcb12_used") {
    Machine m;
    int vmcb12_reads = 0;
    std::vector<int> times_read(sizeof(Vmcb), 0);
    // Every look at vmcb12, copied or seen through a window.
    m.l1.after_read = m.l1.after_window = [&](u64 gpa, usize bytes) {
        if (gpa + bytes <= kVmcb12 || gpa >= kVmcb12 + sizeof(Vmcb)) return;
        ++vmcb12_reads;
        for (u64 a = gpa; a < gpa + bytes; ++a)
            if (a >= kVmcb12 && a < kVmcb12 + sizeof(Vmcb)) ++times_read[a - kVmcb12];
        // L1 (another vCPU) rewrites what was just copied, right after the copy: none of it may
        // count (the snapshot may be taken in pieces; each piece is used as copied).
        Vmcb evil = m.vmcb12();
        evil.control.intercept_misc2 = 0;
        evil.control.intercept_misc1 = 0;
        evil.control.guest_asid = 0;
        evil.control.int_ctl = 0xFFFFFFFF;
        evil.control.nested_cr3 = FakeL1::kMmioBase;
        evil.control.msrpm_base_pa = FakeL1::kMmioBase;
        evil.save.efer = 0;
        Vmcb now = m.vmcb12();
        const auto* from = reinterpret_cast<const u8*>(&evil);
        auto* to = reinterpret_cast<u8*>(&now);
        for (u64 a = gpa; a < gpa + bytes; ++a)
            if (a >= kVmcb12 && a < kVmcb12 + sizeof(Vmcb)) to[a - kVmcb12] = from[a - kVmcb12];
        m.store(now);
    };
    VmrunOutcome out = m.vmrun();
    CHECK(vmcb12_reads >= 1);
    CHECK(*std::max_element(times_read.begin(), times_read.end()) == 1);  // no byte of vmcb12 read twice
    REQUIRE(out.result == VmrunResult::entered);
    CHECK((m.vmcb02.control.intercept_misc2 & vmcb::intercept2::vmrun) != 0);
    CHECK((m.vmcb02.control.int_ctl & arch::int_ctl::avic_enable) == 0);
    CHECK(m.vmcb02.control.guest_asid == kL2Asid);
    CHECK(m.vmcb02.save.efer == valid_vmcb12().save.efer);
    CHECK(m.vcpu->snapshot.control.guest_asid == 3);
}

TEST_CASE("nested_svm.cpu_refusing_vmcb02_gives_l1_vmexit_invalid") {
    Machine m;
    REQUIRE(m.vmrun().result == VmrunResult::entered);
    CHECK(route_l2_exit(m.vcpu->snapshot, L2Exit{vmcb::exit_code::invalid, 0, 0, 0, 0}, m.l1) == Route::vmexit_invalid);
    CHECK(route_l2_exit(m.vcpu->snapshot, L2Exit{vmcb::exit_code::invalid32, 0, 0, 0, 0}, m.l1) ==
          Route::vmexit_invalid);
}
