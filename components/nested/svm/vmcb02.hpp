// VMRUN, second half: the VMCB that really runs L2 (vmcb02), built from the checked snapshot of
// vmcb12 and L0's own controls. What L1 asks for is taken only where it cannot hurt L0:
//  - intercepts: L0's mandatory set OR L0's controls OR L1's. Whatever L1 clears, L0 keeps what
//    it needs (below); an exit L0 takes that L1 did not ask for is handled by L0 in L1's terms
//    (exit_reflect.hpp);
//  - int_ctl: only the allow-listed virtual-interrupt bits; never AVIC, vGIF, vNMI or x2AVIC,
//    which Nestor does not offer (CVE-2021-3653 was an L1's AVIC bit reaching the CPU);
//  - virt_ext is never L1's (no virtual VMLOAD/VMSAVE, no LBR virtualization: CVE-2021-3656);
//  - the ASID is L0's (never 0, never the one L1 itself runs with, never L1's value);
//  - nested paging is always on, with L0's root: the shadow NPT when L1 uses nested paging,
//    L0's tables of L1 when it does not. N_CR3 never comes from L1;
//  - TSC offsets add up (L2's TSC = host TSC + L0's offset for L1 + L1's offset for L2);
//  - EVENTINJ passes through, checked and with its reserved bits cleared (take_snapshot).
#pragma once

#include "nestor/lib/result.hpp"
#include "l1_memory.hpp"
#include "svm_arch.hpp"

namespace nestor::nested::svm {

// What L0 always intercepts while L2 runs, and why:
//  - INTR, NMI: physical interrupts and NMIs are L0's (its scheduler tick among them);
//  - SHUTDOWN: an L2 triple fault must not reset the machine;
//  - INVD: would drop host cache lines;
//  - CPUID: L2 must see L1's virtual CPU, not the host's;
//  - HLT: a halted L2 is a halted L1 vCPU, for L0's scheduler;
//  - IOIO / MSR: with L0's maps merged in, so L2 reaches no port or MSR L1 could not;
//  - VMRUN (architectural), VMLOAD, VMSAVE (they take physical addresses), STGI / CLGI (GIF is
//    L0's), SKINIT (not offered), INVLPGA (the shadow NPT's TLB), VMMCALL (L2 must never reach
//    L0's hypercalls: without L1's intercept it gets #UD, as on the CPU);
//  - #DB and #AC: benign-exception loops hang the CPU (CVE-2015-8104, CVE-2015-5307).
namespace mandatory {
inline constexpr u32 misc1 = x86::svm::intercept1::intr | x86::svm::intercept1::nmi | x86::svm::intercept1::cpuid |
                             x86::svm::intercept1::invd | x86::svm::intercept1::hlt | x86::svm::intercept1::invlpga |
                             x86::svm::intercept1::ioio_prot | x86::svm::intercept1::msr_prot |
                             x86::svm::intercept1::shutdown;
inline constexpr u32 misc2 = x86::svm::intercept2::vmrun | x86::svm::intercept2::vmmcall |
                             x86::svm::intercept2::vmload | x86::svm::intercept2::vmsave | x86::svm::intercept2::stgi |
                             x86::svm::intercept2::clgi | x86::svm::intercept2::skinit;
inline constexpr u32 exceptions = (1u << arch::kVectorDb) | (1u << arch::kVectorAc);
}  // namespace mandatory

// The int_ctl bits L1 may set for L2: V_TPR, V_IRQ, V_INTR_PRIO, V_IGN_TPR, V_INTR_MASKING.
inline constexpr u32 kIntCtlFromL1 = arch::int_ctl::v_tpr | arch::int_ctl::v_irq | arch::int_ctl::v_intr_prio |
                                     arch::int_ctl::v_ign_tpr | arch::int_ctl::v_intr_masking;

// L0's side of vmcb02, for one vCPU.
struct L0Controls {
    // L0's own intercepts for this vCPU (as for L1, e.g. CR4 writes); the mandatory set is added
    // whatever these say.
    u32 intercept_cr;
    u32 intercept_dr;
    u32 intercept_exceptions;
    u32 intercept_misc1;
    u32 intercept_misc2;
    u32 intercept_misc3;
    u64 tsc_offset;  // L0's offset for L1
    u32 l2_asid;     // the ASID L0 keeps for this vCPU's L2
    u32 l1_asid;     // the ASID L1 itself runs with
    paddr iopm_pa;   // host-physical merged maps (remerge_permission_map), L0's memory
    paddr msrpm_pa;
    paddr l1_npt_root;      // L0's nested tables of L1: L2 runs on them when L1 has no NPT
    paddr shadow_npt_root;  // the shadow NPT (shadow_npt.hpp): when L1 uses nested paging
    bool flush_tlb;         // L0 wants L2's ASID flushed (the shadow changed, L1 switched ASID)
};

enum class MergeError : u8 {
    bad_asid,      // L0's ASID for L2 is 0 or L1's own
    missing_root,  // no nested page table root for the mode L1 asked for
};

// Inline: every reflected exit asks (gPAT, #NPF routing).
inline bool uses_nested_paging(const Vmcb& snapshot) {
    return (snapshot.control.nested_control & x86::svm::kNestedPagingEnable) != 0;
}

// Builds vmcb02 from the checked snapshot, L1's current CPU state `l1_cpu` (its gPAT, which L2
// shares without L1's nested paging) and L0. Every field is written but the VMLOAD state (FS, GS,
// TR, LDTR and the syscall MSRs), which is the CPU's, not vmcb12's: the backend loads it from
// vmcb01 for L2 as for L1 (nested_hardware.hpp). Its reserved bytes stay as allocated, zero.
Status<MergeError> build_vmcb02(const Vmcb& snapshot, const VmcbSave& l1_cpu, const L0Controls& l0, Vmcb& vmcb02);

// The merged permission maps (IOPM, MSRPM): a bit is set if L0's is or L1's is; L1's map counts
// only if L1 uses it (its intercept bit), and is read from its memory at every VMRUN. Only L0's
// pass-through matters: where a 64-bit word of L0's map is all ones, the merged word is all ones
// whatever L1's says. So start_merge, once per vCPU (L0's maps for L1 never change), fills the
// merged map with L0's and lists the other words; remerge_permission_map, at every VMRUN, reads
// only those from L1. L0 intercepts every port and MSR of an L1, so a VMRUN reads none of L1's maps.
struct WordRun {
    u16 first;  // index of the first 64-bit word
    u16 count;
};
inline constexpr usize kIopmWords = x86::svm::kIopmBytes / 8;
static_assert(x86::svm::kMsrpmBytes <= x86::svm::kIopmBytes);

struct PassThroughRuns {
    u16 count = 0;
    WordRun runs[kIopmWords / 2 + 1]{};  // runs are apart by an all-ones word; the IOPM is the larger map
};

struct PermissionMapMerge {
    bool known = false;  // the runs are L0's maps', and the merged maps hold L0's all-ones words
    PassThroughRuns iopm;
    PassThroughRuns msrpm;
};

// Copies L0's map (`bytes`, a multiple of 8) into `merged` and lists where it lets something through.
void start_merge(const u8* l0_map, usize bytes, u8* merged, PassThroughRuns& out);
// Completes the merge in a `merged` that start_merge filled for the same L0 map. False if L1's map
// is no longer RAM (the caller fails the VMRUN with VMEXIT_INVALID).
bool remerge_permission_map(const u8* l0_map, L1Memory& memory, u64 l1_map_pa, bool l1_uses,
                            const PassThroughRuns& pass_through, u8* merged);

}  // namespace nestor::nested::svm
