// vmcs02, the VMCS that really runs L2, built from the checked vmcs12 under L0's controls
// (x86::vmx::L0Controls), and the two halves of an emulated VM exit: L2's state saved into
// vmcs12 and L1's state loaded from vmcs12's host-state area (SDM 27.3, 27.5).
//
// vmcs02 keeps every control L0 has for L1 (its exits come to L0 first: the component reflects
// those L1 asked for), ORs L1's in, and takes from L1 only what the capability table offers:
// L1's exception bitmap and #PF mask / match, its CR0 / CR4 masks (with L0's) and read shadows,
// its TSC offset added to L0's, unrestricted guest only when L1 enables it, L1's EPT only as a
// shadow (shadow_ept.hpp) and otherwise L0's EPT of L1, a VPID of L0's, L0's I/O bitmaps (every
// port exits) and an MSR bitmap that is L0's OR L1's.
#pragma once

#include "../nested_component.hpp"
#include "nestor/x86/vmx/nested_hardware.hpp"
#include "vmcs12.hpp"

namespace nestor::nested::vmx {

// The 64-bit words of L0's MSR bitmap that let some MSR through, found at the first entry (L0's
// bitmap is the vCPU's for its life): everywhere else the merged bitmap keeps L0's ones, whatever
// L1's says, so only these words of L1's are read at an entry.
struct OpenMsrWords {
    static constexpr u32 kMax = 32;
    bool known;
    u32 count;  // above kMax: too many to list, and every word is merged
    u16 index[kMax];
};

// Writes vmcs02's controls and guest state from `vmcs` (checked), with `eptp` as its EPT
// pointer. L1's MSR bitmap is read once, into L0's merged one. With `changed`, vmcs02 already
// holds vmcs12's guest state and controls but for those fields: only they of the guest state
// copied as is are written (the rest, derived from other fields or from L1's, always is), and
// the controls that stay put while L2 runs only when one of their vmcs12 fields is among them.
void write_vmcs02(const Vmcs12& vmcs, x86::vmx::NestedHardware& hw, Host& host, u64 eptp, OpenMsrWords& open,
                  const FieldSet* changed);

// A VM exit's information (SDM 27.2), written into vmcs12's read-only fields.
struct ExitInformation {
    u32 reason;  // basic reason, bit 31 for a VM-entry failure
    u64 qualification;
    u64 guest_physical;
    u64 guest_linear;
    u32 interruption_info;
    u32 interruption_error_code;
    u32 idt_vectoring_info;
    u32 idt_vectoring_error_code;
    u32 instruction_length;
    u32 instruction_info;
};

// The exit information the CPU recorded in vmcs02 for the exit being handled.
ExitInformation exit_information(x86::vmx::NestedHardware& hw, u32 reason);

// L2's guest state, as vmcs02 holds it now, into vmcs12 (with "IA-32e mode guest" following
// EFER.LMA and the VM-entry event marked delivered): the fields that change on most exits and
// those the VM-entry checks read. vmcs02 keeps the others (kept_in_vmcs02) until
// save_kept_guest_state copies them.
void save_l2_state(Vmcs12& vmcs, x86::vmx::NestedHardware& hw);
bool kept_in_vmcs02(const FieldInfo& field);
void save_kept_guest_state(Vmcs12& vmcs, x86::vmx::NestedHardware& hw);
void write_exit_information(Vmcs12& vmcs, const ExitInformation& info);
// L1's state from vmcs12's host-state area into vmcs01, and vmcs01 running again.
void load_l1_host_state(const Vmcs12& vmcs, x86::vmx::NestedHardware& hw, virt::VcpuState& state);

}  // namespace nestor::nested::vmx
