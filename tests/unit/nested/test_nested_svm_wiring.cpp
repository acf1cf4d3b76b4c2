// The nested SVM component as the kernel drives it: VMRUN through the table's
// virtualization_instruction with a fake kernel Host and a fake backend (the SVM backend's
// NestedHardware operations), L2 exits through reflect_exit, VMLOAD / VMSAVE / STGI / CLGI.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "fake_nested_host.hpp"
#include "nested_fixture.hpp"
#include "nestor/x86/svm/nested_hardware.hpp"

using namespace nested_test;
using nestor::x86::svm::Vmcb;

namespace {

constexpr u64 kL1Bytes = FakeNestedHost::kL1Bytes;
constexpr u64 kVmcb12 = 0x10000;
constexpr u64 kVmloadArea = 0x20000;
constexpr u8 kL1Vector = 0x30;  // a virtual interrupt of L1's

using FakeHost = FakeNestedHost;

using nestor::x86_regs::kEferLma;
using nestor::x86_regs::kEferLme;
constexpr u64 kLongEfer = kEferLme | kEferLma | kEferSvme;
constexpr u16 kCode64 = 0xA9B;

void long_mode(nestor::x86::svm::VmcbSave& s, u64 rip, u64 rsp, u64 rax) {
    s.efer = kLongEfer;
    s.cr0 = 0x80000011;
    s.cr4 = 0x20;
    s.cr3 = 0x1000;
    s.cs = {0x8, kCode64, 0xFFFFFFFF, 0};
    s.rflags = 2;
    s.rip = rip;
    s.rsp = rsp;
    s.rax = rax;
    s.g_pat = 0x0007040600070406;
}

struct L1Fixture : Guest, FakeNestedHardware {
    FakeHost host;
    nested::NestedDomain domain;
    nested::NestedVcpu vcpu;

    L1Fixture() {
        vmcb01->control.intercept_misc1 = 1u << 18;  // CPUID, as L0 intercepts for L1
        long_mode(vmcb01->save, 0x1000, 0x7000, kVmcb12);
        vmcb01->save.lstar = 0xAAAA;
        REQUIRE(nested_domain_initialise(domain, amd_cpu(), kL1Bytes).ok());
        vcpu.host = &host;
        vcpu.hardware = handle();
        REQUIRE(nested_vcpu_initialise(vcpu, domain).ok());
        env.nested = &vcpu;
        state.rip = 0x1000;
        state.mode = CpuMode::long64;
        state.efer = kEferLme | kEferLma;
        state.reg(Gpr::rsp) = 0x7000;
        REQUIRE_FALSE(run(msr_write(kMsrEfer, state.efer | kEferSvme)).inject);
        state.rip = 0x1000;
        write_vmcb12(1);
    }
    ~L1Fixture() {
        nested_vcpu_destroy(vcpu);
        nested_domain_teardown(domain);
    }
    void write_vmcb12(u32 asid) {
        Vmcb& v = host.vmcb_at(kVmcb12);
        v = Vmcb{};
        v.control.intercept_misc1 = (1u << 18) | (1u << 24);  // CPUID, HLT
        v.control.intercept_misc2 = 1;                        // VMRUN
        v.control.guest_asid = asid;
        long_mode(v.save, 0x3000, 0x4000, 0x77);
    }
    ExitOutcome vmrun() {
        state.rax() = kVmcb12;
        return run(instruction(0x80, 3));
    }
    // An exit of vmcb02 as the backend reports it: like the backend, which writes the kernel's
    // state into vmcb02 at the entry (an exit L0 handled for L2 may have changed it) and reads it
    // back at the exit.
    ExitOutcome l2_exit(ExitKind kind, u64 code, u8 length) {
        nestor::x86::svm::VmcbSave& s = vmcb02->save;
        s.rip = state.rip;
        s.rflags = state.rflags | 2;
        s.rax = state.rax();
        s.rsp = state.reg(Gpr::rsp);
        s.efer = state.efer | kEferSvme;
        vmcb02->control.exit_code = code;
        VmExit exit{};
        exit.kind = kind;
        exit.vendor_code = code;
        exit.instruction_length = length;
        return run(exit);
    }
};

bool carries_on(const ExitOutcome& o) { return !o.stop && !o.inject && !o.wait; }

}  // namespace

TEST_CASE("nested_svm_wiring.vmrun_enters_l2_and_a_cpuid_exit_returns_to_l1") {
    L1Fixture l1;
    REQUIRE(carries_on(l1.vmrun()));
    CHECK(l1.vcpu.ops->in_guest_mode(l1.vcpu));
    CHECK(l1.hw.running_l2());
    CHECK(l1.hw.l2_entries == 1);
    CHECK(l1.state.rip == 0x3000);
    CHECK(l1.state.rax() == 0x77);
    CHECK(l1.state.reg(Gpr::rsp) == 0x4000);
    CHECK(l1.vmcb02->control.guest_asid == 7);
    CHECK(l1.vmcb02->control.iopm_base_pa == 0x3000);
    CHECK(l1.vmcb02->control.nested_cr3 == 0x8000);  // L1 has no NPT: L0's tables of L1
    CHECK(l1.vmcb01->save.lstar == 0xAAAA);          // the VMLOAD state stays the CPU's, L2 runs with it

    l1.state.rip = 0x3000;
    REQUIRE(carries_on(l1.l2_exit(ExitKind::cpuid, 0x72, 2)));
    CHECK_FALSE(l1.vcpu.ops->in_guest_mode(l1.vcpu));
    CHECK_FALSE(l1.hw.running_l2());
    CHECK(l1.hw.l1_entries == 1);
    CHECK(l1.state.rip == 0x1003);  // after L1's VMRUN, from vmcb01
    CHECK(l1.state.rax() == kVmcb12);
    CHECK(l1.state.reg(Gpr::rsp) == 0x7000);
    CHECK(l1.vcpu.ops->route_interrupt(l1.vcpu, l1.state, kL1Vector).action ==
          nested::Action::resume);  // GIF clear: held
    const Vmcb& v = l1.host.vmcb_at(kVmcb12);
    CHECK(v.control.exit_code == 0x72);
    CHECK(v.control.next_rip == 0x3002);
    CHECK(v.save.rip == 0x3000);

    CHECK(carries_on(l1.run(instruction(0x84, 3))));  // STGI
    CHECK(l1.vcpu.ops->route_interrupt(l1.vcpu, l1.state, kL1Vector).action ==
          nested::Action::not_nested);  // delivered to L1
}

// The component changes what runs only through the backend's operations (nested_hardware.hpp):
// L1's registers written into vmcb01 before VMRUN reads them, enter_l2 once L2 is built, and a
// reflected exit's enter_l1, after which the backend runs vmcb01 with the kernel's state loaded
// from it, nothing pending for L2, and nothing written back that the backend had just read.
TEST_CASE("nested_svm_wiring.vmrun_and_a_reflected_exit_go_through_the_backend") {
    L1Fixture l1;
    l1.state.rflags = 0x46;
    REQUIRE(carries_on(l1.vmrun()));
    CHECK(l1.hw.state_writes == 1);  // L1's, into vmcb01 ...
    CHECK(l1.vmcb01->save.rflags == 0x46);
    CHECK(l1.vmcb01->save.rax == kVmcb12);
    CHECK(l1.hw.l2_entries == 1);  // ... then L2 runs
    CHECK(l1.hw.l1_entries == 0);
    CHECK(&l1.hw.running() == l1.vmcb02);
    CHECK(l1.state.rip == l1.vmcb02->save.rip);
    CHECK(l1.state.rax() == 0x77);
    CHECK(l1.state.mode == CpuMode::long64);

    l1.state.rip = 0x3000;
    l1.hw.pending_event = 0x80000021;  // an event L2's exit interrupted, which the backend queued
    REQUIRE(carries_on(l1.l2_exit(ExitKind::cpuid, 0x72, 2)));
    CHECK_FALSE(l1.hw.running_l2());
    CHECK(&l1.hw.running() == l1.vmcb01);
    CHECK(l1.hw.l1_entries == 1);
    CHECK(l1.hw.l2_entries == 1);
    CHECK(l1.hw.pending_event == 0);  // it went to L1 in vmcb12's EXITINTINFO
    CHECK(l1.hw.state_writes == 1);   // L2's state was vmcb02's already
    CHECK(l1.state.rip == 0x1003);
    CHECK(l1.state.rip == l1.vmcb01->save.rip);
    CHECK(l1.state.rax() == kVmcb12);
    CHECK(l1.state.rflags == l1.vmcb01->save.rflags);
}

// A VMRUN whose checks fail never enters L2: L1 resumes after it, through enter_l1.
TEST_CASE("nested_svm_wiring.failed_vmrun_resumes_l1_through_the_backend") {
    L1Fixture l1;
    l1.write_vmcb12(0);  // ASID 0
    REQUIRE(carries_on(l1.vmrun()));
    CHECK(l1.hw.l2_entries == 0);
    CHECK(l1.hw.l1_entries == 1);
    CHECK_FALSE(l1.hw.running_l2());
    CHECK(l1.state.rip == 0x1003);
    CHECK(l1.state.rip == l1.vmcb01->save.rip);
}

TEST_CASE("nested_svm_wiring.reset_in_l2_leaves_the_state_to_the_kernel") {
    L1Fixture l1;
    REQUIRE(carries_on(l1.vmrun()));
    int resets = l1.hw.resets;
    l1.state.rip = 0x3000;
    l1.vcpu.ops->vcpu_reset(l1.vcpu);
    CHECK_FALSE(l1.vcpu.ops->in_guest_mode(l1.vcpu));
    CHECK_FALSE(l1.hw.running_l2());
    // The kernel resets its state itself: the component leaves it alone (no #VMEXIT into L1).
    CHECK(l1.hw.resets == resets + 1);
    CHECK(l1.hw.l1_entries == 0);
    CHECK(l1.state.rip == 0x3000);
}

TEST_CASE("nested_svm_wiring.l0_exits_stay_with_l0_and_l2_resumes") {
    L1Fixture l1;
    REQUIRE(carries_on(l1.vmrun()));
    // A physical interrupt: L0's, whatever L1 intercepts.
    CHECK(carries_on(l1.l2_exit(ExitKind::external_interrupt, 0x60, 0)));
    CHECK(l1.vcpu.ops->in_guest_mode(l1.vcpu));
    CHECK(l1.state.rip == 0x3000);
    // An I/O access L1 does not intercept: L0 handles it as L1's (the console port here).
    l1.vmcb02->control.exit_info_1 = (u64{0x3F8} << 16) | 0x10;
    VmExit io{};
    io.kind = ExitKind::io;
    io.vendor_code = 0x7B;
    io.instruction_length = 1;
    io.io = IoExit{0x3F8, 1, IoDirection::out, false, false, 'x'};
    l1.vmcb02->control.exit_code = 0x7B;
    CHECK(carries_on(l1.run(io)));
    CHECK(l1.vcpu.ops->in_guest_mode(l1.vcpu));
    CHECK(l1.state.rip == 0x3001);
    // HLT, which L1 intercepts: back to L1.
    CHECK(carries_on(l1.l2_exit(ExitKind::hlt, 0x78, 1)));
    CHECK_FALSE(l1.vcpu.ops->in_guest_mode(l1.vcpu));
    CHECK(l1.host.vmcb_at(kVmcb12).control.exit_code == 0x78);
    CHECK(l1.host.vmcb_at(kVmcb12).save.rip == 0x3001);  // past the OUT L0 emulated for L2
}

TEST_CASE("nested_svm_wiring.failed_checks_and_bad_addresses") {
    L1Fixture l1;
    l1.write_vmcb12(0);  // ASID 0
    REQUIRE(carries_on(l1.vmrun()));
    CHECK_FALSE(l1.vcpu.ops->in_guest_mode(l1.vcpu));
    CHECK(l1.host.vmcb_at(kVmcb12).control.exit_code == ~u64{0});
    CHECK(l1.state.rip == 0x1003);
    CHECK(l1.vcpu.ops->route_interrupt(l1.vcpu, l1.state, kL1Vector).action == nested::Action::resume);

    l1.state.rip = 0x1000;
    l1.state.rax() = kVmcb12 + 8;
    ExitOutcome o = l1.run(instruction(0x80, 3));
    CHECK((o.inject && o.vector == kVectorGp));
    l1.state.rax() = kL1Bytes;  // beyond L1's memory
    o = l1.run(instruction(0x80, 3));
    CHECK((o.inject && o.vector == kVectorGp));
    CHECK(l1.state.rip == 0x1000);
}

TEST_CASE("nested_svm_wiring.vmsave_and_vmload_move_the_vmload_state") {
    L1Fixture l1;
    l1.state.rax() = kVmloadArea;
    REQUIRE(carries_on(l1.run(instruction(0x83, 3))));  // VMSAVE
    CHECK(l1.host.vmcb_at(kVmloadArea).save.lstar == 0xAAAA);
    l1.host.vmcb_at(kVmloadArea).save.lstar = 0xBBBB;
    l1.host.vmcb_at(kVmloadArea).save.rip = 0xDEAD;     // not VMLOAD state: ignored
    REQUIRE(carries_on(l1.run(instruction(0x82, 3))));  // VMLOAD
    CHECK(l1.vmcb01->save.lstar == 0xBBBB);
    CHECK(l1.vmcb01->save.rip == 0x1000);
    l1.state.rax() = kVmloadArea + 0x10;
    ExitOutcome o = l1.run(instruction(0x82, 3));
    CHECK((o.inject && o.vector == kVectorGp));
    CHECK(carries_on(l1.run(instruction(0x7A, 3))));  // INVLPGA
}

// L1's virtual interrupt while L2 runs: with INTR intercepted and V_INTR_MASKING, L1's own IF
// (at VMRUN) decides; the interrupt becomes a #VMEXIT(INTR) into L1 carrying the event L2 was
// receiving, and stays held (GIF clear) until L1 executes STGI.
TEST_CASE("nested_svm_wiring.l1_interrupt_during_l2_exits_to_l1") {
    L1Fixture l1;
    Vmcb& v = l1.host.vmcb_at(kVmcb12);
    v.control.intercept_misc1 |= 1u << 0;  // INTR
    v.control.int_ctl = 1u << 24;          // V_INTR_MASKING
    l1.state.rflags = 0x202;               // L1 runs with IF set
    REQUIRE(carries_on(l1.vmrun()));
    REQUIRE(l1.vcpu.ops->in_guest_mode(l1.vcpu));
    l1.state.rflags = 0x2;                          // L2's IF is clear: L1's decides
    l1.vmcb02->control.exit_int_info = 0x80000030;  // L2 was receiving vector 0x30
    l1.state.rip = 0x3005;
    nested::Decision d = l1.vcpu.ops->route_interrupt(l1.vcpu, l1.state, kL1Vector);
    CHECK(d.action == nested::Action::resume);
    CHECK_FALSE(l1.vcpu.ops->in_guest_mode(l1.vcpu));
    CHECK(l1.state.rip == 0x1003);  // after L1's VMRUN
    const Vmcb& after = l1.host.vmcb_at(kVmcb12);
    CHECK(after.control.exit_code == 0x60);
    CHECK(after.control.exit_int_info == 0x80000030);
    CHECK(after.save.rip == 0x3005);
    // GIF is clear after the #VMEXIT: held until STGI.
    CHECK(l1.vcpu.ops->route_interrupt(l1.vcpu, l1.state, kL1Vector).action == nested::Action::resume);
    REQUIRE(carries_on(l1.run(instruction(0x84, 3))));
    CHECK(l1.vcpu.ops->route_interrupt(l1.vcpu, l1.state, kL1Vector).action == nested::Action::not_nested);
}

// L1's interrupt arrives right after its VMRUN, before L2 was entered: the event L1 injected
// through EVENTINJ goes first, as on the CPU. The interrupt is held while vmcb02 still holds that
// event, and the backend ends L2's run right after the entry; once L2 was entered (the CPU
// cleared EVENTINJ.V at the exit) it is a #VMEXIT(INTR) with nothing in EXITINTINFO. (Exiting at once with the event in
// EXITINTINFO livelocks Linux KVM, which raises a self-IPI whenever it injects with another interrupt waiting.)
TEST_CASE("nested_svm_wiring.l1_interrupt_waits_for_the_injected_event") {
    L1Fixture l1;
    Vmcb& v = l1.host.vmcb_at(kVmcb12);
    v.control.intercept_misc1 |= 1u << 0;  // INTR
    v.control.int_ctl = 1u << 24;          // V_INTR_MASKING
    v.control.event_inject = 0x80000020;   // an external interrupt, vector 0x20
    v.save.rflags = 0x202;
    l1.state.rflags = 0x202;
    REQUIRE(carries_on(l1.vmrun()));
    REQUIRE(l1.vcpu.ops->in_guest_mode(l1.vcpu));
    CHECK(l1.vcpu.ops->route_interrupt(l1.vcpu, l1.state, kL1Vector).action == nested::Action::resume);
    CHECK(l1.vcpu.ops->in_guest_mode(l1.vcpu));  // held: L2 is entered with its event first,
    CHECK(l1.hw.immediate_exits == 1);           // and leaves again right after its delivery
    l1.vmcb02->control.event_inject = 0;         // entered and delivered; L2's handler runs
    l1.state.rip = 0x5000;
    nested::Decision d = l1.vcpu.ops->route_interrupt(l1.vcpu, l1.state, kL1Vector);
    CHECK(d.action == nested::Action::resume);
    CHECK_FALSE(l1.vcpu.ops->in_guest_mode(l1.vcpu));
    const Vmcb& after = l1.host.vmcb_at(kVmcb12);
    CHECK(after.control.exit_code == 0x60);
    CHECK(after.control.exit_int_info == 0);
    CHECK(after.save.rip == 0x5000);
}

TEST_CASE("nested_svm_wiring.l1_interrupt_masked_or_left_to_l2") {
    L1Fixture l1;
    Vmcb& v = l1.host.vmcb_at(kVmcb12);
    v.control.intercept_misc1 |= 1u << 0;
    v.control.int_ctl = 1u << 24;
    l1.state.rflags = 0x2;  // L1's IF clear at VMRUN: masked
    REQUIRE(carries_on(l1.vmrun()));
    l1.state.rflags = 0x202;
    CHECK(l1.vcpu.ops->route_interrupt(l1.vcpu, l1.state, kL1Vector).action == nested::Action::resume);
    CHECK(l1.vcpu.ops->in_guest_mode(l1.vcpu));

    L1Fixture no_intercept;  // INTR not intercepted, no masking: L2 takes it with its own IF
    REQUIRE(carries_on(no_intercept.vmrun()));
    no_intercept.state.rflags = 0x202;
    CHECK(no_intercept.vcpu.ops->route_interrupt(no_intercept.vcpu, no_intercept.state, kL1Vector).action ==
          nested::Action::not_nested);
    CHECK(no_intercept.vcpu.ops->in_guest_mode(no_intercept.vcpu));
}

// L1's NMI (the PC's, nested_ops.hpp route_nmi): held while L1's GIF is clear; while L2 runs
// and L1 intercepts NMI, a #VMEXIT(NMI) that leaves it pending, GIF clear, until L1's STGI.
TEST_CASE("nested_svm_wiring.l1_nmi_waits_for_gif_and_exits_from_l2") {
    L1Fixture l1;
    CHECK(l1.vcpu.ops->route_nmi(l1.vcpu, l1.state).action == nested::Action::not_nested);
    REQUIRE(carries_on(l1.run(instruction(0x85, 3))));  // CLGI
    CHECK(l1.vcpu.ops->route_nmi(l1.vcpu, l1.state).action == nested::Action::resume);
    REQUIRE(carries_on(l1.run(instruction(0x84, 3))));  // STGI
    CHECK(l1.vcpu.ops->route_nmi(l1.vcpu, l1.state).action == nested::Action::not_nested);

    l1.state.rip = 0x1000;
    l1.host.vmcb_at(kVmcb12).control.intercept_misc1 |= 1u << 1;  // NMI
    REQUIRE(carries_on(l1.vmrun()));
    REQUIRE(l1.vcpu.ops->in_guest_mode(l1.vcpu));
    l1.vmcb02->control.event_inject = 0x80000020;  // L1's event, not delivered yet: it goes first
    CHECK(l1.vcpu.ops->route_nmi(l1.vcpu, l1.state).action == nested::Action::resume);
    CHECK(l1.vcpu.ops->in_guest_mode(l1.vcpu));
    l1.vmcb02->control.event_inject = 0;
    l1.vmcb02->control.exit_int_info = 0x80000030;  // L2 was receiving vector 0x30
    l1.state.rip = 0x3005;
    CHECK(l1.vcpu.ops->route_nmi(l1.vcpu, l1.state).action == nested::Action::resume);
    CHECK_FALSE(l1.vcpu.ops->in_guest_mode(l1.vcpu));
    CHECK(l1.state.rip == 0x1003);  // after L1's VMRUN
    const Vmcb& after = l1.host.vmcb_at(kVmcb12);
    CHECK(after.control.exit_code == 0x61);
    CHECK(after.control.exit_int_info == 0x80000030);
    CHECK(after.save.rip == 0x3005);
    // Still pending, GIF clear after the #VMEXIT: held until STGI, then L1's.
    CHECK(l1.vcpu.ops->route_nmi(l1.vcpu, l1.state).action == nested::Action::resume);
    REQUIRE(carries_on(l1.run(instruction(0x84, 3))));
    CHECK(l1.vcpu.ops->route_nmi(l1.vcpu, l1.state).action == nested::Action::not_nested);
}

// An INIT for the vCPU (the PC's, nested_ops.hpp init_signal): held while GIF is clear; while
// L2 runs and L1 intercepts INIT, a #VMEXIT(INIT) that leaves it pending, held by the GIF the
// #VMEXIT cleared until L1's STGI; then, or without the intercept, the vCPU takes it.
TEST_CASE("nested_svm_wiring.init_waits_for_gif_and_exits_from_l2_when_intercepted") {
    L1Fixture l1;
    CHECK(l1.vcpu.ops->init_signal(l1.vcpu, l1.state).action == nested::Action::not_nested);
    REQUIRE(carries_on(l1.run(instruction(0x85, 3))));  // CLGI
    CHECK(l1.vcpu.ops->init_signal(l1.vcpu, l1.state).action == nested::Action::resume);
    REQUIRE(carries_on(l1.run(instruction(0x84, 3))));  // STGI

    l1.state.rip = 0x1000;
    l1.host.vmcb_at(kVmcb12).control.intercept_misc1 |= 1u << 3;  // INIT
    REQUIRE(carries_on(l1.vmrun()));
    REQUIRE(l1.vcpu.ops->in_guest_mode(l1.vcpu));
    l1.vmcb02->control.event_inject = 0x80000020;  // L1's event, not delivered yet: it goes first
    CHECK(l1.vcpu.ops->init_signal(l1.vcpu, l1.state).action == nested::Action::resume);
    CHECK(l1.vcpu.ops->in_guest_mode(l1.vcpu));
    l1.vmcb02->control.event_inject = 0;
    l1.state.rip = 0x3005;
    CHECK(l1.vcpu.ops->init_signal(l1.vcpu, l1.state).action == nested::Action::resume);
    CHECK_FALSE(l1.vcpu.ops->in_guest_mode(l1.vcpu));
    CHECK(l1.state.rip == 0x1003);  // after L1's VMRUN
    const Vmcb& after = l1.host.vmcb_at(kVmcb12);
    CHECK(after.control.exit_code == 0x63);
    CHECK(after.save.rip == 0x3005);
    CHECK(l1.vcpu.ops->init_signal(l1.vcpu, l1.state).action == nested::Action::resume);
    REQUIRE(carries_on(l1.run(instruction(0x84, 3))));
    CHECK(l1.vcpu.ops->init_signal(l1.vcpu, l1.state).action == nested::Action::not_nested);
}

TEST_CASE("nested_svm_wiring.init_not_intercepted_is_taken_in_l2") {
    L1Fixture l1;
    REQUIRE(carries_on(l1.vmrun()));
    CHECK(l1.vcpu.ops->init_signal(l1.vcpu, l1.state).action == nested::Action::not_nested);
    CHECK(l1.vcpu.ops->in_guest_mode(l1.vcpu));
}

TEST_CASE("nested_svm_wiring.l1_nmi_not_intercepted_is_l2s") {
    L1Fixture l1;
    REQUIRE(carries_on(l1.vmrun()));
    CHECK(l1.vcpu.ops->route_nmi(l1.vcpu, l1.state).action == nested::Action::not_nested);
    CHECK(l1.vcpu.ops->in_guest_mode(l1.vcpu));
}

// L2's VMSAVE / VMLOAD that L1 does not intercept act on the CPU's VMLOAD state (vmcb01's, which
// L2 runs with and L1 finds after its #VMEXIT, as on one CPU) with RAX an L2-physical address:
// L1-physical when L1 has no nested paging, else through L1's NPT, whose refusal is an #NPF for L1.
TEST_CASE("nested_svm_wiring.l2_vmload_vmsave_without_l1_intercept") {
    constexpr u64 kL2Area = 0x30000;
    L1Fixture l1;
    REQUIRE(carries_on(l1.vmrun()));
    l1.vmcb01->save.lstar = 0x1234;  // L2 set LSTAR (the world switch saves it into vmcb01)
    l1.state.rip = 0x3000;
    l1.state.rax() = kL2Area;
    REQUIRE(carries_on(l1.l2_exit(ExitKind::virtualization_instruction, 0x83, 3)));  // VMSAVE
    CHECK(l1.host.vmcb_at(kL2Area).save.lstar == 0x1234);
    CHECK(l1.state.rip == 0x3003);
    CHECK(l1.vcpu.ops->in_guest_mode(l1.vcpu));

    l1.host.vmcb_at(kL2Area).save.star = 0x5678;
    // RIP is not VMLOAD state: ignored.
    l1.host.vmcb_at(kL2Area).save.rip = 0xDEAD;
    REQUIRE(carries_on(l1.l2_exit(ExitKind::virtualization_instruction, 0x82, 3)));  // VMLOAD
    CHECK(l1.vmcb01->save.star == 0x5678);
    CHECK(l1.vmcb01->save.rip == 0x1003);  // L1's saved state is untouched: it resumes after VMRUN
    CHECK(l1.vcpu.ops->in_guest_mode(l1.vcpu));

    l1.state.rax() = kL2Area + 8;
    ExitOutcome o = l1.l2_exit(ExitKind::virtualization_instruction, 0x82, 3);
    CHECK((o.inject && o.vector == kVectorGp));
    l1.state.rax() = kL1Bytes;  // beyond L1's memory
    o = l1.l2_exit(ExitKind::virtualization_instruction, 0x82, 3);
    CHECK((o.inject && o.vector == kVectorGp));
}

TEST_CASE("nested_svm_wiring.l2_vmsave_through_l1_npt") {
    constexpr u64 kPml4 = 0x40000, kPdpt = 0x41000, kPd = 0x42000, kPt = 0x43000;
    constexpr u64 kL2Area = 0x30000, kL1Area = 0x50000, kRw = 0x7;  // present, writable, user
    L1Fixture l1;
    auto put = [&](u64 gpa, u64 value) { REQUIRE(l1.host.write(gpa, &value, sizeof(value))); };
    put(kPml4, kPdpt | kRw);
    put(kPdpt, kPd | kRw);
    put(kPd, kPt | kRw);
    put(kPt + (kL2Area >> 12) * 8, kL1Area | kRw);
    put(kPt + ((kL2Area + 0x1000) >> 12) * 8, (kL1Area + 0x1000) | 0x5);  // read-only
    Vmcb& v = l1.host.vmcb_at(kVmcb12);
    v.control.nested_control = 1;
    v.control.nested_cr3 = kPml4;
    REQUIRE(carries_on(l1.vmrun()));
    REQUIRE(l1.vcpu.ops->in_guest_mode(l1.vcpu));
    l1.vmcb01->save.lstar = 0xABCD;
    l1.state.rip = 0x3000;
    l1.state.rax() = kL2Area;
    REQUIRE(carries_on(l1.l2_exit(ExitKind::virtualization_instruction, 0x83, 3)));
    CHECK(l1.host.vmcb_at(kL1Area).save.lstar == 0xABCD);
    CHECK(l1.host.vmcb_at(kL2Area).save.lstar == 0);

    // A write L1's NPT does not allow: #VMEXIT(NPF) into L1 with the address and the write bit.
    l1.state.rax() = kL2Area + 0x1000;
    REQUIRE(carries_on(l1.l2_exit(ExitKind::virtualization_instruction, 0x83, 3)));
    CHECK_FALSE(l1.vcpu.ops->in_guest_mode(l1.vcpu));
    const Vmcb& after = l1.host.vmcb_at(kVmcb12);
    CHECK(after.control.exit_code == 0x400);
    CHECK(after.control.exit_info_2 == kL2Area + 0x1000);
    CHECK((after.control.exit_info_1 & 0x3) == 0x3);  // present, write
}

// An exception L0's own rule raises for L2 (here #GP for an MSR L1 lets L2 access, which the
// kernel refuses) is L1's when L1 intercepts the vector: a #VMEXIT, not an injection into L2.
TEST_CASE("nested_svm_wiring.l0_exception_for_l2_goes_to_l1_when_intercepted") {
    constexpr u32 kMsrApicBase = 0x1B;  // #GP under Nestor's MSR policy
    for (bool l1_intercepts_gp : {true, false}) {
        L1Fixture l1;
        if (l1_intercepts_gp) l1.host.vmcb_at(kVmcb12).control.intercept_exceptions = 1u << kVectorGp;
        REQUIRE(carries_on(l1.vmrun()));
        l1.state.rip = 0x3000;
        l1.state.rcx() = kMsrApicBase;
        l1.vmcb02->control.exit_code = 0x7C;
        l1.vmcb02->control.exit_info_1 = 0;
        ExitOutcome o = l1.run(msr_read(kMsrApicBase));
        if (l1_intercepts_gp) {
            CHECK(carries_on(o));
            CHECK_FALSE(l1.vcpu.ops->in_guest_mode(l1.vcpu));
            const Vmcb& v = l1.host.vmcb_at(kVmcb12);
            CHECK(v.control.exit_code == 0x40 + kVectorGp);
            CHECK(v.control.exit_info_1 == 0);
            CHECK(v.save.rip == 0x3000);  // on the faulting RDMSR
        } else {
            CHECK((o.inject && o.vector == kVectorGp));
            CHECK(l1.vcpu.ops->in_guest_mode(l1.vcpu));
        }
    }
}

// L2's EFER is L2's: when L1's MSR permission map lets L2 write EFER (here L1 uses none), L2's
// EFER.SVME changes for L2 alone. L1's stays set: after the #VMEXIT L1 reads it and runs L2 again
// (an L1 whose SVME L2 had cleared would get #UD for its VMRUN).
TEST_CASE("nested_svm_wiring.l2_efer_write_is_l2s_not_l1s") {
    constexpr u64 kL2EferWithoutSvme = (u64{1} << 8) | (u64{1} << 10);  // LME, LMA
    L1Fixture l1;
    REQUIRE(carries_on(l1.vmrun()));
    l1.state.rip = 0x3000;
    l1.vmcb02->control.exit_code = 0x7C;
    l1.vmcb02->control.exit_info_1 = 1;
    REQUIRE(carries_on(l1.run(msr_write(kMsrEfer, kL2EferWithoutSvme))));  // L2 clears its SVME
    CHECK(l1.vcpu.ops->in_guest_mode(l1.vcpu));
    l1.vmcb02->control.exit_info_1 = 0;
    REQUIRE(carries_on(l1.run(msr_read(kMsrEfer))));
    CHECK(l1.state.rax() == kL2EferWithoutSvme);  // L2 reads back what it wrote
    // L2's SVM instructions that L1 does not intercept now #UD, as on the CPU.
    ExitOutcome o = l1.l2_exit(ExitKind::virtualization_instruction, 0x84, 3);  // STGI
    CHECK((o.inject && o.vector == kVectorUd));
    CHECK(l1.vcpu.ops->in_guest_mode(l1.vcpu));

    REQUIRE(carries_on(l1.l2_exit(ExitKind::cpuid, 0x72, 2)));  // back to L1
    REQUIRE_FALSE(l1.vcpu.ops->in_guest_mode(l1.vcpu));
    l1.vmcb02->control.exit_info_1 = 0;
    REQUIRE(carries_on(l1.run(msr_read(kMsrEfer))));
    CHECK((l1.state.rax() & kEferSvme) != 0);  // L1's own EFER.SVME
    l1.state.rip = 0x1000;
    REQUIRE(carries_on(l1.vmrun()));
    CHECK(l1.vcpu.ops->in_guest_mode(l1.vcpu));
    // The new L2 starts with vmcb12's EFER, SVME set.
    REQUIRE(carries_on(l1.run(msr_read(kMsrEfer))));
    CHECK((l1.state.rax() & kEferSvme) != 0);
}

// L2's VMLOAD / VMSAVE through L1's NPT with an operand at or above 2^48: #GP, as on the CPU,
// never the L1 page the low 48 bits would reach.
TEST_CASE("nested_svm_wiring.l2_vmsave_beyond_48_bits_is_gp") {
    constexpr u64 kPml4 = 0x40000, kPdpt = 0x41000, kPd = 0x42000, kPt = 0x43000;
    constexpr u64 kL2Area = 0x30000, kL1Area = 0x50000, kRw = 0x7;
    L1Fixture l1;
    auto put = [&](u64 gpa, u64 value) { REQUIRE(l1.host.write(gpa, &value, sizeof(value))); };
    put(kPml4, kPdpt | kRw);
    put(kPdpt, kPd | kRw);
    put(kPd, kPt | kRw);
    put(kPt + (kL2Area >> 12) * 8, kL1Area | kRw);
    Vmcb& v = l1.host.vmcb_at(kVmcb12);
    v.control.nested_control = 1;
    v.control.nested_cr3 = kPml4;
    REQUIRE(carries_on(l1.vmrun()));
    l1.vmcb01->save.lstar = 0xABCD;
    for (u64 high : {u64{1} << 48, u64{1} << 63}) {
        l1.state.rip = 0x3000;
        l1.state.rax() = high | kL2Area;
        ExitOutcome o = l1.l2_exit(ExitKind::virtualization_instruction, 0x83, 3);  // VMSAVE
        CHECK((o.inject && o.vector == kVectorGp));
        CHECK(l1.host.vmcb_at(kL1Area).save.lstar == 0);
        o = l1.l2_exit(ExitKind::virtualization_instruction, 0x82, 3);  // VMLOAD
        CHECK((o.inject && o.vector == kVectorGp));
        CHECK(l1.vmcb01->save.lstar == 0xABCD);
        CHECK(l1.vcpu.ops->in_guest_mode(l1.vcpu));
    }
    l1.state.rax() = kL2Area;  // the same page below 2^48 is fine
    REQUIRE(carries_on(l1.l2_exit(ExitKind::virtualization_instruction, 0x83, 3)));
    CHECK(l1.host.vmcb_at(kL1Area).save.lstar == 0xABCD);
}

// #MC stays with L0 even when L1 intercepts it: an L2 #MC exit is not reflected, and a #MC the
// kernel's rule would raise for L2 is not turned into a #VMEXIT either.
TEST_CASE("nested_svm_wiring.machine_check_is_never_reflected_to_l1") {
    constexpr u8 kVectorMc = 18;
    L1Fixture l1;
    l1.host.vmcb_at(kVmcb12).control.intercept_exceptions = (1u << kVectorMc) | (1u << kVectorGp);
    REQUIRE(carries_on(l1.vmrun()));
    CHECK((l1.vmcb02->control.intercept_exceptions & (1u << kVectorMc)) == 0);
    l1.state.rip = 0x3000;
    l1.vmcb02->control.exit_code = 0x40 + kVectorMc;
    nested::Decision d = l1.vcpu.guest_exit(l1.vcpu, VmExit{}, l1.state);
    CHECK(d.action == nested::Action::not_nested);
    CHECK(l1.vcpu.ops->in_guest_mode(l1.vcpu));
    d = l1.vcpu.ops->exception_for_l2(l1.vcpu, kVectorMc, false, 0, l1.state);
    CHECK(d.action == nested::Action::not_nested);
    CHECK(l1.vcpu.ops->in_guest_mode(l1.vcpu));
    CHECK(l1.host.vmcb_at(kVmcb12).control.exit_code != 0x40 + kVectorMc);
    // #GP, which L1 intercepts too, still is L1's.
    d = l1.vcpu.ops->exception_for_l2(l1.vcpu, kVectorGp, true, 0, l1.state);
    CHECK(d.action == nested::Action::resume);
    CHECK_FALSE(l1.vcpu.ops->in_guest_mode(l1.vcpu));
    CHECK(l1.host.vmcb_at(kVmcb12).control.exit_code == 0x40 + kVectorGp);
}
