// The guest registers neither VMRUN nor VM entry switches, which stay in the CPU while the kernel
// runs: x87, SSE, AVX, AVX-512 and PKRU state (XSAVE), XCR0, DR0-DR3 and, on VMX, DR6 and CR2
// (the last page fault's address, which a guest's handler reads after its #PF); and the
// MSRs of the guest's own the kernel never uses (it has no user mode and runs no SWAPGS, SYSCALL,
// SYSRET, RDTSCP or RDPID): TSC_AUX where the CPU has it, and on VMX KERNEL_GS_BASE, STAR, LSTAR,
// CSTAR and SFMASK (SVM's VMLOAD and VMSAVE switch those with the host's at every exit). Each vCPU
// has its own copy; the one whose registers are in the CPU is *resident*, and only entering
// another vCPU saves them and loads the other's (guest_context_load). The kernel never uses these
// registers (-mgeneral-regs-only, no breakpoints), so an exit that returns to the same vCPU costs
// nothing, and a domain never sees another's values: a vCPU's first load puts the architectural
// reset state in every register the guest can reach.
#pragma once

#include "nestor/lib/types.hpp"
#include "nestor/virt/xsave_policy.hpp"

namespace nestor::x86 {

struct GuestContext {
    u8* area;     // the XSAVE (or, without XSAVE, FXSAVE) image, 64-byte aligned, in its own frame
    paddr frame;  // 0: not created
    u64 xcr0;     // the guest's XCR0 while it is not resident
    u64 dr[4];    // DR0-DR3
    u64 dr6;
    u64 cr2;
    bool carries_dr6_cr2;  // VMX: DR6 and CR2 are live registers; SVM keeps them in the VMCB
    // The MSRs it carries: guest_context.cpp's list, entries [msr_first, msr_end).
    u64 msr[6];
    u8 msr_first;
    u8 msr_end;
};

// Readies the CPU for switching (CR4.OSFXSR and OSXSAVE, CR0.TS and EM clear) and works out the
// offer (virt::xsave_offer of this CPU's CPUID). Once, from the backend's enable().
void guest_context_enable();
const virt::XsaveOffer& guest_xsave_offer();
// The CR4 bits a guest may set on this CPU (virt::cr4_guest_settable), worked out with the offer.
u64 guest_cr4_settable();

// Whether the contexts carry TSC_AUX: the CPU has RDTSCP or RDPID (else TSC_AUX does not exist).
bool guest_context_switches_tsc_aux();

// Allocates the vCPU's image, holding the reset state (x87 and SSE initialised, MXCSR 0x1F80,
// XCR0 x87 only, breakpoints 0, CR2 0, the carried MSRs 0). `carries_syscall_msrs`: KERNEL_GS_BASE
// and the SYSCALL MSRs too (VMX). False: out of memory.
bool guest_context_create(GuestContext& context, bool carries_dr6_cr2, bool carries_syscall_msrs);
void guest_context_destroy(GuestContext& context);

// The context whose registers are in the CPU (nullptr: none that still exists).
extern GuestContext* resident_guest_context;
void switch_guest_context(GuestContext& next);

// Makes `context` resident before its vCPU runs.
inline void guest_context_load(GuestContext& context) {
    if (resident_guest_context != &context) [[unlikely]]
        switch_guest_context(context);
}

// A page fault the kernel delivers to a vCPU whose context carries CR2 (VMX): its address, loaded
// at once if the context is resident.
void guest_context_set_cr2(GuestContext& context, u64 cr2);

// The guest's XCR0, and the kernel's accepted XSETBV (loaded at once if the context is resident).
u64 guest_context_xcr0(const GuestContext& context);
void guest_context_set_xcr0(GuestContext& context, u64 xcr0);

}  // namespace nestor::x86
