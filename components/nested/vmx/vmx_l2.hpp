// Running L2 for an L1 on VMX: VMLAUNCH / VMRESUME that passed the instruction, control and
// host-state checks enter L2 (the guest-state checks, vmcs02, the shadow EPT), and L2's exits are
// routed by L1's controls: reflected into L1 as an emulated VM exit (vmcs12's exit information
// and guest state, L1's host state loaded), or left to L0 (Decision not_nested: the kernel's rule
// for the exit applies to L2's state), or fixed up in the shadow EPT.
#pragma once

#include "../nested_component.hpp"
#include "nestor/x86/vmx/nested_hardware.hpp"
#include "shadow_ept.hpp"
#include "vmcs02.hpp"
#include "vmcs12.hpp"

namespace nestor::nested::vmx {

// What running L2 keeps per vCPU besides vmcs12, in the same page of L0 memory as the cache of
// the current VMCS (allocated zeroed at VMXON, given back at VMXOFF).
struct L2State {
    ShadowEpt shadow;
    bool launching;  // a VMLAUNCH whose first entry the CPU has not yet taken or refused
    OpenMsrWords open_msr_words;
    // vmcs02's guest state holds vmcs12's, except the fields in `written` (L1's VMWRITEs since):
    // set when an entry wrote vmcs02 from vmcs12, kept by the exits that copy vmcs02 back, cleared
    // when vmcs12 or vmcs02 changes otherwise (VMPTRLD, VMCLEAR, a failed entry, an abandoned L2).
    bool vmcs02_matches;
    FieldSet written;
    // vmcs12's guest fields kept_in_vmcs02 are stale and vmcs02 holds L2's values: set by a VM
    // exit, cleared by complete_vmcs12.
    bool guest_state_kept;
    // vmcs12 passed check_controls and check_host_state with L1's EFER.LMA `checked_long_mode`
    // and the VM-entry controls `checked_entry_controls` (a VM exit changes "IA-32e mode guest"),
    // and has changed since only where recheck_controls / recheck_host_state look: cleared by a
    // VMWRITE that changes_entry_checks and by VMPTRLD.
    bool entry_checks_hold;
    bool checked_long_mode;
    u32 checked_entry_controls;
};

struct CacheBlock {
    Vmcs12 vmcs12;  // first: VmxVcpu::cache points at it
    L2State l2;
};
static_assert(sizeof(CacheBlock) <= 4096, "the VMCS cache and L2's state share a page");

inline L2State& l2_state(VmxVcpu& vmx) { return reinterpret_cast<CacheBlock*>(vmx.cache)->l2; }

// Copies the guest fields vmcs02 kept after the last VM exit into vmcs12, if it kept any: before
// vmcs12 is read or written by L1, written back to L1's memory, or copied whole into vmcs02.
void complete_vmcs12(VmxVcpu& vmx, x86::vmx::NestedHardware& hw);

// After the instruction checks of VMLAUNCH (`launch`) or VMRESUME passed.
Decision enter_l2(NestedVcpu& vcpu, x86::vmx::NestedHardware& hw, virt::VcpuState& state, bool launch);
// NestedVcpu::guest_exit while L2 runs.
Decision l2_exit(NestedVcpu& vcpu, const virt::VmExit& exit, virt::VcpuState& state);
// An exception L0 raised for L2: L1's when its exception bitmap says so.
Decision l2_exception(NestedVcpu& vcpu, u8 vector, bool has_error_code, u32 error_code, virt::VcpuState& state);
// An interrupt of L1's, `vector`, due while L2 runs: a VM exit when L1 exits on external
// interrupts, which acknowledges it (Action::complete, the vector in the exit's information)
// when L1's exit controls ask for that.
Decision l2_interrupt(NestedVcpu& vcpu, virt::VcpuState& state, u8 vector);
// L1's NMI while L2 runs (NestedOps::route_nmi).
Decision l2_nmi(NestedVcpu& vcpu, virt::VcpuState& state);
// An INIT for the vCPU while L2 runs (NestedOps::init_signal): the VM exit with reason 3, which
// takes it (Action::complete).
Decision l2_init(NestedVcpu& vcpu, virt::VcpuState& state);
// Back to L1 without a VM exit (a reset, the vCPU's end).
void abandon_l2(NestedVcpu& vcpu);

}  // namespace nestor::nested::vmx
