// While L2 runs: who owns each exit of vmcb02, and the #VMEXIT into L1 when L1 does.
//
// An exit is L1's when L1's snapshot intercepts it; for IOIO and MSR exits, when L1's own IOPM /
// MSRPM (read from L1's memory at the exit) says so. Everything else is L0's, handled without L1
// seeing it: physical interrupts and NMIs (L0's scheduler tick and host events), nested page
// faults on L1's own memory, and the accesses L0 intercepts for itself that L1 does not (CPUID,
// HLT, ports, MSRs ...), which L0 judges exactly as it would judge L1 making them, never with L0's
// own permissions.
#pragma once

#include "l1_memory.hpp"
#include "svm_arch.hpp"
#include "vmcb02.hpp"

namespace nestor::nested::svm {

// One exit of vmcb02, as the CPU reported it.
struct L2Exit {
    u64 code;           // EXITCODE
    u64 info_1;         // EXITINFO1
    u64 info_2;         // EXITINFO2
    u64 exit_int_info;  // EXITINTINFO: an event the exit interrupted
    u32 msr_index;      // L2's ECX, for MSR exits (the CPU reports it only in the register)
};

enum class Route : u8 {
    reflect,             // L1 intercepts it: #VMEXIT to L1 (write_vmexit + resume_l1)
    l0,                  // L0's business (a physical event, or an access L1 lets L2 make that L0
                         // handles in L1's terms: CPUID, HLT, a port, an MSR, an NPF on L1's memory)
    inject_ud,           // VMMCALL / SKINIT that L1 does not intercept: #UD in L2, as on the CPU
    reflect_as_ud,       // ... and L1 intercepts #UD: that #UD is L1's, #VMEXIT kExitUd
    reinject_exception,  // #DB / #AC that only L0 intercepts (mandatory): deliver it to L2 unchanged
    emulate_for_l2,      // VMLOAD, VMSAVE, STGI, CLGI, INVLPGA that L1 does not intercept: L0
                         // emulates them on L1's virtual CPU
    shadow_npt,          // an #NPF while L1 uses nested paging: ShadowNpt::fault decides
    vmexit_invalid,      // the CPU refused vmcb02 (our checks let something through): L1 gets
                         // VMEXIT_INVALID, never a half-entered L2
};

const char* route_name(Route route);

// The #VMEXIT of Route::reflect_as_ud: the #UD exception intercept.
inline constexpr u64 kExitUd = arch::exit_code::exception(6);

// Whether L1's snapshot asks for `code` (the intercept vectors only, not the permission maps).
bool l1_intercepts(const Vmcb& snapshot, u64 code);

Route route_l2_exit(const Vmcb& snapshot, const L2Exit& exit, L1Memory& memory);

// The instruction intercepts (exit codes misc1_base .. misc2_base + 31, one bit each from
// misc1_base) whose exits route_l2_exit reflects on the snapshot's intercept bit alone: those L1
// asks for, without the physical events (L0's) and IOIO / MSR (L1's permission maps decide).
// Worked out once per VMRUN, from the snapshot, so that the common reflected exit needs one test.
u64 reflected_instructions(const Vmcb& snapshot);

// Whether `code` is among `reflected` (reflected_instructions): then route_l2_exit says
// Route::reflect. False says nothing: route_l2_exit decides.
inline bool reflected_instruction(u64 reflected, u64 code) {
    u64 n = code - arch::exit_code::misc1_base;  // codes below wrap to large values
    return n < 64 && ((reflected >> n) & 1) != 0;
}

// L1's state while L2 runs (what VMRUN saves in the host save area) is L1's own VMCB, vmcb01,
// left as it was at VMRUN with RIP already past the VMRUN: nothing writes those fields of vmcb01
// while L2 runs (the backend runs vmcb02, every exit handled meanwhile is L2's, and the world
// switch's VMSAVE into vmcb01 writes only the VMLOAD state), so they need no copy of their own.
// It is L0's memory, never L1's VM_HSAVE_PA page (the APM leaves that page's format to the
// implementation and forbids software to touch it), so L1 cannot tamper with what it gets back.
// Copying those fields out at VMRUN and back at every #VMEXIT was an eighth of a reflected exit.
//
// At #VMEXIT: what the CPU changes in the state it restores (CPL 0, CR0.PE, RFLAGS.VM clear, DR7
// with every breakpoint off). The caller clears GIF, as every #VMEXIT does. Inline: a call would
// cost as much as the four stores.
inline void resume_l1(VmcbSave& l1) {
    l1.cr0 |= arch::kCr0Pe;
    l1.rflags = (l1.rflags & ~arch::kRflagsVm) | arch::kRflagsFixed1;
    l1.dr7 = arch::kDr7Reset;
    l1.cpl = 0;
}

// The fields VMLOAD / VMSAVE move (between the CPU and a VMCB in L1's memory). They stay in the
// CPU across VMRUN and #VMEXIT: L1 and L2 share them, in vmcb01 (nested_hardware.hpp).
void copy_vmload_state(const VmcbSave& from, VmcbSave& to);

// The exit as L1 sees it (an L2 exit reflected, or one L0 synthesises such as a shadow #NPF).
struct VmexitInfo {
    u64 code;
    u64 info_1;
    u64 info_2;
    u64 exit_int_info;
    u64 next_rip;  // NRIPS (offered): the next instruction for instruction intercepts, else 0
};

// The #VMEXIT's fields, stored straight into vmcb12 (write_vmexit).
inline void write_vmexit_save(VmcbSave& out, const Vmcb& snapshot, const VmcbSave& l2) {
    out.es = l2.es;
    out.cs = l2.cs;
    out.ss = l2.ss;
    out.ds = l2.ds;
    out.gdtr = l2.gdtr;
    out.idtr = l2.idtr;
    out.cpl = l2.cpl;
    out.efer = l2.efer;
    out.cr4 = l2.cr4;
    out.cr3 = l2.cr3;
    out.cr0 = l2.cr0;
    out.dr7 = l2.dr7;
    out.dr6 = l2.dr6;
    out.rflags = l2.rflags;
    out.rip = l2.rip;
    out.rsp = l2.rsp;
    out.rax = l2.rax;
    out.cr2 = l2.cr2;
    // gPAT is L2's only under L1's nested paging; otherwise it was never vmcb12's to begin with.
    if (uses_nested_paging(snapshot)) out.g_pat = l2.g_pat;
}

inline void write_vmexit_control(VmcbControl& out, const Vmcb& snapshot, const VmcbControl& l2,
                                 const VmexitInfo& exit) {
    constexpr u32 kFromL2 = arch::int_ctl::v_tpr | arch::int_ctl::v_irq;
    out.int_ctl = (snapshot.control.int_ctl & ~kFromL2) | (l2.int_ctl & kFromL2);
    out.interrupt_shadow = l2.interrupt_shadow & arch::kInterruptShadow;
    out.exit_code = exit.code;
    out.exit_info_1 = exit.info_1;
    out.exit_info_2 = exit.info_2;
    out.exit_int_info = exit.exit_int_info;
    // Every #VMEXIT clears EVENTINJ.V (an event not delivered yet is in EXITINTINFO): else L1's
    // next VMRUN would inject it a second time.
    if (snapshot.control.event_inject & arch::event::valid)
        out.event_inject = snapshot.control.event_inject & ~arch::event::valid;
    out.next_rip = exit.next_rip;
}

// Writes the #VMEXIT into vmcb12 (L0's writable view of L1's page): L2's state from vmcb02, the
// exit, NRIP, and int_ctl as L1 set it with V_TPR / V_IRQ as L2 left them. Only the fields the
// CPU writes, each once, straight into L1's page: L1 cannot run while its vCPU is here. Inline:
// the exit's fields then go from vmcb02 to vmcb12 without a VmexitInfo in memory between them.
[[gnu::always_inline]] inline void write_vmexit(Vmcb& vmcb12, const Vmcb& snapshot, const Vmcb& vmcb02,
                                                const VmexitInfo& exit) {
    write_vmexit_save(vmcb12.save, snapshot, vmcb02.save);
    write_vmexit_control(vmcb12.control, snapshot, vmcb02.control, exit);
}

// A physical-interrupt-like event for L1 (its virtual interrupt) while `gif` and in guest mode:
// held back (GIF clear, or L1's IF at VMRUN with V_INTR_MASKING), held by L2's IF (without
// V_INTR_MASKING: it waits for L2's interrupt window, then is routed again), a #VMEXIT(INTR) to
// L1, or delivered through L2's IDT (L1 does not intercept INTR).
enum class L1Interrupt : u8 { blocked, l2_interrupts_off, vmexit_intr, deliver_to_l2 };
// `l1_rflags` is L1's RFLAGS at VMRUN (vmcb01's while L2 runs).
L1Interrupt route_l1_interrupt(bool gif, const Vmcb& snapshot, u64 l1_rflags, u64 l2_rflags);

}  // namespace nestor::nested::svm
