// The contract between the SVM backend and the nested SVM component (components/nested/svm): what
// the backend lends the component to run an L2 for a vCPU of a domain with nested virtualization,
// as Xen's SVM code lends nestedsvm its VMCB switch. The kernel only passes it along, as an opaque
// pointer (InitialMode::nested_hardware, NestedVcpu::hardware): it never looks inside, so VMCB
// knowledge stays here and in the component.
//
// The backend allocates everything at vCPU creation (NestedResources) and owns which VMCB runs:
// the component fills vmcb02 (and vmcb12, and vmcb01's save area at a #VMEXIT) through the
// pointers it is given, and changes what runs only through the operations below. They are
// virtual: a NESTED_VIRT=MODULE component reaches the backend through this table, passed at run
// time, never through a symbol the module would import.
#pragma once

#include "nestor/lib/types.hpp"
#include "nestor/virt/vcpu_state.hpp"
#include "nestor/x86/svm/vmcb.hpp"

namespace nestor::x86::svm {

// What the backend allocated for running an L2, fixed for the vCPU's life.
struct NestedResources {
    // L1's VMCB (the vCPU's own): its save area is L1's CPU. Its VMLOAD state (FS, GS, TR, LDTR,
    // KernelGsBase, STAR/LSTAR/CSTAR/SFMASK, SYSENTER) is the CPU's in L2 as well: the backend
    // VMLOADs and VMSAVEs vmcb01 around every run, L2's included, as a CPU keeps that state
    // across VMRUN and #VMEXIT. vmcb02's copy of those fields is never used.
    Vmcb* vmcb01;
    Vmcb* vmcb02;  // the VMCB that runs L2, which the component builds
    u32 l2_asid;   // the ASID every L2 of this vCPU runs with (never L1's, never 0)
    // L0's permission maps for L1 (kIopmBytes / kMsrpmBytes) (the component works out once where
    // they let accesses through), ...
    const u8* l0_iopm;
    const u8* l0_msrpm;
    u8* merged_iopm;  // ... and the merged ones vmcb02 uses (host-physical below)
    u8* merged_msrpm;
    paddr merged_iopm_pa;
    paddr merged_msrpm_pa;
    paddr empty_npt_root;  // a zeroed PML4 frame: every L2 access faults
    // The VM's mapping generation (never null): the backend changes it at every unmap, before the
    // unmapped memory can be reused, and no mapping changes any other way. A view of L1's memory
    // the component found under one generation is still L1's while it stays the same.
    const u64* mapping_generation;
};

class NestedHardware {
public:
    const NestedResources& resources() const { return resources_; }

    // L1's VMRUN succeeded: vmcb02, built under the current mapping generation, runs from the
    // next entry, with its EVENTINJ as the event to deliver (one pending for L1 is dropped). The
    // kernel's `state` becomes vmcb02's save area.
    virtual void enter_l2(virt::VcpuState& state) = 0;
    // L1 resumes (a #VMEXIT into it, or its VMRUN failed): vmcb01 runs from the next entry, with
    // no pending event (an exit's EXITINTINFO went to L1 in vmcb12), and the kernel's `state`
    // becomes vmcb01's save area as the component left it.
    virtual void enter_l1(virt::VcpuState& state) = 0;
    // Back to L1 without a #VMEXIT (a reset, the vCPU's end): vmcb01 runs from the next entry, with
    // the state the kernel gives it then. Nothing happens when L1 runs already.
    virtual void reset_to_l1() = 0;
    // Writes the kernel's `state`, newer than the save area of the VMCB that runs (the backend
    // writes it at the next entry), into it now: for the component to read it from the VMCB.
    virtual void write_state(const virt::VcpuState& state) = 0;
    // L2's next run ends right after the entry, once the event it delivers (EVENTINJ) is
    // delivered, as an #VMEXIT(INTR) of L0's (ExitKind::preemption: the APIC timer armed to expire
    // at once, as KVM's self-IPI): an interrupt, NMI or INIT of L1's that waits for that event is
    // L1's #VMEXIT then, not at L2's next exit of its own.
    virtual void request_immediate_exit() = 0;

    // vmcb02 runs (from enter_l2 until enter_l1 or reset_to_l1).
    bool running_l2() const { return running_l2_; }
    // Whether L0 unmapped part of the VM since vmcb02 was built or the shadow was last taken while
    // vmcb02 ran on a shadow nested page table; answers true once. The backend has pointed vmcb02
    // at the empty root meanwhile, so L2 reaches nothing until the component drops the shadow.
    bool take_stale_shadow() {
        bool stale = shadow_stale_;
        shadow_stale_ = false;
        return stale;
    }

protected:
    NestedHardware() = default;
    ~NestedHardware() = default;
    NestedHardware(const NestedHardware&) = delete;
    NestedHardware& operator=(const NestedHardware&) = delete;

    NestedResources resources_{};
    bool running_l2_ = false;
    bool shadow_stale_ = false;
};

}  // namespace nestor::x86::svm
