// The shadow NPT as the kernel drives it (nested_svm.cpp): vmcb02's nested page faults through
// reflect_exit, fixed up or reflected to L1, the stale-shadow restart, a stop when L1's NPT leaves
// its memory, and every frame given back when the domain dies while L2 runs.
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
constexpr u64 kEmptyRoot = FakeNestedHardware::kEmptyNptRoot;
// L1's NPT (present, writable, user tables) and what it maps.
constexpr u64 kPml4 = 0x40000, kPdpt = 0x41000, kPd = 0x42000, kPt = 0x43000;
constexpr u64 kTable = 0x7;
constexpr u64 kNx = u64{1} << 63;
constexpr u64 kRead = u64{1} << 32 | 0x4, kFetch = kRead | 0x10;  // vmcb02's EXITINFO1: user, final
using nestor::x86_regs::kEferNxe;

using FakeHost = FakeNestedHost;

// An L1 in long mode whose vmcb12 gives L2 nested paging through L1's NPT at kPml4, which maps
// L2-physical page p (below 2 MiB) with the leaf put at kPt + p * 8.
struct NptL1 : Guest, FakeNestedHardware {
    FakeHost host;
    nested::NestedDomain domain;
    nested::NestedVcpu vcpu;
    bool destroyed = false;

    explicit NptL1(bool l1_nxe = false, bool l2_nxe = false) {
        REQUIRE(nested_domain_initialise(domain, amd_cpu(), kL1Bytes).ok());
        vcpu.host = &host;
        vcpu.hardware = handle();
        REQUIRE(nested_vcpu_initialise(vcpu, domain).ok());
        env.nested = &vcpu;
        state.rip = 0x1000;
        state.mode = CpuMode::long64;
        state.efer = (u64{1} << 8) | (u64{1} << 10) | (l1_nxe ? kEferNxe : 0);
        state.reg(Gpr::rsp) = 0x7000;
        REQUIRE_FALSE(run(msr_write(0xC0000080, state.efer | kEferSvme)).inject);
        state.rip = 0x1000;
        host.put(kPml4, kPdpt | kTable);
        host.put(kPdpt, kPd | kTable);
        host.put(kPd, kPt | kTable);
        Vmcb& v = host.vmcb_at(kVmcb12);
        v.control.intercept_misc1 = (1u << 18) | (1u << 24);  // CPUID, HLT
        v.control.intercept_misc2 = 1;                        // VMRUN
        v.control.guest_asid = 1;
        v.control.nested_control = 1;
        v.control.nested_cr3 = kPml4;
        v.save.efer = (u64{1} << 8) | (u64{1} << 10) | kEferSvme | (l2_nxe ? kEferNxe : 0);
        v.save.cr0 = 0x80000011;
        v.save.cr4 = 0x20;
        v.save.cr3 = 0x1000;
        v.save.cs = {0x8, 0xA9B, 0xFFFFFFFF, 0};
        v.save.rflags = 2;
        v.save.rip = 0x3000;
        v.save.rsp = 0x4000;
        v.save.g_pat = 0x0007040600070406;
    }
    ~NptL1() {
        if (!destroyed) nested_vcpu_destroy(vcpu);
        nested_domain_teardown(domain);
    }
    void map(u64 l2_page, u64 l1_page, u64 rights = kTable) { host.put(kPt + (l2_page >> 12) * 8, l1_page | rights); }
    ExitOutcome vmrun() {
        state.rax() = kVmcb12;
        return run(instruction(0x80, 3));
    }
    // vmcb02's #NPF as the backend reports it.
    ExitOutcome npf(u64 l2_physical, u64 info_1) {
        vmcb02->control.exit_code = 0x400;
        vmcb02->control.exit_info_1 = info_1;
        vmcb02->control.exit_info_2 = l2_physical;
        vmcb02->control.tlb_control = 0;
        VmExit exit{};
        exit.kind = ExitKind::nested_page_fault;
        exit.vendor_code = 0x400;
        exit.npf.guest_physical = l2_physical;
        return run(exit);
    }
    // Any other exit of vmcb02 (an instruction: its length).
    ExitOutcome l2_exit(ExitKind kind, u64 code, u8 length) {
        vmcb02->control.exit_code = code;
        vmcb02->control.tlb_control = 0;
        VmExit exit{};
        exit.kind = kind;
        exit.vendor_code = code;
        exit.instruction_length = length;
        return run(exit);
    }
    // L0 unmaps part of L1, as the backend sees it at the vCPU's next entry: a new generation,
    // and vmcb02, when it is on a shadow, moved to the empty root and flagged.
    void unmap() {
        ++mapping_generation;
        hw.l0_unmapped();
    }
    bool in_l2() { return vcpu.ops->in_guest_mode(vcpu); }
    // The entries of the table at `frame` that are present.
    int present_entries(paddr frame) {
        const u64* entries = static_cast<const u64*>(host.pointer(frame));
        int n = 0;
        for (int i = 0; i < 512; ++i) n += (entries[i] & 1) != 0;
        return n;
    }
};

bool carries_on(const ExitOutcome& o) { return !o.stop && !o.inject && !o.wait; }

}  // namespace

TEST_CASE("nested_svm_shadow_wiring.l2_npf_fixed_up_or_reflected") {
    NptL1 l1;
    l1.map(0x3000, 0x60000);
    REQUIRE(carries_on(l1.vmrun()));
    REQUIRE(l1.in_l2());
    paddr root = l1.vmcb02->control.nested_cr3;
    CHECK(root != 0x8000);  // the shadow, never L0's tables of L1 nor L1's own root
    CHECK(root != kPml4);
    // Mapped by L1: L0 installs the entry, flushes L2's ASID and L2 runs on.
    l1.state.rip = 0x3000;
    REQUIRE(carries_on(l1.npf(0x3000, kFetch)));
    CHECK(l1.in_l2());
    CHECK(l1.state.rip == 0x3000);
    CHECK(l1.vmcb02->control.nested_cr3 == root);
    CHECK(l1.vmcb02->control.tlb_control == nestor::x86::svm::kTlbControlFlushAll);
    // Not mapped by L1: #VMEXIT(NPF) into L1 with the error code and the L2-physical address.
    REQUIRE(carries_on(l1.npf(0x5000, kRead)));
    CHECK_FALSE(l1.in_l2());
    const Vmcb& v = l1.host.vmcb_at(kVmcb12);
    CHECK(v.control.exit_code == 0x400);
    CHECK(v.control.exit_info_1 == kRead);
    CHECK(v.control.exit_info_2 == 0x5000);
    CHECK(l1.state.rip == 0x1003);
}

// After a fault, the wiring gives vmcb02 the shadow's root again (it may have started over): that
// must keep L1's NXE, not take vmcb12's (L2's), or bit 63 of L1's entries changes meaning.
TEST_CASE("nested_svm_shadow_wiring.faults_keep_l1s_nxe") {
    NptL1 l1(true, false);
    l1.map(0x3000, 0x60000);
    l1.map(0x4000, 0x61000, kTable | kNx);
    REQUIRE(carries_on(l1.vmrun()));
    REQUIRE(carries_on(l1.npf(0x3000, kFetch)));
    REQUIRE(l1.in_l2());
    REQUIRE(carries_on(l1.npf(0x4000, kFetch)));
    CHECK_FALSE(l1.in_l2());
    const Vmcb& v = l1.host.vmcb_at(kVmcb12);
    CHECK(v.control.exit_code == 0x400);
    CHECK(v.control.exit_info_1 == (kFetch | 0x1));  // present: a rights fault, no reserved bit
    CHECK(v.control.exit_info_2 == 0x4000);
}

TEST_CASE("nested_svm_shadow_wiring.npt_outside_l1_memory_stops_the_domain") {
    NptL1 l1;
    l1.map(0x3000, kL1Bytes);  // past L1's memory
    REQUIRE(carries_on(l1.vmrun()));
    ExitOutcome o = l1.npf(0x3000, kRead);
    CHECK(o.stop);
    REQUIRE(o.detail != nullptr);
    CHECK(std::strcmp(o.detail, "nested SVM: L1's nested page table sends L2 outside L1's memory") == 0);
    NptL1 table_outside;
    table_outside.host.put(kPd, kL1Bytes | kTable);  // L1's page table past its memory
    REQUIRE(carries_on(table_outside.vmrun()));
    o = table_outside.npf(0x3000, kRead);
    CHECK(o.stop);
    REQUIRE(o.detail != nullptr);
    CHECK(std::strcmp(o.detail, "nested SVM: L1's nested page table is not in L1's memory") == 0);
}

// L0 unmapped part of L1 while L2 ran (the backend put vmcb02 on the empty root and flagged it):
// at the next L2 exit the shadow starts over on a fresh root, L2's ASID flushed.
TEST_CASE("nested_svm_shadow_wiring.stale_shadow_restarts_at_the_next_exit") {
    NptL1 l1;
    l1.map(0x3000, 0x60000);
    REQUIRE(carries_on(l1.vmrun()));
    REQUIRE(carries_on(l1.npf(0x3000, kFetch)));
    usize live_before = l1.host.live.size();
    l1.unmap();
    REQUIRE(l1.vmcb02->control.nested_cr3 == kEmptyRoot);
    REQUIRE(carries_on(l1.npf(0x3000, kFetch)));  // L2's fault on the empty root
    CHECK_FALSE(l1.hw.shadow_flagged());
    CHECK(l1.in_l2());
    CHECK(l1.vmcb02->control.nested_cr3 != kEmptyRoot);
    CHECK(l1.vmcb02->control.tlb_control == nestor::x86::svm::kTlbControlFlushAll);
    CHECK(l1.host.live.size() == live_before);  // the old tables went, as many new ones came
}

// The backend's news of an unmap while vmcb02 runs on a shadow is taken once: the shadow starts
// over at the next L2 exit and not again at the one after. Nothing is stale while vmcb02 runs on
// L0's tables of L1, nor once enter_l2 has taken a vmcb02 built after the unmap.
TEST_CASE("nested_svm_shadow_wiring.a_stale_shadow_is_taken_exactly_once") {
    NptL1 l1;
    l1.map(0x3000, 0x60000);
    l1.map(0x4000, 0x61000);
    REQUIRE(carries_on(l1.vmrun()));
    REQUIRE(carries_on(l1.npf(0x3000, kFetch)));
    paddr first = l1.vmcb02->control.nested_cr3;
    l1.unmap();
    REQUIRE(l1.hw.shadow_flagged());
    REQUIRE(carries_on(l1.npf(0x3000, kFetch)));
    CHECK_FALSE(l1.hw.shadow_flagged());
    paddr second = l1.vmcb02->control.nested_cr3;
    CHECK(second != first);
    CHECK(l1.host.is_live(second));
    REQUIRE(carries_on(l1.npf(0x4000, kRead)));
    CHECK(l1.vmcb02->control.nested_cr3 == second);  // not started over again
    CHECK(l1.present_entries(second) == 1);          // the PML4 entry of the shadow's 0x3000 stays

    FakeNestedHardware other;
    other.vmcb02->control.nested_cr3 = other.vmcb01->control.nested_cr3;  // L0's tables of L1
    other.hw.l0_unmapped();
    CHECK_FALSE(other.hw.take_stale_shadow());
    other.vmcb02->control.nested_cr3 = 0x123000;  // a shadow
    other.hw.l0_unmapped();
    CHECK(other.vmcb02->control.nested_cr3 == kEmptyRoot);
    VcpuState state{};
    other.hw.enter_l2(state);
    CHECK_FALSE(other.hw.take_stale_shadow());
    other.vmcb02->control.nested_cr3 = 0x123000;
    other.hw.l0_unmapped();
    CHECK(other.hw.take_stale_shadow());
    CHECK_FALSE(other.hw.take_stale_shadow());
}

// The domain dies in the middle of L2 (watchdog, triple fault, exit port): destroying the vCPU
// gives back the nested state and every shadow table, and leaves the backend on vmcb01.
TEST_CASE("nested_svm_shadow_wiring.destroy_during_l2_releases_everything") {
    NptL1 l1;
    for (u64 page = 0x3000; page < 0x10000; page += 0x1000) l1.map(page, 0x60000 + page);
    REQUIRE(carries_on(l1.vmrun()));
    for (u64 page = 0x3000; page < 0x10000; page += 0x1000) REQUIRE(carries_on(l1.npf(page, kRead)));
    REQUIRE(l1.in_l2());
    CHECK(l1.host.live.size() > 4);  // the per-vCPU block and the shadow's four levels at least
    nested_vcpu_destroy(l1.vcpu);
    l1.destroyed = true;
    CHECK(l1.host.live.empty());
    CHECK_FALSE(l1.hw.running_l2());
}

// The CPU clears EVENTINJ.V in the VMCB at every #VMEXIT (an event it could not deliver is in
// EXITINTINFO instead): an L1 that resumes L2 without touching EVENTINJ must not inject the same
// event twice. Found by the boot test nested_npt.event_delivery_survives_npt_faults.
TEST_CASE("nested_svm_shadow_wiring.vmexit_clears_eventinj_valid") {
    constexpr u64 kEvent = (u64{1} << 31) | (3u << 8) | 6;  // #UD, an exception
    NptL1 l1;
    l1.map(0x3000, 0x60000);
    l1.host.vmcb_at(kVmcb12).control.event_inject = kEvent;
    REQUIRE(carries_on(l1.vmrun()));
    CHECK(l1.vmcb02->control.event_inject == kEvent);
    REQUIRE(carries_on(l1.npf(0x5000, kRead)));  // reflected: L1's NPT does not map it
    REQUIRE_FALSE(l1.in_l2());
    CHECK(l1.host.vmcb_at(kVmcb12).control.event_inject == (kEvent & ~(u64{1} << 31)));
    l1.state.rip = 0x1000;
    REQUIRE(carries_on(l1.vmrun()));
    CHECK((l1.vmcb02->control.event_inject & (u64{1} << 31)) == 0);  // nothing injected again
}

// L2's INVLPGA that L1 does not intercept starts the shadow over, and its tables go back to the
// kernel: vmcb02 must be on a live root by then (a fresh one, empty, with L2's ASID flushed),
// never on the freed one, which the kernel may already have given to someone else.
TEST_CASE("nested_svm_shadow_wiring.l2_invlpga_leaves_vmcb02_on_live_tables") {
    NptL1 l1;
    l1.map(0x3000, 0x60000);
    REQUIRE(carries_on(l1.vmrun()));
    REQUIRE(carries_on(l1.npf(0x3000, kFetch)));
    paddr old_root = l1.vmcb02->control.nested_cr3;
    REQUIRE(l1.host.is_live(old_root));
    REQUIRE(l1.present_entries(old_root) == 1);
    l1.state.rip = 0x3000;
    REQUIRE(carries_on(l1.l2_exit(ExitKind::virtualization_instruction, 0x7A, 3)));  // INVLPGA
    CHECK(l1.in_l2());
    CHECK(l1.state.rip == 0x3003);
    paddr root = l1.vmcb02->control.nested_cr3;
    CHECK_FALSE(l1.host.is_live(old_root));  // the old shadow went back (poisoned)
    CHECK(root != old_root);
    CHECK(l1.host.is_live(root));
    CHECK(l1.present_entries(root) == 0);
    CHECK(l1.vmcb02->control.tlb_control == nestor::x86::svm::kTlbControlFlushAll);
    // L2 faults on what it used and goes on.
    REQUIRE(carries_on(l1.npf(0x3000, kFetch)));
    CHECK(l1.in_l2());
    CHECK(l1.host.is_live(l1.vmcb02->control.nested_cr3));

    // L1's own INVLPGA, outside guest mode: vmcb02 does not run, but does not keep the freed root.
    REQUIRE(carries_on(l1.npf(0x5000, kRead)));  // not in L1's NPT: #VMEXIT(NPF) into L1
    REQUIRE_FALSE(l1.in_l2());
    l1.state.rip = 0x1000;
    REQUIRE(carries_on(l1.run(instruction(0x7A, 3))));
    CHECK(l1.vmcb02->control.nested_cr3 == kEmptyRoot);
    REQUIRE(carries_on(l1.vmrun()));
    CHECK(l1.host.is_live(l1.vmcb02->control.nested_cr3));
    CHECK(l1.vmcb02->control.tlb_control == nestor::x86::svm::kTlbControlFlushAll);
}

// L0 unmaps part of L1 between a #VMEXIT and L1's next VMRUN, with L1's nested CR3, NXE and
// TLB_CONTROL (0) unchanged: the shadow built before the unmap may have leaves to frames L1 no
// longer owns, so VMRUN must start it over, not put its old root back into vmcb02.
TEST_CASE("nested_svm_shadow_wiring.vmrun_after_an_unmap_starts_the_shadow_over") {
    NptL1 l1;
    l1.map(0x3000, 0x60000);
    REQUIRE(carries_on(l1.vmrun()));
    REQUIRE(carries_on(l1.npf(0x3000, kFetch)));
    paddr old_root = l1.vmcb02->control.nested_cr3;
    REQUIRE(l1.present_entries(old_root) == 1);
    l1.state.rip = 0x3000;
    REQUIRE(carries_on(l1.l2_exit(ExitKind::hlt, 0x78, 1)));  // L1 intercepts HLT
    REQUIRE_FALSE(l1.in_l2());
    REQUIRE(l1.host.vmcb_at(kVmcb12).control.tlb_control == 0);
    l1.unmap();
    l1.state.rip = 0x1000;
    REQUIRE(carries_on(l1.vmrun()));
    REQUIRE(l1.in_l2());
    paddr root = l1.vmcb02->control.nested_cr3;
    CHECK(root != old_root);
    CHECK_FALSE(l1.host.is_live(old_root));
    CHECK(l1.host.is_live(root));
    CHECK(l1.present_entries(root) == 0);  // nothing built before the unmap
    CHECK(l1.vmcb02->control.tlb_control == nestor::x86::svm::kTlbControlFlushAll);
    CHECK_FALSE(l1.hw.shadow_flagged());  // vmcb02 was built after the unmap: nothing to redo

    // With no unmap since, the next VMRUN keeps the shadow (and flushes nothing).
    REQUIRE(carries_on(l1.npf(0x3000, kFetch)));
    l1.state.rip = 0x3000;
    REQUIRE(carries_on(l1.l2_exit(ExitKind::hlt, 0x78, 1)));
    l1.state.rip = 0x1000;
    REQUIRE(carries_on(l1.vmrun()));
    CHECK(l1.vmcb02->control.nested_cr3 == root);
    CHECK(l1.present_entries(root) == 1);
}
