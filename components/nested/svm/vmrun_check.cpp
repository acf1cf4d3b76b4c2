// VMRUN's snapshot and consistency checks (see vmrun_check.hpp for why the snapshot comes first).
#include "vmrun_check.hpp"

namespace nestor::nested::svm {

using namespace arch;
namespace intercept2 = x86::svm::intercept2;
namespace intercept1 = x86::svm::intercept1;

bool is_l1_ram(L1Memory& memory, u64 base, u64 bytes) {
    u64 end = 0;
    if (bytes == 0 || !checked_add(base, bytes - 1, end)) return false;
    // Usually one piece of L1's memory (one lookup); else page by page, across its pieces.
    if (memory.window(base, bytes, false)) return true;
    for (u64 page = align_down(base, kPageSize); page <= end; page += kPageSize) {
        if (!memory.page(page).ram) return false;
        if (page + kPageSize < page) break;  // the last page of the address space
    }
    return true;
}

namespace {

const char* const kCheckFailureNames[kCheckFailureCount] = {
    "none",
    "VMRUN intercept clear",
    "ASID zero",
    "EFER.SVME clear",
    "CR0.NW set with CR0.CD clear",
    "CR0[63:32] not zero",
    "CR3 MBZ bits set",
    "CR4 MBZ bits set",
    "DR6[63:32] not zero",
    "DR7[63:32] not zero",
    "EFER MBZ bits set",
    "EFER.LME and CR0.PG set with CR4.PAE clear",
    "EFER.LME and CR0.PG set with CR0.PE clear",
    "EFER.LME, CR0.PG, CR4.PAE, CS.L and CS.D all set",
    "EVENTINJ reserved type",
    "EVENTINJ exception vector that is not an exception",
    "MSRPM not in L1 RAM",
    "IOPM not in L1 RAM",
    "nested paging enabled but not offered",
    "N_CR3 MBZ bits set",
    "N_CR3 not in L1 RAM",
    "gPAT invalid memory type",
};

u64 bits_at_or_above(unsigned width) { return width >= 64 ? 0 : ~u64{0} << width; }

// --- the control area -------------------------------------------------------------------

CheckFailure check_event_inject(u64 event) {
    if (!(event & event::valid)) return CheckFailure::none;
    u64 type = (event & event::type_mask) >> event::type_shift;
    switch (type) {
    case event::type_intr:
    case event::type_nmi:
    case event::type_soft_int: return CheckFailure::none;
    case event::type_exception: break;
    default: return CheckFailure::event_inject_type;
    }
    u64 vector = event & event::vector_mask;
    if (vector >= 32 || !(kExceptionVectors & (1u << vector))) return CheckFailure::event_inject_vector;
    return CheckFailure::none;
}

// A permission map L1 uses (its intercept bit set) must be L1 RAM: the component reads it. One
// L1 does not use must still not extend beyond the physical address width (the CPU's rule).
bool permission_map_ok(L1Memory& memory, u64 base, u64 bytes, bool used, const L1Offer& offer) {
    if (used) return is_l1_ram(memory, base, bytes);
    u64 last = 0;
    return checked_add(base, bytes - 1, last) && (last & bits_at_or_above(offer.physical_address_bits)) == 0;
}

CheckFailure check_nested_paging(const VmcbControl& c, L1Memory& memory, const L1Offer& offer) {
    if (!(c.nested_control & x86::svm::kNestedPagingEnable)) return CheckFailure::none;
    if (!offer.nested_paging) return CheckFailure::nested_paging_not_offered;
    if (c.nested_cr3 & bits_at_or_above(offer.physical_address_bits)) return CheckFailure::nested_cr3_mbz;
    if (!is_l1_ram(memory, c.nested_cr3 & pte::address_mask, kPageSize)) return CheckFailure::nested_cr3_outside_l1_ram;
    return CheckFailure::none;
}

CheckFailure check_controls(const VmcbControl& c, L1Memory& memory, const L1Offer& offer) {
    if (!(c.intercept_misc2 & intercept2::vmrun)) return CheckFailure::vmrun_not_intercepted;
    if (c.guest_asid == 0) return CheckFailure::asid_zero;
    if (CheckFailure f = check_event_inject(c.event_inject); f != CheckFailure::none) return f;
    if (!permission_map_ok(memory, c.msrpm_base_pa, x86::svm::kMsrpmBytes, c.intercept_misc1 & intercept1::msr_prot,
                           offer))
        return CheckFailure::msrpm_outside_l1_ram;
    if (!permission_map_ok(memory, c.iopm_base_pa, x86::svm::kIopmBytes, c.intercept_misc1 & intercept1::ioio_prot,
                           offer))
        return CheckFailure::iopm_outside_l1_ram;
    return check_nested_paging(c, memory, offer);
}

// --- the save area -----------------------------------------------------------------------

CheckFailure check_long_mode(const VmcbSave& s) {
    if (!(s.efer & kEferLme) || !(s.cr0 & kCr0Pg)) return CheckFailure::none;
    if (!(s.cr4 & kCr4Pae)) return CheckFailure::long_mode_without_pae;
    if (!(s.cr0 & kCr0Pe)) return CheckFailure::long_mode_without_pe;
    if ((s.cs.attrib & x86::svm::attrib::long_mode) && (s.cs.attrib & x86::svm::attrib::default32))
        return CheckFailure::long_mode_cs_l_and_d;
    return CheckFailure::none;
}

// The PAT memory types: UC, WC, WT, WP, WB, UC-; 2, 3 and 8..255 are reserved.
bool is_valid_pat(u64 pat) {
    for (unsigned i = 0; i < 8; ++i) {
        u64 type = (pat >> (8 * i)) & 0xFF;
        if (type == 2 || type == 3 || type > 7) return false;
    }
    return true;
}

CheckFailure check_save(const VmcbSave& s, bool nested_paging, const L1Offer& offer) {
    if (!(s.efer & kEferSvme)) return CheckFailure::efer_svme_clear;
    if ((s.cr0 & kCr0Nw) && !(s.cr0 & kCr0Cd)) return CheckFailure::cr0_nw_without_cd;
    if (s.cr0 & kHigh32) return CheckFailure::cr0_high_bits;
    if (s.cr3 & bits_at_or_above(offer.physical_address_bits)) return CheckFailure::cr3_mbz;
    if (s.cr4 & ~offer.cr4_allowed) return CheckFailure::cr4_mbz;
    if (s.dr6 & kHigh32) return CheckFailure::dr6_high_bits;
    if (s.dr7 & kHigh32) return CheckFailure::dr7_high_bits;
    if (s.efer & ~offer.efer_allowed) return CheckFailure::efer_mbz;
    if (CheckFailure f = check_long_mode(s); f != CheckFailure::none) return f;
    // gPAT is loaded only with nested paging (it is L2's PAT under L1's tables).
    if (nested_paging && !is_valid_pat(s.g_pat)) return CheckFailure::gpat_invalid;
    return CheckFailure::none;
}

}  // namespace

const char* check_failure_name(CheckFailure failure) {
    auto index = static_cast<usize>(failure);
    return index < kCheckFailureCount ? kCheckFailureNames[index] : "unknown";
}

Status<SnapshotError> take_snapshot(L1Memory& memory, u64 vmcb12_pa, Vmcb& snapshot) {
    if (vmcb12_pa & kPageMask) return fail(SnapshotError::unaligned);
    // The fields a VMRUN reads, in two pieces: the control area up to N_CR3 and the save area up to
    // gPAT. The rest of the page (the CPU's outputs, the AVIC, SEV and LBR fields L0 never offers,
    // the reserved bytes) means nothing to a VMRUN and is not copied; in the snapshot those fields
    // stay zero. One window over both, each byte copied once: whatever L1 writes into vmcb12
    // meanwhile, the checks and vmcb02 see only the copy.
    constexpr usize kControlBytes = __builtin_offsetof(VmcbControl, nested_cr3) + sizeof(u64);
    constexpr usize kSaveOffset = __builtin_offsetof(Vmcb, save);
    constexpr usize kSaveBytes = __builtin_offsetof(VmcbSave, g_pat) + sizeof(u64);
    const u8* vmcb12 = memory.window(vmcb12_pa, kSaveOffset + kSaveBytes, false);
    if (!vmcb12) return fail(SnapshotError::outside_ram);
    copy_bytes(&snapshot.control, vmcb12, kControlBytes);
    copy_bytes(&snapshot.save, vmcb12 + kSaveOffset, kSaveBytes);
    VmcbControl& c = snapshot.control;
    c.iopm_base_pa &= ~u64{kPageMask};
    c.msrpm_base_pa &= ~u64{kPageMask};
    c.event_inject &= event::defined_bits;
    c.interrupt_shadow &= kInterruptShadow;
    c.intercept_exceptions &= kExceptionInterceptsFromL1;
    return {};
}

CheckFailure check_vmcb12(const Vmcb& snapshot, L1Memory& memory, const L1Offer& offer) {
    if (CheckFailure f = check_controls(snapshot.control, memory, offer); f != CheckFailure::none) return f;
    bool nested_paging = (snapshot.control.nested_control & x86::svm::kNestedPagingEnable) != 0;
    return check_save(snapshot.save, nested_paging, offer);
}

bool write_vmexit_invalid(L1Memory& memory, u64 vmcb12_pa) {
    // EXITCODE, EXITINFO1 and EXITINFO2 are adjacent (0x70, 0x78, 0x80): one write.
    const u64 exit[3] = {x86::svm::exit_code::invalid, 0, 0};
    static_assert(__builtin_offsetof(VmcbControl, exit_info_2) == __builtin_offsetof(VmcbControl, exit_code) + 16);
    return memory.write(vmcb12_pa + __builtin_offsetof(VmcbControl, exit_code), exit, sizeof(exit));
}

}  // namespace nestor::nested::svm
