// The contract between the SVM backend and the nested SVM component (components/nested/svm): what
// the backend gives the component to run an L2 for a vCPU of a domain with nested virtualization.
// The kernel only passes it along, as an opaque pointer (VirtOps::nested_hardware): it never looks
// inside, so VMCB knowledge stays here and in the component.
//
// The backend allocates everything at vCPU creation (a second VMCB, a second ASID, the merged
// permission maps) and runs whichever VMCB `run_l2` selects. The component fills vmcb02, writes
// the vCPU's neutral state (VcpuState) from the VMCB it switches to, and sets `switched`: at the
// next entry the backend makes that VMCB the active one, forgets what it cached of the other
// (code page, a pending event: an exit's EXITINTINFO belongs to L1 once the exit is reflected)
// and takes the new VMCB's EVENTINJ as the event to deliver.
#pragma once

#include "nestor/lib/types.hpp"
#include "nestor/x86/svm/vmcb.hpp"

namespace nestor::x86::svm {

struct NestedContext {
    // L1's VMCB (the vCPU's own): its save area is L1's CPU. Its VMLOAD state (FS, GS, TR, LDTR,
    // KernelGsBase, STAR/LSTAR/CSTAR/SFMASK, SYSENTER) is the CPU's in L2 as well: the backend
    // VMLOADs and VMSAVEs vmcb01 around every run, L2's included, as a CPU keeps that state
    // across VMRUN and #VMEXIT. vmcb02's copy of those fields is never used.
    Vmcb* vmcb01;
    paddr vmcb01_pa;
    Vmcb* vmcb02;  // the VMCB that runs L2
    paddr vmcb02_pa;
    u32 l2_asid;  // the ASID every L2 of this vCPU runs with (never L1's, never 0)
    // L0's permission maps for L1 (kIopmBytes / kMsrpmBytes), fixed for the vCPU's life (the
    // component works out once where they let accesses through), ...
    const u8* l0_iopm;
    const u8* l0_msrpm;
    u8* merged_iopm;  // ... and the merged ones vmcb02 uses (host-physical below)
    u8* merged_msrpm;
    paddr merged_iopm_pa;
    paddr merged_msrpm_pa;
    bool run_l2;    // the backend enters vmcb02 (L2), else vmcb01 (L1)
    bool switched;  // the component changed run_l2 (or rebuilt vmcb02) since the last entry
    // Set by the backend when L0 unmapped part of the VM (a TLB generation change) while vmcb02
    // runs on a shadow nested page table: the backend points vmcb02 at `empty_npt_root` so that
    // L2 reaches nothing until the component has dropped the shadow (it checks this first at
    // every L2 exit and clears it).
    bool shadow_stale;
    paddr empty_npt_root;  // a zeroed PML4 frame: every L2 access faults
    // The VM's mapping generation (never null): the backend changes it at every unmap, before the
    // unmapped memory can be reused, and no mapping changes any other way. A view of L1's memory
    // the component found under one generation is still L1's while it stays the same.
    const u64* mapping_generation;
    // The kernel's state (VcpuState) is the save area of the VMCB `run_l2` selects, unchanged: the
    // component loaded it from that VMCB at a switch (a #VMEXIT into L1, a VMRUN into L2), and a
    // switch ends the handling of the exit, so nothing changes the state before the next entry.
    // The backend's entry then skips writing the state into the VMCB (the same values again) and
    // clears it. Whoever switches without loading the state (a reset) leaves it clear.
    bool state_in_vmcb;
};

}  // namespace nestor::x86::svm
