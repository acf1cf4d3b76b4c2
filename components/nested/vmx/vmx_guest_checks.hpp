// The checks VMLAUNCH / VMRESUME make on vmcs12's guest-state area (SDM 26.3.1) before vmcs02 is
// built from it: those that hold L2 to what L1 was offered (the CR0 / CR4 fixed bits of the
// capability table, EFER bits, the activity states and the VMCS link pointer, which names a
// region in L1's memory) and those whose failure must reach L1 as the SDM gives it. A failure
// is a VM exit into L1 with exit reason 33 ("VM-entry failure due to invalid guest state") and
// bit 31 set, the qualification 0 (or 4 for the link pointer). Every other guest-state check is
// the CPU's own on vmcs02, whose failure L1 gets in the same form (vmx_l2.cpp).
#pragma once

#include "nestor/nested/nested_ops.hpp"
#include "nestor/x86/guest_walk.hpp"
#include "vmcs12.hpp"

namespace nestor::nested::vmx {

enum class GuestCheck : u8 {
    ok,
    cr0,               // against L1's CR0 FIXED0 / FIXED1 (PE and PG exempt under unrestricted guest), PG without PE
    cr4,               // against CR4 FIXED0 / FIXED1 (without the bits L0 does not offer)
    ia32e_mode,        // IA-32e mode guest without CR0.PG / CR4.PAE, or CR4.PCIDE without it
    efer,              // with "load EFER": reserved bits, LMA unlike IA-32e mode guest, LME unlike LMA with paging
    dr7,               // with "load debug controls": bits 63:32
    rflags,            // reserved bits, bit 1, VM in IA-32e mode or real mode, IF for an external interrupt
    activity_state,    // only the active state is offered
    interruptibility,  // reserved bits, SMI blocking, STI and MOV SS together, STI without IF, blocking an event
    link_pointer,      // not all ones and not a region with our revision (shadow-VMCS indicator clear)
};

// What the checks need beyond vmcs12: the CR4 bits L0 does not offer (cr4_not_offered), and for
// the link pointer the current VMCS, MAXPHYADDR and L1's memory.
struct GuestCheckContext {
    u64 cr4_not_offered;
    u64 current_vmcs;
    u32 physical_address_bits;
    Host& host;
};

GuestCheck check_guest_state(const Vmcs12& vmcs, const GuestCheckContext& context);
// The exit qualification of the failure (SDM 26.8: 4 for the VMCS link pointer, else 0).
u64 guest_check_qualification(GuestCheck check);

// SDM 26.3.2.4: an entry into PAE paging loads the four PDPTEs from the VMCS's fields under
// "enable EPT", else from memory at CR3. vmcs02 always runs under EPT (L0's), so without L1's EPT
// the component loads them from L1's memory (L2's physical addresses are L1's) for vmcs02's
// fields.
struct Pdptes {
    u64 entry[x86::kPaePdptes];
};
// PAE paging (CR0.PG and CR4.PAE without "IA-32e mode guest") without L1's EPT.
bool loads_pdptes_from_memory(const Vmcs12& vmcs);
// False when the entry fails (SDM 26.8, qualification kQualificationPdptes): a present PDPTE
// with a reserved bit set (bits 2:1, 8:5, those from MAXPHYADDR up), or a CR3 whose 32 bytes
// are not L1's RAM (the CPU's read of them would find no such PDPTEs).
bool load_pdptes(const Vmcs12& vmcs, u32 physical_address_bits, Host& host, Pdptes& out);
inline constexpr u64 kQualificationPdptes = 2;

}  // namespace nestor::nested::vmx
