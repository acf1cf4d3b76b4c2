// VMRUN and #VMEXIT of one L1 vCPU (see nested_vmrun.hpp).
#include "nested_vmrun.hpp"

namespace nestor::nested::svm {

using namespace arch;

namespace {

VmrunOutcome outcome(VmrunResult result, CheckFailure failure = CheckFailure::none) {
    return VmrunOutcome{result, failure};
}

// A failed VMRUN is still a #VMEXIT: GIF clears and L1 resumes after its VMRUN.
VmrunOutcome refuse(NestedSvmVcpu& vcpu, L1Memory& memory, VmcbSave& l1, u64 vmcb12_pa, u64 next_rip,
                    CheckFailure failure) {
    if (!write_vmexit_invalid(memory, vmcb12_pa)) return outcome(VmrunResult::inject_gp);
    vcpu.gif = false;
    l1.rip = next_rip;
    return outcome(VmrunResult::vmexit_invalid, failure);
}

bool merge_maps(NestedSvmVcpu& vcpu, VmrunEnvironment& env) {
    PermissionMapMerge& maps = vcpu.maps;
    if (!maps.known) {
        start_merge(env.l0_iopm, x86::svm::kIopmBytes, env.merged_iopm, maps.iopm);
        start_merge(env.l0_msrpm, x86::svm::kMsrpmBytes, env.merged_msrpm, maps.msrpm);
        maps.known = true;
    }
    const VmcbControl& c = vcpu.snapshot.control;
    return remerge_permission_map(env.l0_iopm, env.memory, c.iopm_base_pa,
                                  c.intercept_misc1 & x86::svm::intercept1::ioio_prot, maps.iopm, env.merged_iopm) &&
           remerge_permission_map(env.l0_msrpm, env.memory, c.msrpm_base_pa,
                                  c.intercept_misc1 & x86::svm::intercept1::msr_prot, maps.msrpm, env.merged_msrpm);
}

// L1's TLB requests and the shadow's changes, onto the one ASID L0 gives all of L1's guests.
// `l1` is L1's own state: its EFER.NXE, not L2's, decides how its nested tables read. A shadow
// started before L0 last unmapped part of L1 may have leaves to frames L1 no longer owns: it
// starts over, even with the same nested CR3, NXE and no TLB_CONTROL.
void prepare_translation(NestedSvmVcpu& vcpu, VmrunEnvironment& env, const VmcbSave& l1) {
    const VmcbControl& c = vcpu.snapshot.control;
    if (c.tlb_control != x86::svm::kTlbControlNothing) vcpu.shadow.drop_all();
    env.l0.shadow_npt_root = 0;
    if (uses_nested_paging(vcpu.snapshot)) {
        if (vcpu.shadow_generation != env.mapping_generation) [[unlikely]] {
            vcpu.shadow.drop_all();
            vcpu.shadow_generation = env.mapping_generation;
        }
        env.l0.shadow_npt_root = vcpu.shadow.prepare(c.nested_cr3, (l1.efer & kEferNxe) != 0);
    }
    bool asid_changed = c.guest_asid != vcpu.last_l1_asid;
    vcpu.last_l1_asid = c.guest_asid;
    bool shadow_changed = vcpu.shadow.take_flush_request();  // always taken: it is one-shot
    env.l0.flush_tlb = env.l0.flush_tlb || asid_changed || shadow_changed;
}

}  // namespace

VmrunOutcome emulate_vmrun(NestedSvmVcpu& vcpu, VmrunEnvironment& env, VmcbSave& l1, u64 vmcb12_pa, u64 next_rip,
                           Vmcb& vmcb02) {
    if (!take_snapshot(env.memory, vmcb12_pa, vcpu.snapshot)) return outcome(VmrunResult::inject_gp);
    CheckFailure failure = check_vmcb12(vcpu.snapshot, env.memory, env.offer);
    if (failure != CheckFailure::none) return refuse(vcpu, env.memory, l1, vmcb12_pa, next_rip, failure);
    // The maps were L1 RAM a moment ago; if L0 took them away since, L1 gets the same answer.
    if (!merge_maps(vcpu, env))
        return refuse(vcpu, env.memory, l1, vmcb12_pa, next_rip, CheckFailure::msrpm_outside_l1_ram);
    prepare_translation(vcpu, env, l1);
    if (!build_vmcb02(vcpu.snapshot, l1, env.l0, vmcb02)) return outcome(VmrunResult::stop);
    l1.rip = next_rip;  // the host state L1 resumes with (resume_l1)
    vcpu.vmcb12_pa = vmcb12_pa;
    vcpu.reflected = reflected_instructions(vcpu.snapshot);
    vcpu.gif = true;  // VMRUN sets GIF
    vcpu.guest_mode = true;
    return outcome(VmrunResult::entered);
}

Vmcb* look_up_vmcb12(NestedSvmVcpu& vcpu, L1Memory& memory, u64 mapping_generation) {
    NestedSvmVcpu::Vmcb12View& view = vcpu.vmcb12_view;
    view = {};
    u8* page = memory.window(vcpu.vmcb12_pa, sizeof(Vmcb), true);
    if (!page) return nullptr;
    view = NestedSvmVcpu::Vmcb12View{vcpu.vmcb12_pa, mapping_generation, reinterpret_cast<Vmcb*>(page)};
    return view.host;
}

void abandon_guest_mode(NestedSvmVcpu& vcpu) {
    vcpu.shadow.drop_all();
    vcpu.guest_mode = false;
    vcpu.gif = true;
}

}  // namespace nestor::nested::svm
