// vmcs12's MSR lists: the VM-entry MSR-load list (SDM 26.4) and the VM-exit MSR-store and
// MSR-load lists (SDM 27.4, 27.6). Each entry (16 bytes: index, reserved, value) is read from and
// stored into L1's memory through the kernel's checked accessor (Host), never through a window
// that could be a device's. An MSR is loaded as the level's own WRMSR would write it and stored as
// its RDMSR would read it: EFER by the kernel's rule (virt::efer_after_write), into vmcs02's
// field for L2 and the kernel's state for L1; the MSRs the vCPU owns through
// NestedHardware::write_msr / read_msr, and those a device of the domain serves (a PC's TSC, TSC
// deadline, MTRRs) through Host::device_msr_write / device_msr_read. An MSR the SDM forbids in a list (FS / GS base in
// a load, SMBASE, SMM_MONITOR_CTL, the x2APIC's), one the level could not write or read so (EFER's #GP cases among
// them), a reserved bit set, an entry outside L1's memory or a list longer than IA32_VMX_MISC's recommended maximum
// fails the list.
#pragma once

#include "../nested_component.hpp"
#include "nestor/x86/vmx/nested_hardware.hpp"
#include "vmcs12.hpp"

namespace nestor::nested::vmx {

// The most entries a list may hold: IA32_VMX_MISC's recommendation, 512 * (bits 27:25 + 1).
u32 msr_list_limit();

// Loads the VM-entry MSR-load list into L2's MSRs: 0 when every entry loaded, else the number
// (from 1) of the entry that failed, the VM-entry failure's exit qualification. The entries
// before it stay loaded, as on the CPU.
u32 load_entry_msrs(const Vmcs12& vmcs, x86::vmx::NestedHardware& hw, NestedVcpu& vcpu);
// Stores L2's MSRs into the VM-exit MSR-store list; false: a VMX abort.
bool store_exit_msrs(const Vmcs12& vmcs, x86::vmx::NestedHardware& hw, NestedVcpu& vcpu);
// Loads the VM-exit MSR-load list into L1's MSRs (after its host state, `l1`); false: a VMX abort.
bool load_exit_msrs(const Vmcs12& vmcs, x86::vmx::NestedHardware& hw, NestedVcpu& vcpu, virt::VcpuState& l1);

}  // namespace nestor::nested::vmx
