// Nested SVM core, while L2 runs: which exits are L1's, the #VMEXIT written into vmcb12 and L1's
// state restored, GIF, and L1's interrupts.
#include <catch2/catch.hpp>

#include "nested_svm_fixture.hpp"

using namespace nested_svm_test;

namespace {

L2Exit exit_of(u64 code, u64 info_1 = 0, u64 info_2 = 0, u32 msr = 0) { return L2Exit{code, info_1, info_2, 0, msr}; }

struct Running : Machine {
    explicit Running(const Vmcb& v = valid_vmcb12()) {
        store(v);
        REQUIRE(vmrun().result == VmrunResult::entered);
    }
    Route route(const L2Exit& e) { return route_l2_exit(vcpu->snapshot, e, l1); }
};

u64 io_info(u16 port, unsigned size, bool in) {
    u64 size_bit = size == 4 ? vmcb::ioio::size32 : size == 2 ? vmcb::ioio::size16 : vmcb::ioio::size8;
    return (u64{port} << vmcb::ioio::port_shift) | size_bit | (in ? vmcb::ioio::type_in : 0);
}

}  // namespace

TEST_CASE("nested_svm.reflect_follows_l1_intercepts") {
    Running r;
    CHECK(r.route(exit_of(vmcb::exit_code::cpuid)) == Route::reflect);
    CHECK(r.route(exit_of(vmcb::exit_code::hlt)) == Route::reflect);
    CHECK(r.route(exit_of(vmcb::exit_code::exception_base + 14, 2, 0xDEAD000)) == Route::reflect);  // #PF
    CHECK(r.route(exit_of(vmcb::exit_code::vmrun)) == Route::reflect);
    CHECK(r.route(exit_of(vmcb::exit_code::shutdown)) == Route::reflect);
    // Not intercepted by L1: L0's, judged in L1's terms.
    CHECK(r.route(exit_of(vmcb::exit_code::invd)) == Route::l0);
    CHECK(r.route(exit_of(vmcb::exit_code::cr4_write)) == Route::l0);
    CHECK(r.route(exit_of(vmcb::exit_code::exception_base + 13, 0)) == Route::l0);
}

TEST_CASE("nested_svm.l0_intercepts_l1_does_not_want_stay_with_l0") {
    Vmcb v = valid_vmcb12();
    v.control.intercept_misc1 = 0;
    v.control.intercept_misc2 = vmcb::intercept2::vmrun;
    v.control.intercept_exceptions = 0;
    Running r(v);
    CHECK(r.route(exit_of(vmcb::exit_code::cpuid)) == Route::l0);
    CHECK(r.route(exit_of(vmcb::exit_code::hlt)) == Route::l0);
    CHECK(r.route(exit_of(vmcb::exit_code::shutdown)) == Route::l0);
    CHECK(r.route(exit_of(vmcb::exit_code::ioio, io_info(0x60, 1, true))) == Route::l0);
    CHECK(r.route(exit_of(vmcb::exit_code::msr, 0, 0, 0x10)) == Route::l0);
    // L2 must not reach L0's hypercalls, nor SKINIT: #UD, as on the CPU.
    CHECK(r.route(exit_of(vmcb::exit_code::vmmcall)) == Route::inject_ud);
    CHECK(r.route(exit_of(vmcb::exit_code::skinit)) == Route::inject_ud);
    for (u64 code : {vmcb::exit_code::vmload, vmcb::exit_code::vmsave, vmcb::exit_code::stgi, vmcb::exit_code::clgi,
                     vmcb::exit_code::invlpga})
        CHECK(r.route(exit_of(code)) == Route::emulate_for_l2);
    CHECK(r.route(exit_of(vmcb::exit_code::exception_base + arch::kVectorAc, 0)) == Route::reinject_exception);
    CHECK(r.route(exit_of(vmcb::exit_code::exception_base + arch::kVectorDb)) == Route::reinject_exception);
}

// On the CPU, VMMCALL or SKINIT without their intercept raise #UD in L2, which L1 may intercept:
// then the #UD is L1's, never injected into L2 behind L1's back.
TEST_CASE("nested_svm.l2_ud_is_l1s_when_l1_intercepts_ud") {
    Vmcb v = valid_vmcb12();
    v.control.intercept_misc2 = vmcb::intercept2::vmrun;
    v.control.intercept_exceptions = 1u << 6;
    Running r(v);
    CHECK(r.route(exit_of(vmcb::exit_code::vmmcall)) == Route::reflect_as_ud);
    CHECK(r.route(exit_of(vmcb::exit_code::skinit)) == Route::reflect_as_ud);
    CHECK(kExitUd == vmcb::exit_code::exception_base + 6);
    CHECK(r.route(exit_of(kExitUd)) == Route::reflect);  // L2's own ud2
    // The instruction's own intercept comes first.
    v.control.intercept_misc2 |= vmcb::intercept2::vmmcall;
    Running both(v);
    CHECK(both.route(exit_of(vmcb::exit_code::vmmcall)) == Route::reflect);
}

TEST_CASE("nested_svm.physical_events_are_never_reflected") {
    Vmcb v = valid_vmcb12();
    v.control.intercept_misc1 |=
        vmcb::intercept1::intr | vmcb::intercept1::nmi | vmcb::intercept1::smi | vmcb::intercept1::init;
    Running intercepting(v);
    v.control.intercept_misc1 &= ~(vmcb::intercept1::intr | vmcb::intercept1::nmi);
    Running not_intercepting(v);
    for (Running* r : {&intercepting, &not_intercepting})
        for (u64 code : {vmcb::exit_code::intr, vmcb::exit_code::nmi, vmcb::exit_code::smi, vmcb::exit_code::init})
            CHECK(r->route(exit_of(code)) == Route::l0);
}

// A machine check is the host's: L1 intercepting #MC changes nothing, L2's #MC is L0's (as KVM
// keeps it), and L1's intercept does not reach vmcb02 (L0 intercepts #MC for itself if it wants).
TEST_CASE("nested_svm.machine_check_is_never_l1s") {
    constexpr u64 kExitMc = vmcb::exit_code::exception_base + arch::kVectorMc;
    Vmcb v = valid_vmcb12();
    v.control.intercept_exceptions = 0xFFFFFFFF;  // every vector, #MC among them
    Running r(v);
    CHECK(r.route(exit_of(kExitMc)) == Route::l0);
    CHECK_FALSE(l1_intercepts(r.vcpu->snapshot, kExitMc));
    CHECK((r.vmcb02.control.intercept_exceptions & (1u << arch::kVectorMc)) == 0);
    // The other vectors stay L1's.
    CHECK(r.route(exit_of(vmcb::exit_code::exception_base + 14, 2, 0xDEAD000)) == Route::reflect);
    CHECK(r.route(exit_of(vmcb::exit_code::exception_base + 19)) == Route::reflect);
    CHECK(r.route(exit_of(vmcb::exit_code::exception_base + 17, 0)) == Route::reflect);
}

TEST_CASE("nested_svm.io_exits_judged_by_l1s_iopm") {
    Running r;
    r.l1.ram[kIopm + 0x70 / 8] = 1u << (0x70 % 8);
    r.l1.ram[kIopm + 0x2000] = 0x1;  // port 0x10000: reached by a wide access at 0xFFFF
    CHECK(r.route(exit_of(vmcb::exit_code::ioio, io_info(0x70, 1, false))) == Route::reflect);
    CHECK(r.route(exit_of(vmcb::exit_code::ioio, io_info(0x71, 1, true))) == Route::l0);
    CHECK(r.route(exit_of(vmcb::exit_code::ioio, io_info(0x6F, 2, true))) == Route::reflect);  // 0x6F-0x70
    CHECK(r.route(exit_of(vmcb::exit_code::ioio, io_info(0x6C, 4, true))) == Route::l0);       // 0x6C-0x6F
    CHECK(r.route(exit_of(vmcb::exit_code::ioio, io_info(0xFFFF, 2, true))) == Route::reflect);
    CHECK(r.route(exit_of(vmcb::exit_code::ioio, io_info(0xFFFE, 2, true))) == Route::l0);
    // L0 intercepting a port L1 lets L2 use does not make it L1's.
    r.l0_iopm[0x80 / 8] = 0xFF;
    CHECK(r.route(exit_of(vmcb::exit_code::ioio, io_info(0x80, 1, false))) == Route::l0);
}

TEST_CASE("nested_svm.msr_exits_judged_by_l1s_msrpm") {
    Running r;
    constexpr u32 kEfer = nestor::x86_regs::kMsrEfer;
    constexpr u32 kPat = 0x277;
    r.l1.ram[kMsrpm + 0x800 + (kEfer - 0xC0000000) / 4] = u8(0x2 << ((kEfer % 4) * 2));  // EFER writes
    r.l1.ram[kMsrpm + kPat / 4] = u8(0x1 << ((kPat % 4) * 2));                           // PAT reads
    CHECK(r.route(exit_of(vmcb::exit_code::msr, 1, 0, kEfer)) == Route::reflect);
    CHECK(r.route(exit_of(vmcb::exit_code::msr, 0, 0, kEfer)) == Route::l0);
    CHECK(r.route(exit_of(vmcb::exit_code::msr, 0, 0, kPat)) == Route::reflect);
    CHECK(r.route(exit_of(vmcb::exit_code::msr, 1, 0, kPat)) == Route::l0);
    CHECK(r.route(exit_of(vmcb::exit_code::msr, 0, 0, 0xC0010114)) == Route::l0);
    CHECK(r.route(exit_of(vmcb::exit_code::msr, 0, 0, 0x40000000)) == Route::reflect);  // outside the ranges
}

// A 2-byte access at port 0x7FFF needs the last byte of the IOPM's first page and the first of its
// second; when those are two pieces of L1's memory, they are read rather than seen in one window,
// and L1's bits still decide.
TEST_CASE("nested_svm.iopm_bits_across_two_pieces_of_l1_memory") {
    Running r;
    r.l1.pages_apart = true;
    L2Exit out = exit_of(vmcb::exit_code::ioio, io_info(0x7FFF, 2, false));
    CHECK(r.route(out) == Route::l0);     // L1's maps are zero: it intercepts neither port
    r.l1.ram[kIopm + 0x8000 / 8] = 0x01;  // L1 intercepts port 0x8000, in the second page
    CHECK(r.route(out) == Route::reflect);
    r.l1.ram[kIopm + 0x8000 / 8] = 0;
    r.l1.ram[kIopm + 0x7FFF / 8] = 0x80;  // and now port 0x7FFF, in the first
    CHECK(r.route(out) == Route::reflect);
}

TEST_CASE("nested_svm.maps_that_became_unreadable_reflect") {
    Running r;
    r.l1.ram.resize(kIopm);  // L0 took L1's memory above the maps away while L2 ran
    CHECK(r.route(exit_of(vmcb::exit_code::ioio, io_info(0x71, 1, true))) == Route::reflect);
    CHECK(r.route(exit_of(vmcb::exit_code::msr, 0, 0, 0x10)) == Route::reflect);
}

TEST_CASE("nested_svm.npf_is_the_shadows_only_with_l1_nested_paging") {
    Running with_npt;
    CHECK(with_npt.route(exit_of(vmcb::exit_code::npf, 4, 0x1000)) == Route::shadow_npt);
    Vmcb v = valid_vmcb12();
    v.control.nested_control = 0;
    Running without(v);
    CHECK(without.route(exit_of(vmcb::exit_code::npf, 4, 0x1000)) == Route::l0);
}

TEST_CASE("nested_svm.vmexit_writes_vmcb12_and_restores_l1") {
    Running r;
    // L2 ran for a while.
    r.vmcb02.save.rip = 0x402000;
    r.vmcb02.save.rax = 0x77;
    r.vmcb02.save.cr2 = 0xC2;
    r.vmcb01.save.fs.base = 0xF2;  // L2's FS: in the CPU (vmcb01, the backend's VMSAVE) for L1's VMSAVE
    r.vmcb02.control.int_ctl |= arch::int_ctl::v_irq | 0x9;
    Vmcb before = r.vmcb12();
    VmexitInfo info{vmcb::exit_code::cpuid, 0, 0, 0, 0x402002};
    REQUIRE(emulate_vmexit(*r.vcpu, r.l1, r.vmcb02, info, r.vmcb01.save, 1));
    Vmcb after = r.vmcb12();
    CHECK(after.control.exit_code == vmcb::exit_code::cpuid);
    CHECK(after.control.next_rip == 0x402002);
    CHECK(after.save.rip == 0x402000);
    CHECK(after.save.rax == 0x77);
    CHECK(after.save.cr2 == 0xC2);
    CHECK(after.save.fs.base == before.save.fs.base);  // #VMEXIT does not save FS: VMSAVE does
    CHECK(after.control.int_ctl == (before.control.int_ctl | arch::int_ctl::v_irq | 0x9));
    CHECK(after.control.event_inject == before.control.event_inject);
    CHECK(after.control.guest_asid == before.control.guest_asid);
    // L1 is back where it left, with GIF clear.
    CHECK(r.vmcb01.save.rip == 0x5003);
    CHECK(r.vmcb01.save.rax == kVmcb12);
    CHECK(r.vmcb01.save.rsp == 0x9000);
    CHECK(r.vmcb01.save.cpl == 0);
    CHECK(r.vmcb01.save.dr7 == arch::kDr7Reset);
    CHECK(r.vmcb01.save.fs.base == 0xF2);
    CHECK_FALSE(r.vcpu->gif);
    CHECK_FALSE(r.vcpu->guest_mode);
}

TEST_CASE("nested_svm.vmexit_reports_exception_and_npf_info") {
    Running r;
    VmexitInfo pf{vmcb::exit_code::exception_base + 14, 0x6, 0xDEAD000, arch::event::valid | 0x20, 0};
    REQUIRE(emulate_vmexit(*r.vcpu, r.l1, r.vmcb02, pf, r.vmcb01.save, 1));
    Vmcb after = r.vmcb12();
    CHECK(after.control.exit_info_1 == 0x6);
    CHECK(after.control.exit_info_2 == 0xDEAD000);
    CHECK(after.control.exit_int_info == (arch::event::valid | 0x20));
}

TEST_CASE("nested_svm.gif_and_l1_interrupts") {
    Running r;
    u64 l1_rflags = r.vmcb01.save.rflags;  // L1 ran with IF set
    REQUIRE(l1_rflags == 0x202);
    const Vmcb& s = r.vcpu->snapshot;
    CHECK(route_l1_interrupt(false, s, l1_rflags, 0x202) == L1Interrupt::blocked);
    CHECK(route_l1_interrupt(true, s, l1_rflags, 0x2) == L1Interrupt::vmexit_intr);  // V_INTR_MASKING: L1's IF
    l1_rflags = 0x2;
    CHECK(route_l1_interrupt(true, s, l1_rflags, 0x202) == L1Interrupt::blocked);
    Vmcb v = valid_vmcb12();
    v.control.int_ctl = 0;
    v.control.intercept_misc1 &= ~vmcb::intercept1::intr;
    Running no_intr(v);
    CHECK(route_l1_interrupt(true, no_intr.vcpu->snapshot, l1_rflags, 0x202) == L1Interrupt::deliver_to_l2);
    CHECK(route_l1_interrupt(true, no_intr.vcpu->snapshot, l1_rflags, 0x2) == L1Interrupt::l2_interrupts_off);
    v.control.intercept_misc1 |= vmcb::intercept1::intr;  // the same when L1 intercepts INTR
    Running intr_no_masking(v);
    CHECK(route_l1_interrupt(true, intr_no_masking.vcpu->snapshot, l1_rflags, 0x2) == L1Interrupt::l2_interrupts_off);
    CHECK(route_l1_interrupt(true, intr_no_masking.vcpu->snapshot, l1_rflags, 0x202) == L1Interrupt::vmexit_intr);
}

TEST_CASE("nested_svm.reflected_instructions_agree_with_the_routing") {
    Machine m;
    std::vector<Vmcb> snapshots(3, valid_vmcb12());
    snapshots[1].control.intercept_misc1 = 0xFFFFFFFF;
    snapshots[1].control.intercept_misc2 = 0xFFFFFFFF;
    snapshots[2].control.intercept_misc1 = 0;
    snapshots[2].control.intercept_misc2 = 0;
    for (const Vmcb& snapshot : snapshots) {
        u64 reflected = reflected_instructions(snapshot);
        for (u64 code = 0; code <= 0x500; ++code) {
            // Every code the one test claims is one the routing reflects.
            if (reflected_instruction(reflected, code))
                CHECK(route_l2_exit(snapshot, exit_of(code, io_info(0x60, 1, true)), m.l1) == Route::reflect);
        }
        CHECK_FALSE(reflected_instruction(reflected, vmcb::exit_code::invalid));
    }
    // Everything the instruction intercepts reflect on their bit alone is in the one test...
    u64 all = reflected_instructions(snapshots[1]);
    for (u64 code : {vmcb::exit_code::cpuid, vmcb::exit_code::hlt, vmcb::exit_code::vmrun, vmcb::exit_code::vmmcall,
                     vmcb::exit_code::vmload, vmcb::exit_code::shutdown, vmcb::exit_code::invlpga})
        CHECK(reflected_instruction(all, code));
    // ... but physical events (L0's) and the accesses L1's permission maps decide.
    for (u64 code : {vmcb::exit_code::intr, vmcb::exit_code::nmi, vmcb::exit_code::smi, vmcb::exit_code::init,
                     vmcb::exit_code::ioio, vmcb::exit_code::msr})
        CHECK_FALSE(reflected_instruction(all, code));
    CHECK(reflected_instructions(snapshots[2]) == 0);
}

TEST_CASE("nested_svm.vmexit_keeps_its_view_of_vmcb12_while_the_mappings_stay") {
    Running r;
    VmexitInfo info{vmcb::exit_code::cpuid, 0, 0, 0, 0x402002};
    REQUIRE(emulate_vmexit(*r.vcpu, r.l1, r.vmcb02, info, r.vmcb01.save, 7));
    // L1 runs L2 again on the same vmcb12, nothing unmapped meanwhile: no second lookup.
    REQUIRE(r.vmrun().result == VmrunResult::entered);
    int windows = r.l1.windows;
    r.vmcb02.save.rip = 0x403000;
    REQUIRE(emulate_vmexit(*r.vcpu, r.l1, r.vmcb02, info, r.vmcb01.save, 7));
    CHECK(r.l1.windows == windows);
    CHECK(r.vmcb12().save.rip == 0x403000);
    CHECK(r.vmcb12().control.exit_code == vmcb::exit_code::cpuid);
}

TEST_CASE("nested_svm.vmexit_looks_vmcb12_up_again_after_an_unmap") {
    Running r;
    VmexitInfo info{vmcb::exit_code::cpuid, 0, 0, 0, 0x402002};
    REQUIRE(emulate_vmexit(*r.vcpu, r.l1, r.vmcb02, info, r.vmcb01.save, 7));
    REQUIRE(r.vmrun().result == VmrunResult::entered);
    // L0 took vmcb12's page away and gave L1 a read-only one there (a new generation): the view
    // from before is not L1's any more, and nothing may be written through it.
    r.l1.read_only[kVmcb12 >> 12] = true;
    Vmcb before = r.vmcb12();
    r.vmcb02.save.rip = 0x403000;
    CHECK_FALSE(emulate_vmexit(*r.vcpu, r.l1, r.vmcb02, info, r.vmcb01.save, 8));
    CHECK(r.vmcb12().save.rip == before.save.rip);
    CHECK(r.vcpu->vmcb12_view.host == nullptr);
    // Even under the old generation again (never happens: it only grows), the view is gone.
    CHECK_FALSE(emulate_vmexit(*r.vcpu, r.l1, r.vmcb02, info, r.vmcb01.save, 7));
    CHECK(r.vmcb12().save.rip == before.save.rip);
}

TEST_CASE("nested_svm.vmexit_into_another_vmcb12_looks_it_up") {
    Running r;
    VmexitInfo info{vmcb::exit_code::cpuid, 0, 0, 0, 0x402002};
    REQUIRE(emulate_vmexit(*r.vcpu, r.l1, r.vmcb02, info, r.vmcb01.save, 7));
    constexpr u64 kOther = kVmcb12 + 0x1000;
    r.l1.put(kOther, valid_vmcb12());
    r.vmcb01.save.rax = kOther;
    REQUIRE(r.vmrun(kOther).result == VmrunResult::entered);
    int windows = r.l1.windows;
    r.vmcb02.save.rip = 0x404000;
    REQUIRE(emulate_vmexit(*r.vcpu, r.l1, r.vmcb02, info, r.vmcb01.save, 7));
    CHECK(r.l1.windows == windows + 1);
    CHECK(r.l1.get<Vmcb>(kOther).save.rip == 0x404000);
    CHECK(r.vmcb12().save.rip != 0x404000);
}
