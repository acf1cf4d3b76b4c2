// VMRUN, first half: copy L1's VMCB (vmcb12) into a private snapshot, then check the snapshot.
// The order is the point: L1 can rewrite its memory at any moment (from another vCPU, or a
// device), so vmcb12 is read exactly once, as one copy, and everything after that (the checks,
// the merge into vmcb02, the intercept decisions while L2 runs) looks only at the snapshot.
// That closes the double-fetch class (CVE-2021-29657) by construction.
//
// The checks are those of the APM vol. 2 §15.5.1 "Canonicalization and Consistency Checks",
// plus the ones Nestor adds because it emulates them: the permission maps and the nested page
// table root must lie in L1's own RAM (never over MMIO or outside it), and nested paging may be
// asked for only if it was offered.
#pragma once

#include "nestor/lib/result.hpp"
#include "svm_arch.hpp"
#include "l1_memory.hpp"

namespace nestor::nested::svm {

// What the virtual CPU offers L1, which bounds what a vmcb12 may ask for.
struct L1Offer {
    bool nested_paging;        // CPUID 0x8000000A EDX.NP as L1 sees it
    u8 physical_address_bits;  // L1's MAXPHYADDR: CR3 / N_CR3 / map bits at or above are MBZ
    u64 efer_allowed;          // EFER bits L1's CPU has (SVME and LMA included)
    u64 cr4_allowed;           // CR4 bits L1's CPUID offers
};

// The exception intercepts L1 may have: every vector but #MC. A machine check is the host's,
// never an event of L2 that L1 could handle: it stays with L0 whatever vmcb12 says, as in KVM.
inline constexpr u32 kExceptionInterceptsFromL1 = ~(u32{1} << arch::kVectorMc);

enum class SnapshotError : u8 {
    unaligned,    // RAX is not 4 KiB aligned: VMRUN #GPs
    outside_ram,  // vmcb12 is not (entirely) L1 RAM: VMRUN #GPs
};

// Why a vmcb12 fails VMRUN's checks (none: it passes). One name per check, for tests and logs.
enum class CheckFailure : u8 {
    none,
    vmrun_not_intercepted,
    asid_zero,
    efer_svme_clear,
    cr0_nw_without_cd,
    cr0_high_bits,
    cr3_mbz,
    cr4_mbz,
    dr6_high_bits,
    dr7_high_bits,
    efer_mbz,
    long_mode_without_pae,
    long_mode_without_pe,
    long_mode_cs_l_and_d,
    event_inject_type,
    event_inject_vector,
    msrpm_outside_l1_ram,
    iopm_outside_l1_ram,
    nested_paging_not_offered,
    nested_cr3_mbz,
    nested_cr3_outside_l1_ram,
    gpat_invalid,
};
inline constexpr usize kCheckFailureCount = static_cast<usize>(CheckFailure::gpat_invalid) + 1;

const char* check_failure_name(CheckFailure failure);

// Copies vmcb12 (the 4 KiB at `vmcb12_pa`) once into `snapshot`, in one read up to its last field
// (the reserved tail of the page is not read: it stays as it was in `snapshot`), then clears
// the bits the CPU ignores (the low 12 bits of the permission-map addresses, the reserved bits of
// EVENTINJ and the interrupt shadow), so that what is checked is exactly what is used. It also
// drops what L1 may ask for but never gets (kExceptionInterceptsFromL1), so that nothing that
// reads the snapshot (vmcb02, the routing of L2's exits) can give it to L1.
Status<SnapshotError> take_snapshot(L1Memory& memory, u64 vmcb12_pa, Vmcb& snapshot);

// Every check, on the snapshot only (memory is asked where things are, never what they hold).
CheckFailure check_vmcb12(const Vmcb& snapshot, L1Memory& memory, const L1Offer& offer);

// A failed check: VMEXIT_INVALID in vmcb12 (EXITCODE -1, EXITINFO1/2 zero) and nothing else of
// vmcb12 changes. The caller clears GIF (every #VMEXIT does) and resumes L1 after its VMRUN.
bool write_vmexit_invalid(L1Memory& memory, u64 vmcb12_pa);

}  // namespace nestor::nested::svm
