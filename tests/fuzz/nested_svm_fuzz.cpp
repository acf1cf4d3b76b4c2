// fuzz.nested_svm: random vmcb12 contents and random L1 nested page tables through the nested
// SVM core (VMRUN snapshot + checks, vmcb02 merge, exit routing, shadow NPT), asserting the
// invariants L0's safety rests on whatever L1 writes:
//  - a vmcb12 that fails a check changes nothing in vmcb12 but the exit fields;
//  - vmcb02 has L0's mandatory intercepts (VMRUN, VMLOAD, VMSAVE ... ) whatever L1 cleared;
//  - vmcb02's int_ctl holds only allow-listed bits; virt_ext is never L1's;
//  - vmcb02's ASID is never 0 nor L1's own; N_CR3 is L0's (shadow root or L0's tables of L1);
//  - every shadow leaf maps a page of L1 RAM (never MMIO, never outside L1);
//  - physical interrupts and NMIs are never reflected.
//
// Input: byte 0 picks fix-ups that make the vmcb12 more likely to pass (so the merge and the
// shadow get exercised), bytes 1..4096 are vmcb12, then 16-byte operations (see run_op).
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "fuzz_assert.hpp"
#include "nested_svm_fixture.hpp"

using namespace nested_svm_test;

namespace {

constexpr u64 kTableRegion = kNcr3;
constexpr u64 kTableRegionBytes = 0x40000;

void apply_fixups(u8 fixups, Vmcb& v) {
    if (fixups & 0x01) v.control.intercept_misc2 |= vmcb::intercept2::vmrun;
    if (fixups & 0x02) v.control.guest_asid |= 1;
    if (fixups & 0x04) v.control.iopm_base_pa = kIopm, v.control.msrpm_base_pa = kMsrpm;
    if (fixups & 0x08) v.control.nested_cr3 = kNcr3 | (v.control.nested_cr3 & 0xFFF);
    if (fixups & 0x10) v.control.event_inject &= ~arch::event::valid;
    if (fixups & 0x20) {
        Vmcb good = valid_vmcb12();
        v.save.efer = good.save.efer;
        v.save.cr0 = good.save.cr0;
        v.save.cr3 &= 0xFFFFFFFFF;
        v.save.cr4 = good.save.cr4;
        v.save.dr6 &= 0xFFFFFFFF;
        v.save.dr7 &= 0xFFFFFFFF;
        v.save.cs.attrib &= ~vmcb::attrib::default32;
        v.save.g_pat = good.save.g_pat;
    }
}

void check_vmcb02(const Machine& m) {
    const VmcbControl& c = m.vmcb02.control;
    FUZZ_ASSERT((c.intercept_misc1 & mandatory::misc1) == mandatory::misc1);
    FUZZ_ASSERT((c.intercept_misc2 & mandatory::misc2) == mandatory::misc2);
    FUZZ_ASSERT((c.intercept_misc2 & (vmcb::intercept2::vmload | vmcb::intercept2::vmsave)) ==
                (vmcb::intercept2::vmload | vmcb::intercept2::vmsave));
    FUZZ_ASSERT((c.intercept_exceptions & mandatory::exceptions) == mandatory::exceptions);
    FUZZ_ASSERT((c.int_ctl & ~kIntCtlFromL1) == 0);
    FUZZ_ASSERT(c.virt_ext == 0 && c.avic_backing_page == 0 && c.vmsa_pa == 0 && c.clean_bits == 0);
    FUZZ_ASSERT(c.guest_asid != 0 && c.guest_asid != kL1Asid && c.guest_asid == kL2Asid);
    FUZZ_ASSERT(c.nested_control == vmcb::kNestedPagingEnable);
    bool shadow_root = m.frames.tables.count(c.nested_cr3) == 1;
    FUZZ_ASSERT(shadow_root || c.nested_cr3 == l0_controls().l1_npt_root);
    FUZZ_ASSERT(c.iopm_base_pa == l0_controls().iopm_pa && c.msrpm_base_pa == l0_controls().msrpm_pa);
}

void check_shadow(Machine& m) {
    m.vcpu->shadow.for_each_leaf([&](u64, u64 entry) {
        u64 host = entry & arch::pte::address_mask;
        FUZZ_ASSERT(host >= FakeL1::kHostBase);
        u64 l1_physical = host - FakeL1::kHostBase;
        FUZZ_ASSERT(m.l1.is_ram(l1_physical));
        if (entry & arch::pte::writable) FUZZ_ASSERT(m.l1.page(l1_physical).writable);
    });
}

void check_refusal(const Vmcb& before, const Vmcb& after) {
    FUZZ_ASSERT(after.control.exit_code == vmcb::exit_code::invalid);
    Vmcb expected = before;
    expected.control.exit_code = after.control.exit_code;
    expected.control.exit_info_1 = after.control.exit_info_1;
    expected.control.exit_info_2 = after.control.exit_info_2;
    FUZZ_ASSERT(std::memcmp(&expected, &after, sizeof(Vmcb)) == 0);
}

void vmrun_and_check(Machine& m) {
    Vmcb before = m.vmcb12();
    VmrunOutcome out = m.vmrun();
    if (out.result == VmrunResult::entered) {
        check_vmcb02(m);
    } else if (out.result == VmrunResult::vmexit_invalid) {
        FUZZ_ASSERT(out.failure != CheckFailure::none);
        check_refusal(before, m.vmcb12());
    }
}

void route_and_check(Machine& m, u64 a, u64 b) {
    L2Exit exit{b & 0x4FF, a, b, 0, static_cast<u32>(a >> 32)};
    if (b & (u64{1} << 63)) exit.code = vmcb::exit_code::invalid;
    Route route = route_l2_exit(m.vcpu->snapshot, exit, m.l1);
    if (exit.code == vmcb::exit_code::intr || exit.code == vmcb::exit_code::nmi) FUZZ_ASSERT(route == Route::l0);
    if (exit.code == vmcb::exit_code::vmrun) FUZZ_ASSERT(route == Route::reflect || !m.vcpu->guest_mode);
}

// One operation: a & 3 says which; the rest of a and b are its operands.
void run_op(Machine& m, u64 a, u64 b) {
    switch (a & 3) {
    case 0: {  // L1 (another vCPU) writes its nested tables, at any time
        u64 offset = ((a >> 2) % kTableRegionBytes) & ~u64{7};
        m.l1.put<u64>(kTableRegion + offset, b);
        break;
    }
    case 1: {  // an L2 nested page fault
        if (!m.vcpu->guest_mode || !uses_nested_paging(m.vcpu->snapshot)) break;
        u64 access = (a >> 2) & (arch::npf_info::write | arch::npf_info::fetch);
        access |= arch::npf_info::user | ((a & 4) ? arch::npf_info::table_walk : arch::npf_info::final_address);
        ShadowResult r = m.vcpu->shadow.fault(m.l1, b & ((u64{1} << 49) - 1), access);
        if (r.outcome == ShadowOutcome::reflect_npf) FUZZ_ASSERT(r.exit_info_2 == (b & ((u64{1} << 49) - 1)));
        check_shadow(m);
        break;
    }
    case 2: route_and_check(m, a, b); break;
    default:  // 3: L1 VMRUNs again (perhaps with a changed vmcb12), or invalidates
        if (a & 4) {
            m.vcpu->shadow.drop_all();
        } else {
            Vmcb v = m.vmcb12();
            usize offset = (a >> 3) % (sizeof(Vmcb) / 8);
            std::memcpy(reinterpret_cast<u8*>(&v) + offset * 8, &b, 8);
            m.store(v);
            vmrun_and_check(m);
        }
        break;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1 + sizeof(Vmcb)) return 0;
    Machine m;
    L1Tables tables{m.l1};
    Vmcb v;
    std::memcpy(&v, data + 1, sizeof(Vmcb));
    apply_fixups(data[0], v);
    m.store(v);
    vmrun_and_check(m);
    for (size_t at = 1 + sizeof(Vmcb); at + 16 <= size; at += 16) {
        u64 a, b;
        std::memcpy(&a, data + at, 8);
        std::memcpy(&b, data + at + 8, 8);
        run_op(m, a, b);
    }
    check_shadow(m);
    m.vcpu.reset();
    FUZZ_ASSERT(m.frames.live() == 0);  // teardown frees everything, in whatever state
    return 0;
}
