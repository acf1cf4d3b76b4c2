// One L1 vCPU's nested SVM, put together: VMRUN (snapshot, check, save L1, build vmcb02) and the
// #VMEXIT back into L1. Pure logic over the interfaces of l1_memory.hpp and plain VMCBs; the
// backend owns the VMCBs that really run (vmcb01 for L1, vmcb02 for L2) and the world switch.
#pragma once

#include "exit_reflect.hpp"
#include "shadow_npt.hpp"
#include "vmcb02.hpp"
#include "vmrun_check.hpp"

namespace nestor::nested::svm {

// The per-vCPU state. Large (the 4 KiB snapshot): the kernel keeps it in a frame of its own,
// reached from the vCPU's NestedVcpu storage.
struct NestedSvmVcpu {
    NestedSvmVcpu(TableFrames& frames, u8 l1_physical_bits, u32 max_shadow_tables)
        : shadow(frames, l1_physical_bits, max_shadow_tables) {}

    Vmcb snapshot{};  // vmcb12 as copied at the last VMRUN: the only vmcb12 anything looks at
    ShadowNpt shadow;
    u64 vmcb12_pa = 0;
    u64 reflected = 0;  // reflected_instructions(snapshot) while in guest mode
    // L0's writable view of a vmcb12 page, from the last #VMEXIT that looked it up (nullptr:
    // none), found while the VM's mappings were at `generation`. L0 removes or narrows no mapping
    // without a new generation (nested_hardware.hpp), so while it is the same the view is still
    // L1's page, writable, and the next #VMEXIT into the same vmcb12 writes through it without
    // looking it up again (a lookup would be a tenth of a reflected exit).
    struct Vmcb12View {
        u64 pa = 0;
        u64 generation = 0;
        Vmcb* host = nullptr;
    } vmcb12_view;
    // The VM's mapping generation the shadow was started under: a VMRUN under another one (L0
    // unmapped something since) starts it over, whatever L1's nested CR3 and TLB_CONTROL say.
    u64 shadow_generation = 0;
    u32 last_l1_asid = 0;     // L1's ASID at the last VMRUN: a change flushes L2's (shared) ASID
    PermissionMapMerge maps;  // where L0's maps let L1's matter (vmcb02.hpp)
    bool gif = true;
    bool guest_mode = false;
};

// Everything L0 contributes to a VMRUN.
struct VmrunEnvironment {
    L1Memory& memory;
    const L1Offer& offer;
    L0Controls l0;      // shadow_npt_root and flush_tlb are filled in by emulate_vmrun
    const u8* l0_iopm;  // L0's maps for L1 (kIopmBytes / kMsrpmBytes) ...
    const u8* l0_msrpm;
    u8* merged_iopm;  // ... and where the merged ones go (the frames l0.iopm_pa / msrpm_pa)
    u8* merged_msrpm;
    u64 mapping_generation;  // the VM's now (nested_hardware.hpp): changed by every unmap
};

enum class VmrunResult : u8 {
    entered,         // vmcb02 is ready: the backend runs it (guest mode)
    vmexit_invalid,  // vmcb12 failed a check: VMEXIT_INVALID written, GIF clear, L1 resumes after VMRUN
    inject_gp,       // RAX unaligned or not L1 RAM: #GP in L1, nothing changed
    stop,            // L0 could not build vmcb02 (no frame, bad ASID): stop the domain
};

struct VmrunOutcome {
    VmrunResult result;
    CheckFailure failure;  // vmexit_invalid: which check
};

// L1 executed VMRUN with RAX = vmcb12_pa; `l1` is its VMCB's save area (vmcb01), `next_rip` the
// instruction after VMRUN. On `entered`, vmcb02 is complete and `l1` is L1's saved host state
// (resume_l1): RIP is `next_rip`, and the caller must not change `l1` until the #VMEXIT.
VmrunOutcome emulate_vmrun(NestedSvmVcpu& vcpu, VmrunEnvironment& env, VmcbSave& l1, u64 vmcb12_pa, u64 next_rip,
                           Vmcb& vmcb02);

// vmcb12 (the page at vcpu.vmcb12_pa) as L0 sees it, writable, looked up in `memory` unless the
// view kept from an earlier #VMEXIT is of the same page under the same `mapping_generation`;
// nullptr if it is not writable L1 RAM (any more).
Vmcb* look_up_vmcb12(NestedSvmVcpu& vcpu, L1Memory& memory, u64 mapping_generation);
inline Vmcb* vmcb12_for_vmexit(NestedSvmVcpu& vcpu, L1Memory& memory, u64 mapping_generation) {
    const NestedSvmVcpu::Vmcb12View& view = vcpu.vmcb12_view;
    if (view.host && view.pa == vcpu.vmcb12_pa && view.generation == mapping_generation) return view.host;
    return look_up_vmcb12(vcpu, memory, mapping_generation);
}

// A #VMEXIT into L1 (a reflected L2 exit, or one L0 makes such as a shadow #NPF): vmcb12 gets the
// exit and L2's state, vmcb01 (`l1`, as VMRUN left it) is L1's state again (its VMLOAD state is
// the one L2 ran with: one CPU), GIF clears. `mapping_generation` is the VM's now (it changes
// whenever L0 unmaps any of L1's memory).
// False if vmcb12 is no longer L1 RAM (the caller stops the domain). Inline: it is on every
// reflected exit, and its own call cost as much as its body.
[[gnu::always_inline]] inline bool emulate_vmexit(NestedSvmVcpu& vcpu, L1Memory& memory, const Vmcb& vmcb02,
                                                  const VmexitInfo& exit, VmcbSave& l1, u64 mapping_generation) {
    Vmcb* vmcb12 = vmcb12_for_vmexit(vcpu, memory, mapping_generation);
    bool written = vmcb12 != nullptr;
    if (written) write_vmexit(*vmcb12, vcpu.snapshot, vmcb02, exit);
    resume_l1(l1);  // the VMLOAD state is in `l1` already: L2 ran with L1's (nested_hardware.hpp)
    vcpu.gif = false;
    vcpu.guest_mode = false;
    return written;
}

// Leaves guest mode without a #VMEXIT (vCPU reset, domain teardown) and frees the shadow tables.
void abandon_guest_mode(NestedSvmVcpu& vcpu);

}  // namespace nestor::nested::svm
