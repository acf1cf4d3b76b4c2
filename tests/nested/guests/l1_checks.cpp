// VMRUN's consistency checks, one at a time: starting each time from a VMCB that runs, L1 breaks
// one field and VMRUN must give VMEXIT_INVALID (exit code -1), writing nothing of the VMCB but
// EXITCODE, EXITINFO1 and EXITINFO2. At the end the good VMCB must still run L2. The names are
// those of the component's CheckFailure (components/nested/svm/vmrun_check.hpp);
// nested_paging_not_offered cannot happen (Nestor offers nested paging), so the nested-paging
// checks run with NP enabled instead.
#include "l1_common.hpp"

using namespace l1;

extern "C" char l2_checks_entry[];
asm(R"(
    .pushsection .text
    .globl l2_checks_entry
l2_checks_entry:
    mov $0x600d, %eax
    vmmcall
1:  hlt
    jmp 1b
    .popsection
)");

namespace {

alignas(4096) svm::Vmcb good;
alignas(4096) svm::Vmcb vmcb;
alignas(4096) svm::Vmcb expected;
alignas(4096) u8 msrpm[svm::kMsrpmBytes];
alignas(4096) u64 nested_root[512];  // an empty nested page table: VMRUN only checks where it is
L2Stack l2_stack;

constexpr u64 bit(unsigned n) { return u64{1} << n; }

// Nested paging as L1 would enable it, with a root in its RAM.
void enable_nested_paging(svm::Vmcb& v) {
    v.control.nested_control = svm::kNestedPagingEnable;
    v.control.nested_cr3 = reinterpret_cast<u64>(nested_root);
}

struct Breaker {
    const char* name;
    void (*apply)(svm::Vmcb&);
};

const Breaker kBreakers[] = {
    {"vmrun_not_intercepted", [](svm::Vmcb& v) { v.control.intercept_misc2 &= ~svm::intercept2::vmrun; }},
    {"asid_zero", [](svm::Vmcb& v) { v.control.guest_asid = 0; }},
    {"efer_svme_clear", [](svm::Vmcb& v) { v.save.efer &= ~svm::kEferSvme; }},
    {"cr0_nw_without_cd", [](svm::Vmcb& v) { v.save.cr0 = (v.save.cr0 | svm::kCr0Nw) & ~svm::kCr0Cd; }},
    {"cr0_high_bits", [](svm::Vmcb& v) { v.save.cr0 |= bit(32); }},
    {"cr3_mbz", [](svm::Vmcb& v) { v.save.cr3 |= bit(52); }},
    {"cr4_mbz", [](svm::Vmcb& v) { v.save.cr4 |= bit(15); }},
    {"dr6_high_bits", [](svm::Vmcb& v) { v.save.dr6 |= bit(32); }},
    {"dr7_high_bits", [](svm::Vmcb& v) { v.save.dr7 |= bit(32); }},
    {"efer_mbz", [](svm::Vmcb& v) { v.save.efer |= bit(1); }},
    {"long_mode_without_pae", [](svm::Vmcb& v) { v.save.cr4 &= ~svm::kCr4Pae; }},
    {"long_mode_without_pe", [](svm::Vmcb& v) { v.save.cr0 &= ~svm::kCr0Pe; }},
    {"long_mode_cs_l_and_d", [](svm::Vmcb& v) { v.save.cs.attrib |= svm::attrib::default32; }},
    {"event_inject_type", [](svm::Vmcb& v) { v.control.event_inject = svm::event::make(0x20, 1); }},
    {"event_inject_vector",
     [](svm::Vmcb& v) { v.control.event_inject = svm::event::make(0x20, svm::event::type_exception); }},
    {"msrpm_outside_l1_ram",
     [](svm::Vmcb& v) {
         // The 8 KiB map starts in the last page of L1's RAM and ends beyond it.
         v.control.intercept_misc1 |= svm::intercept1::msr_prot;
         v.control.msrpm_base_pa = memory_end() - 4096;
     }},
    {"iopm_outside_l1_ram",
     [](svm::Vmcb& v) {
         v.control.intercept_misc1 |= svm::intercept1::ioio_prot;
         v.control.iopm_base_pa = memory_end() - 2 * 4096;
     }},
    {"nested_cr3_mbz",
     [](svm::Vmcb& v) {
         enable_nested_paging(v);
         v.control.nested_cr3 |= bit(52);
     }},
    {"nested_cr3_outside_l1_ram",
     [](svm::Vmcb& v) {
         enable_nested_paging(v);
         v.control.nested_cr3 = memory_end();
     }},
    {"gpat_invalid",
     [](svm::Vmcb& v) {
         enable_nested_paging(v);
         v.save.g_pat = (svm::kResetPat & ~u64{0xFF}) | 2;  // type 2 is reserved
     }},
};

// Everything but EXITCODE, EXITINFO1 and EXITINFO2 (0x070..0x087) as it was before the VMRUN.
bool only_exit_fields_written() {
    constexpr u64 kFirst = __builtin_offsetof(svm::VmcbControl, exit_code);
    constexpr u64 kEnd = __builtin_offsetof(svm::VmcbControl, exit_int_info);
    const u8* a = reinterpret_cast<const u8*>(&vmcb);
    const u8* b = reinterpret_cast<const u8*>(&expected);
    for (u64 i = 0; i < sizeof(svm::Vmcb); ++i)
        if ((i < kFirst || i >= kEnd) && a[i] != b[i]) return false;
    return vmcb.control.exit_info_1 == 0 && vmcb.control.exit_info_2 == 0;
}

bool try_breaker(const Breaker& breaker) {
    vmcb = good;
    breaker.apply(vmcb);
    vmcb.control.exit_code = 0x1234;  // so that a VMRUN writing nothing is seen
    expected = vmcb;
    u64 code = run(vmcb);
    bool unchanged = only_exit_fields_written();
    println("check ", breaker.name, ": exit code ", static_cast<i64>(code),
            unchanged ? "" : ", and fields other than the exit's changed");
    return code == svm::exit_code::invalid && unchanged;
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    enable_svm();
    set_up_l2(good, l2_checks_entry, l2_stack);
    // The maps' own checks need a VMCB that uses them; the good one uses an MSRPM in L1's RAM.
    good.control.intercept_misc1 = svm::intercept1::msr_prot;
    good.control.msrpm_base_pa = reinterpret_cast<u64>(msrpm);

    u32 failed = 0;
    for (const Breaker& breaker : kBreakers)
        if (!try_breaker(breaker)) ++failed;

    vmcb = good;
    u64 code = run(vmcb);
    bool ran = code == svm::exit_code::vmmcall && vmcb.save.rax == 0x600d;
    println("good vmcb after ", sizeof(kBreakers) / sizeof(kBreakers[0]), " checks: exit ", hex(code, 1),
            ran ? ", L2 ran" : ", L2 did not run");
    return failed == 0 && ran ? 0 : 1;
}
