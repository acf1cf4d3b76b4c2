// The checks VMLAUNCH / VMRESUME make on the VMX controls (SDM 26.2.1, VMfailValid 7) and on the
// host-state area (SDM 26.2.2-26.2.4, VMfailValid 8) of the cached vmcs12, against the
// capability table (vmx_capabilities.hpp). The cache is L0's memory, which L1 cannot change
// between a check and the use that follows. Each failure has a name, so a test can make each
// one fail alone.
#pragma once

#include "vmcs12.hpp"

namespace nestor::nested::vmx {

enum class EntryCheck : u8 {
    ok,
    // VM-execution controls
    pin_controls,
    primary_controls,
    secondary_controls,
    cr3_target_count,
    io_bitmap_address,
    msr_bitmap_address,
    virtual_apic_address,
    tpr_threshold_reserved,  // bits 31:4 (neither virtual-interrupt delivery nor APIC access virtualization is offered)
    tpr_threshold_above_vtpr,
    virtual_nmis_without_nmi_exiting,
    nmi_window_without_virtual_nmis,
    vpid_zero,
    ept_pointer,
    unrestricted_guest_without_ept,
    // VM-exit and VM-entry controls
    exit_controls,
    save_timer_without_timer,  // "save VMX-preemption timer value" without the timer (SDM 26.2.1.2)
    exit_msr_store_address,
    exit_msr_load_address,
    entry_controls,
    entry_msr_load_address,
    entry_event_injection,
    // host-state area
    host_cr0,
    host_cr4,
    host_cr3,
    host_sysenter_address,
    host_efer,
    host_selector,
    host_base_address,
    host_address_space_size,
    host_rip,
};

// The first control check vmcs12 fails (ok: none). `physical_address_bits` bounds the addresses;
// `vtpr` is byte 0x80 of the virtual-APIC page vmcs12 names, if it uses the TPR shadow: the
// threshold may not exceed its bits 7:4 (the caller reads it from L1's memory).
EntryCheck check_controls(const Vmcs12& vmcs, u32 physical_address_bits, u8 vtpr);
// The first host-state check it fails, for an L1 whose EFER.LMA is `l1_long_mode`.
EntryCheck check_host_state(const Vmcs12& vmcs, u32 physical_address_bits, bool l1_long_mode);
// What of those two L1 can change without a VMWRITE of a control or host-state field: the TPR
// threshold against VTPR (L1's memory), an injected event against guest CR0.PE (a guest field),
// and HOST_RIP, which L1s write before each entry (HOST_RSP has no check). Once both passed for
// vmcs12 as it is, a VM entry after no VMWRITE that changes_entry_checks, and with L1's EFER.LMA
// as it was, runs only these, in the same order: every other check would pass again.
EntryCheck recheck_controls(const Vmcs12& vmcs, u32 physical_address_bits, u8 vtpr);
EntryCheck recheck_host_state(const Vmcs12& vmcs);
bool changes_entry_checks(u32 encoding);  // a VMWRITE of the full field `encoding`
// EPTP as INVEPT and VM entry check it: write-back tables, 4-level walks, no A/D flags (not
// offered), reserved bits clear, inside the physical-address width.
bool valid_eptp(u64 eptp, u32 physical_address_bits);
bool is_entry_control_check(EntryCheck check);  // VMfailValid 7 (else 8)

}  // namespace nestor::nested::vmx
