// The exit handler's nested / non-nested decisions, with the real component linked.
#include <catch2/catch.hpp>
#include <string>

#include "nested_fixture.hpp"

using namespace nested_test;

namespace {

// A domain with nested virtualization on `cpu`, 16 MiB, one vCPU given to the environment.
struct NestedGuest : Guest {
    nested::NestedDomain domain;
    nested::NestedVcpu vcpu;
    explicit NestedGuest(const CpuFeatures& cpu) {
        REQUIRE(nested_domain_initialise(domain, cpu, 16u << 20).ok());
        REQUIRE(nested_vcpu_initialise(vcpu, domain).ok());
        env.nested = &vcpu;
    }
};

bool is_gp(const ExitOutcome& o) { return o.inject && o.vector == kVectorGp && o.has_error_code && o.error_code == 0; }
bool is_ud(const ExitOutcome& o) { return o.inject && o.vector == kVectorUd; }

// A table that records which hook the handler called.
std::string called;
nested::Decision record(const char* hook) {
    called = hook;
    return nested::Decision{nested::Action::complete, {0x1234}};
}
nested::NestedOps recording_ops() {
    nested::NestedOps ops{};
    ops.name = "recording";
    ops.virtualization_instruction = [](nested::NestedVcpu&, const VmExit&, VcpuState&) { return record("insn"); };
    ops.msr_read = [](nested::NestedVcpu&, u32, const VcpuState&) { return record("msr_read"); };
    ops.msr_write = [](nested::NestedVcpu&, u32, u64, const VcpuState&) { return record("msr_write"); };
    ops.cpuid = [](const nested::NestedVcpu&, u32, u32, CpuidValues& guest) {
        called = "cpuid";
        guest.edx = 0xABCD;
    };
    ops.in_guest_mode = [](const nested::NestedVcpu&) { return false; };
    ops.nested_page_fault = [](nested::NestedVcpu&, const NestedPageFaultExit&) { return record("npf"); };
    return ops;
}
const nested::NestedOps kRecordingOps = recording_ops();

}  // namespace

TEST_CASE("nested.cpuid_shows_svm_only_to_nested_domains") {
    Guest plain;
    CHECK((plain.cpuid(0x80000001).ecx & kCpuidExt1EcxSvm) == 0);
    CHECK(plain.cpuid(0x8000000A).edx == 0);
    NestedGuest l1(amd_cpu());
    CHECK((l1.cpuid(0x80000001).ecx & kCpuidExt1EcxSvm) != 0);
    CpuidValues svm = l1.cpuid(0x8000000A);
    CHECK(svm.eax == 1);
    CHECK(svm.ebx > 0);
    CHECK((svm.edx & 0x1) != 0);                    // NP
    CHECK((svm.edx & 0x8) != 0);                    // NRIPS
    CHECK((l1.cpuid(1).ecx & kCpuid1EcxVmx) == 0);  // no VMX on an AMD L1
    CHECK(l1.cpuid(0x40000000).ebx == kNestorSignatureEbx);
}

TEST_CASE("nested.cpuid_shows_vmx_only_to_nested_domains") {
    Guest plain;
    CHECK((plain.cpuid(1).ecx & kCpuid1EcxVmx) == 0);
    NestedGuest l1(intel_cpu());
    CHECK((l1.cpuid(1).ecx & kCpuid1EcxVmx) != 0);
    CHECK((l1.cpuid(0x80000001).ecx & kCpuidExt1EcxSvm) == 0);
}

TEST_CASE("nested.virtualization_msrs_gp_without_nested") {
    for (u32 index : kVirtualizationMsrs) {
        INFO("MSR " << std::hex << index);
        Guest plain;
        CHECK(is_virtualization_msr(index));
        CHECK(is_gp(plain.run(msr_write(index, 0))));
        CHECK(plain.state.rip == 0x1000);
        if (index == kMsrFeatureControl) continue;
        CHECK(is_gp(plain.run(msr_read(index))));
    }
    CHECK_FALSE(is_virtualization_msr(kMsrBiosSignId));
}

TEST_CASE("nested.feature_control_reads_locked_without_vmx") {
    Guest plain;
    plain.state.rax() = plain.state.rdx() = 0xFFFF;
    ExitOutcome o = plain.run(msr_read(kMsrFeatureControl));
    CHECK_FALSE(o.inject);
    CHECK(plain.state.rax() == 1);  // LOCK set, VMXON inside/outside SMX clear
    CHECK(plain.state.rdx() == 0);
    CHECK(plain.state.rip == 0x1002);
    CHECK(is_gp(plain.run(msr_write(kMsrFeatureControl, 5))));
}

TEST_CASE("nested.svm_instructions_ud_without_nested") {
    for (u64 code : {0x80, 0x82, 0x83, 0x84, 0x85, 0x86, 0x7A}) {
        Guest plain;
        ExitOutcome o = plain.run(instruction(code));
        CHECK(is_ud(o));
        CHECK_FALSE(o.stop);
        CHECK(plain.state.rip == 0x1000);
    }
}

TEST_CASE("nested.vmx_instructions_ud_without_nested") {
    for (u64 reason : {19, 20, 21, 22, 23, 24, 25, 26, 27, 50, 53, 59}) {
        Guest plain;
        CHECK(is_ud(plain.run(instruction(reason))));
    }
}

TEST_CASE("nested.table_is_called_only_for_nested_domains") {
    nested::NestedVcpu vcpu;
    vcpu.ops = &kRecordingOps;
    Guest g;
    g.env.nested = &vcpu;
    called.clear();
    CHECK_FALSE(g.run(instruction(0x80)).inject);
    CHECK(called == "insn");
    CHECK(g.state.rip == 0x1003);  // complete: stepped over
    g.run(msr_read(0xC0010117));
    CHECK(called == "msr_read");
    CHECK(g.state.rax() == 0x1234);
    g.run(msr_write(0xC0010117, 0));
    CHECK(called == "msr_write");
    CHECK(g.cpuid(1).edx == 0xABCD);
    CHECK(called == "cpuid");
    VmExit npf{};
    npf.kind = ExitKind::nested_page_fault;
    g.run(npf);
    CHECK(called == "npf");

    Guest plain;  // no nested vCPU: the same exits never reach a table
    called.clear();
    plain.run(instruction(0x80));
    plain.run(msr_read(0xC0010117));
    plain.cpuid(1);
    CHECK(called.empty());
}

TEST_CASE("nested.vmrun_is_ud_until_l1_sets_efer_svme") {
    NestedGuest l1(amd_cpu());
    CHECK(is_ud(l1.run(instruction(0x80))));
    l1.state.mode = CpuMode::real16;
    l1.run(msr_write(kMsrEfer, kEferSvme));
    CHECK(is_ud(l1.run(instruction(0x80))));  // real mode: #UD as on the CPU
}

// Without the backend's context or the kernel's Host (nested_svm_wiring tests have both), VMRUN
// and VMLOAD / VMSAVE stop the domain with a report; STGI, CLGI and INVLPGA need neither.
TEST_CASE("nested.svm_instructions_with_svme") {
    const std::pair<u64, const char*> stops[] = {
        {0x80, "nested SVM: this backend cannot run an L2"},
        {0x82, "nested SVM: no memory for L1's nested state"},
        {0x83, "nested SVM: no memory for L1's nested state"},
    };
    for (const auto& [code, report] : stops) {
        NestedGuest l1(amd_cpu());
        REQUIRE_FALSE(l1.run(msr_write(kMsrEfer, kEferSvme)).inject);
        ExitOutcome o = l1.run(instruction(code));
        CHECK(o.stop);
        CHECK(o.reason == StopReason::unsupported);
        CHECK(o.status != 0);
        REQUIRE(o.detail != nullptr);
        CHECK(std::string(o.detail) == report);
    }
    for (u64 code : {u64{0x84}, u64{0x85}, u64{0x7A}}) {
        NestedGuest l1(amd_cpu());
        l1.run(msr_write(kMsrEfer, kEferSvme));
        u64 rip = l1.state.rip;
        ExitOutcome o = l1.run(instruction(code));
        CHECK_FALSE(o.stop);
        CHECK_FALSE(o.inject);
        CHECK(l1.state.rip == rip + 3);
    }
    NestedGuest l1(amd_cpu());
    l1.run(msr_write(kMsrEfer, kEferSvme));
    CHECK(is_ud(l1.run(instruction(0x86))));  // SKINIT is not offered
}

TEST_CASE("nested.efer_svme_belongs_to_the_component") {
    NestedGuest l1(amd_cpu());
    l1.state.efer = kEferLma | (u64{1} << 8);
    CHECK_FALSE(l1.run(msr_write(kMsrEfer, kEferLma | (u64{1} << 8) | kEferSvme | (u64{1} << 11))).inject);
    CHECK(l1.state.efer == (kEferLma | (u64{1} << 8) | (u64{1} << 11)));  // the kernel's part, without SVME
    l1.run(msr_read(kMsrEfer));
    CHECK(l1.state.rax() == (kEferLma | (u64{1} << 8) | (u64{1} << 11) | kEferSvme));
    // A write the kernel refuses changes nothing, SVME included.
    NestedGuest other(amd_cpu());
    CHECK(is_gp(other.run(msr_write(kMsrEfer, kEferSvme | (u64{1} << 63)))));
    other.run(msr_read(kMsrEfer));
    CHECK((other.state.rax() & kEferSvme) == 0);
    // Without nested virtualization SVME is not offered.
    Guest plain;
    CHECK(is_gp(plain.run(msr_write(kMsrEfer, kEferSvme))));
}

TEST_CASE("nested.hsave_pa_must_be_a_page_of_l1_memory") {
    NestedGuest l1(amd_cpu());
    CHECK(is_gp(l1.run(msr_write(kMsrVmHsavePa, 0x5008))));     // not page aligned
    CHECK(is_gp(l1.run(msr_write(kMsrVmHsavePa, 16u << 20))));  // past the end of its memory
    CHECK(is_gp(l1.run(msr_write(kMsrVmHsavePa, u64{1} << 63))));
    CHECK_FALSE(l1.run(msr_write(kMsrVmHsavePa, (16u << 20) - 0x1000)).inject);
    l1.run(msr_read(kMsrVmHsavePa));
    CHECK(l1.state.rax() == (16u << 20) - 0x1000);
}

TEST_CASE("nested.vm_cr_reads_svm_enabled_and_unlocked") {
    NestedGuest l1(amd_cpu());
    l1.state.rax() = 0xFFFF;
    CHECK_FALSE(l1.run(msr_read(kMsrVmCr)).inject);
    CHECK(l1.state.rax() == 0);                          // SVMDIS and LOCK clear
    CHECK(is_gp(l1.run(msr_write(kMsrVmCr, 1u << 4))));  // SVMDIS
    CHECK(is_gp(l1.run(msr_write(kMsrVmCr, 1u << 3))));  // LOCK
    CHECK_FALSE(l1.run(msr_write(kMsrVmCr, 1u << 1)).inject);
    l1.run(msr_read(kMsrVmCr));
    CHECK(l1.state.rax() == 2);
    CHECK(is_gp(l1.run(msr_read(0x480))));  // no VMX capability MSRs on an AMD L1
}

// The instructions themselves: unit.nested_vmx.* (with a fake VMX backend).
TEST_CASE("nested.vmx_instructions_without_a_backend_context_stop_the_domain") {
    NestedGuest l1(intel_cpu());
    ExitOutcome o = l1.run(instruction(27, 4));
    CHECK(o.stop);
    REQUIRE(o.detail != nullptr);
    CHECK(std::string(o.detail) == "nested VMX: the backend lent no VMX context for this vCPU");
    NestedGuest l1b(intel_cpu());
    l1b.state.mode = CpuMode::real16;
    CHECK(is_ud(l1b.run(instruction(27, 4))));
    NestedGuest l1c(intel_cpu());
    CHECK(is_ud(l1c.run(instruction(59, 3))));  // VMFUNC
}

TEST_CASE("nested.vmx_feature_control_and_capability_msrs") {
    NestedGuest l1(intel_cpu());
    CHECK_FALSE(l1.run(msr_read(kMsrFeatureControl)).inject);
    CHECK(l1.state.rax() == 5);  // locked, VMXON outside SMX allowed
    CHECK(is_gp(l1.run(msr_write(kMsrFeatureControl, 5))));
    CHECK(is_gp(l1.run(msr_write(0x480, 0))));
    // The values (unit.nested_vmx.capability_msrs_come_from_the_table) need the backend's L0
    // controls, which this vCPU was not lent.
    ExitOutcome o = l1.run(msr_read(0x480));
    CHECK(o.stop);
    REQUIRE(o.detail != nullptr);
    CHECK(std::string(o.detail) == "nested VMX: the backend lent no VMX context for this vCPU");
    NestedGuest l1b(intel_cpu());
    CHECK(is_gp(l1b.run(msr_write(kMsrVmHsavePa, 0x5000))));  // no SVM MSRs on an Intel L1
    CHECK(is_gp(l1b.run(msr_write(kMsrEfer, kEferSvme))));
}

TEST_CASE("nested.npf_outside_guest_mode_is_the_kernels") {
    NestedGuest l1(amd_cpu());
    VmExit npf{};
    npf.kind = ExitKind::nested_page_fault;
    npf.npf = NestedPageFaultExit{0x2000000, MemoryAccess::read, false};
    ExitOutcome o = l1.run(npf);
    CHECK(o.stop);
    CHECK(o.reason == StopReason::bad_memory_access);
}

TEST_CASE("nested.other_msrs_follow_the_kernel_rule") {
    NestedGuest l1(amd_cpu());
    CHECK_FALSE(l1.run(msr_read(kMsrBiosSignId)).inject);
    CHECK(is_gp(l1.run(msr_read(0x1B))));  // APIC base: not in the allow-list
}

namespace {

// A vCPU in guest mode whose component answers every L2 exit with `answer`, counting the calls.
nested::Action answer = nested::Action::resume;
int guest_exits = 0;
nested::Decision answer_guest_exit(nested::NestedVcpu&, const VmExit&, VcpuState&) {
    ++guest_exits;
    return nested::Decision{answer, {}};
}

}  // namespace

TEST_CASE("nested.guest_exit_handler_judges_l2_exits_first") {
    nested::NestedVcpu vcpu;
    vcpu.ops = &kRecordingOps;
    Guest g;
    g.env.nested = &vcpu;
    VmExit cpuid{};
    cpuid.kind = ExitKind::cpuid;
    cpuid.instruction_length = 2;
    g.state.rax() = 1;

    // Not in guest mode (no handler lent): the kernel's rule with the table's hooks, as for L1.
    called.clear();
    guest_exits = 0;
    g.run(cpuid);
    CHECK(called == "cpuid");
    CHECK(guest_exits == 0);
    CHECK(g.state.rip == 0x1002);

    // In guest mode: the component's handler first. A reflected exit (resume) is all there is:
    // no kernel rule, no table hook, the state as the component left it.
    vcpu.guest_exit = answer_guest_exit;
    answer = nested::Action::resume;
    called.clear();
    g.state.rax() = 1;
    ExitOutcome o = g.run(cpuid);
    CHECK(guest_exits == 1);
    CHECK(called.empty());
    CHECK_FALSE(o.stop);
    CHECK_FALSE(o.inject);
    CHECK(g.state.rip == 0x1002);
    CHECK(g.state.rax() == 1);

    // An exit that is L0's (not_nested): the kernel's rule for it, applied to L2's state.
    answer = nested::Action::not_nested;
    g.run(cpuid);
    CHECK(guest_exits == 2);
    CHECK(called == "cpuid");
    CHECK(g.state.rip == 0x1004);

    // Any other decision is applied as the component's: #UD for L2, nothing stepped over.
    answer = nested::Action::inject_ud;
    called.clear();
    CHECK(is_ud(g.run(cpuid)));
    CHECK(guest_exits == 3);
    CHECK(called.empty());
    CHECK(g.state.rip == 0x1004);
}
