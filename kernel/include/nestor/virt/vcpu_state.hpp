// Vendor-neutral guest register state. The kernel's exit handler reads and writes this; the
// backend (SVM or VMX) loads it into the hardware structure before entering the guest and stores
// it back after every exit, so the kernel never sees a VMCB or VMCS.
#pragma once

#include "nestor/arch/x86_regs.hpp"
#include "nestor/lib/types.hpp"

namespace nestor::virt {

// General-purpose registers in x86 encoding order (the ModRM/REX register number). The world
// switch assembly relies on this order: gpr[i] lives at offset 8 * i.
enum class Gpr : u8 { rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15, count };

// How the guest's current code segment decodes instructions (default operand and address size).
enum class CpuMode : u8 {
    real16,       // CR0.PE = 0 (also virtual-8086 mode)
    protected16,  // CS.D = 0
    protected32,  // CS.D = 1
    long64,       // EFER.LMA = 1 and CS.L = 1
};

struct VcpuState {
    u64 gpr[static_cast<usize>(Gpr::count)];
    u64 rip;
    u64 rflags;
    // The guest's EFER as the guest sees it (never SVME): the kernel emulates writes to it (an
    // MSR exit) and the backend loads it at the next entry; the CPU updates LMA. With cr0 it is
    // current at least after an MSR exit for EFER and while the nested component switches between
    // L1 and L2 (a backend may leave both older after other exits: only EFER's emulation reads them).
    u64 efer;
    // Read-only for the kernel, as the others below (the backend refreshes mode after each exit):
    // what the exit handler needs to judge the guest's mode. The code's linear address is the
    // backend's business (VirtOps::guest_code reads CS's base where it fetches).
    u64 cr0;
    CpuMode mode;
    // The guest's task priority, CR8 (0-15: the local APIC's TPR bits 7:4). The guest writes it
    // without an exit; the backend stores it here after each exit and loads it at each entry, so
    // the kernel may change it (an xAPIC or x2APIC TPR write): for a vCPU created with
    // InitialMode::task_priority, else it may be left alone.
    u8 cr8;
    // The kernel's, for the next entries: the run ends with ExitKind::task_priority as soon as the
    // guest lowers CR8 below this (0: never), as an interrupt the TPR holds back waits for it.
    // Never above cr8.
    u8 cr8_threshold;

    u64& reg(Gpr r) { return gpr[static_cast<usize>(r)]; }
    u64 reg(Gpr r) const { return gpr[static_cast<usize>(r)]; }
    u64& rax() { return reg(Gpr::rax); }
    u64& rbx() { return reg(Gpr::rbx); }
    u64& rcx() { return reg(Gpr::rcx); }
    u64& rdx() { return reg(Gpr::rdx); }
};

// The architectural bits the kernel touches (nestor/arch/x86_regs.hpp).
using x86_regs::kCr0Pg;
using x86_regs::kEferLma;
using x86_regs::kEferLme;
using x86_regs::kMsrEfer;
using x86_regs::kRflagsFixed1;
using x86_regs::kRflagsIf;
using x86_regs::kRflagsRf;
using x86_regs::kRflagsTf;

// SCE, LME and NXE: what a guest may set in EFER.
inline constexpr u64 kEferGuestWritable = x86_regs::kEferSce | x86_regs::kEferLme | x86_regs::kEferNxe;

// A WRMSR of `value` to EFER, which holds `efer` under CR0 `cr0`: a long-mode guest must set LME
// and may set SCE and NXE; LMA follows paging and is the CPU's to set (a written LMA is ignored);
// SVME and the rest are not offered; as on a CPU, LME may not change while paging is on (it would
// leave LMA and LME disagreeing). False: the WRMSR #GPs; else `out` is the new EFER.
constexpr bool efer_after_write(u64 efer, u64 cr0, u64 value, u64& out) {
    if (value & ~(kEferGuestWritable | kEferLma)) return false;
    if ((cr0 & kCr0Pg) && ((value ^ efer) & kEferLme)) return false;
    out = (value & kEferGuestWritable) | (efer & kEferLma);
    return true;
}

}  // namespace nestor::virt
