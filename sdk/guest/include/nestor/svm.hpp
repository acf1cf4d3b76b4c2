// SVM helpers for guests that are hypervisors themselves (an L1 under Nestor's nested
// virtualization, or on bare hardware): the VMCB layout (AMD64 APM vol. 2, appendix B), the
// intercept bits and exit codes a small test hypervisor needs, the MSR permission map and EVENTINJ
// encodings, and wrappers for VMRUN, VMLOAD, VMSAVE, STGI and CLGI. The guest runtime
// identity-maps its memory, so a VMCB's address is its physical address.
#pragma once

#include "nestor/arch/svm_fields.hpp"
#include "nestor/arch/svm_vmcb.hpp"
#include "nestor/arch/x86_regs.hpp"
#include "nestor/guest.hpp"

namespace nestor::guest::svm {

// The VMCB's layout and the values of its fields (intercept bits, exit codes, EXITINFO layouts,
// EVENTINJ, the permission maps), and the control-register and EFER bits, as Nestor's SVM backend
// uses them.
using namespace amd_svm;
using namespace x86_regs;

inline constexpr u64 kResetPat = 0x0007040600070406;

// Segment attributes (descriptor bits 40-47 and 52-55) of flat 64-bit code and data.
inline constexpr u16 kAttribCode64 = attrib::code_rx | attrib::long_mode | attrib::granularity;
inline constexpr u16 kAttribData = attrib::data_rw | attrib::default32 | attrib::granularity;

// Runs the guest of `vmcb_pa` until its next #VMEXIT. VMRUN itself saves and restores only RAX,
// RSP, RIP and RFLAGS (through the host save area); the guest starts with, and leaves behind, its
// own values in every other register, so all of them are clobbered here. RBP is kept on the
// stack below the red zone.
inline void vmrun(u64 vmcb_pa) {
    asm volatile(
        "sub $128, %%rsp\n\t"
        "push %%rbp\n\t"
        "vmrun %%rax\n\t"
        "pop %%rbp\n\t"
        "add $128, %%rsp"
        : "+a"(vmcb_pa)
        :
        : "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "memory", "cc");
}
template <typename T> inline void vmrun(T* vmcb) { vmrun(reinterpret_cast<u64>(vmcb)); }

// The guest's general-purpose registers a VMCB does not hold (RAX and RSP are in its save area).
struct GuestRegisters {
    u64 rbx, rcx, rdx, rsi, rdi, rbp, r8, r9, r10, r11, r12, r13, r14, r15;
};

// VMRUN as a hypervisor runs it: the guest starts with `regs` and leaves its values there at the
// #VMEXIT (an MSR exit's ECX, a hypercall's arguments ...). The pointer to `regs` is kept on the
// stack across the run, as the guest owns every register meanwhile.
inline void vmrun(u64 vmcb_pa, GuestRegisters& regs) {
    static_assert(__builtin_offsetof(GuestRegisters, r15) == 104);
    GuestRegisters* saved = &regs;
    asm volatile(
        "sub $128, %%rsp\n\t"
        "push %%rbp\n\t"
        "push %%rdi\n\t"
        "mov 0x00(%%rdi), %%rbx\n\t"
        "mov 0x08(%%rdi), %%rcx\n\t"
        "mov 0x10(%%rdi), %%rdx\n\t"
        "mov 0x18(%%rdi), %%rsi\n\t"
        "mov 0x28(%%rdi), %%rbp\n\t"
        "mov 0x30(%%rdi), %%r8\n\t"
        "mov 0x38(%%rdi), %%r9\n\t"
        "mov 0x40(%%rdi), %%r10\n\t"
        "mov 0x48(%%rdi), %%r11\n\t"
        "mov 0x50(%%rdi), %%r12\n\t"
        "mov 0x58(%%rdi), %%r13\n\t"
        "mov 0x60(%%rdi), %%r14\n\t"
        "mov 0x68(%%rdi), %%r15\n\t"
        "mov 0x20(%%rdi), %%rdi\n\t"
        "vmrun %%rax\n\t"
        "push %%rdi\n\t"
        "mov 8(%%rsp), %%rdi\n\t"
        "mov %%rbx, 0x00(%%rdi)\n\t"
        "mov %%rcx, 0x08(%%rdi)\n\t"
        "mov %%rdx, 0x10(%%rdi)\n\t"
        "mov %%rsi, 0x18(%%rdi)\n\t"
        "popq 0x20(%%rdi)\n\t"
        "mov %%rbp, 0x28(%%rdi)\n\t"
        "mov %%r8, 0x30(%%rdi)\n\t"
        "mov %%r9, 0x38(%%rdi)\n\t"
        "mov %%r10, 0x40(%%rdi)\n\t"
        "mov %%r11, 0x48(%%rdi)\n\t"
        "mov %%r12, 0x50(%%rdi)\n\t"
        "mov %%r13, 0x58(%%rdi)\n\t"
        "mov %%r14, 0x60(%%rdi)\n\t"
        "mov %%r15, 0x68(%%rdi)\n\t"
        "pop %%rdi\n\t"
        "pop %%rbp\n\t"
        "add $128, %%rsp"
        : "+a"(vmcb_pa), "+D"(saved)
        :
        : "rbx", "rcx", "rdx", "rsi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "memory", "cc");
}
template <typename T> inline void vmrun(T* vmcb, GuestRegisters& regs) { vmrun(reinterpret_cast<u64>(vmcb), regs); }

// VMLOAD / VMSAVE move FS, GS, TR and LDTR (hidden state included), KernelGsBase, STAR, LSTAR,
// CSTAR, SFMASK and the SYSENTER MSRs between the CPU and the VMCB at `vmcb_pa`.
inline void vmload(u64 vmcb_pa) { asm volatile("vmload %%rax" ::"a"(vmcb_pa) : "memory"); }
inline void vmsave(u64 vmcb_pa) { asm volatile("vmsave %%rax" ::"a"(vmcb_pa) : "memory"); }
template <typename T> inline void vmload(T* vmcb) { vmload(reinterpret_cast<u64>(vmcb)); }
template <typename T> inline void vmsave(T* vmcb) { vmsave(reinterpret_cast<u64>(vmcb)); }

// Every #VMEXIT clears the global interrupt flag; STGI sets it again.
inline void stgi() { asm volatile("stgi" ::: "memory"); }
inline void clgi() { asm volatile("clgi" ::: "memory"); }

// The descriptor-table registers as a VMCB segment (base and limit).
inline VmcbSegment read_gdtr() {
    struct [[gnu::packed]] {
        u16 limit;
        u64 base;
    } r{};
    asm volatile("sgdt %0" : "=m"(r));
    return VmcbSegment{0, 0, r.limit, r.base};
}
inline VmcbSegment read_idtr() {
    struct [[gnu::packed]] {
        u16 limit;
        u64 base;
    } r{};
    asm volatile("sidt %0" : "=m"(r));
    return VmcbSegment{0, 0, r.limit, r.base};
}

inline u16 read_cs() {
    u16 v;
    asm volatile("mov %%cs, %0" : "=r"(v));
    return v;
}
inline u16 read_ss() {
    u16 v;
    asm volatile("mov %%ss, %0" : "=r"(v));
    return v;
}

// The calling code's own flat 64-bit state as a guest's starting state: its CS/SS/DS/ES,
// descriptor tables, control registers, EFER (with SVME: VMRUN requires it) and the reset gPAT,
// CPL 0, DR6/DR7 at reset and interrupts off. An L2 that runs code of its L1's image on L1's
// page tables starts from this; RIP and RSP are the caller's to set.
inline void copy_own_state(VmcbSave& s) {
    s.cs = VmcbSegment{read_cs(), kAttribCode64, 0xFFFFFFFF, 0};
    s.ss = s.ds = s.es = VmcbSegment{read_ss(), kAttribData, 0xFFFFFFFF, 0};
    s.gdtr = read_gdtr();
    s.idtr = read_idtr();
    s.cpl = 0;
    s.efer = rdmsr(kMsrEfer);
    s.cr0 = read_cr0();
    s.cr3 = read_cr3();
    s.cr4 = read_cr4();
    s.dr6 = 0xFFFF0FF0;
    s.dr7 = 0x400;
    s.rflags = 2;
    s.g_pat = kResetPat;
}

// ---- Nested paging for an L1's own guests (NPT) ------------------------------------------------
// An L1 that sets kNestedPagingEnable gives its guest a nested page table (N_CR3): the long-mode
// 4-level format, mapping the guest's physical addresses to the L1's. The CPU walks it as user
// accesses, so every level needs `user`.
namespace npt {
inline constexpr u64 present = u64{1} << 0;
inline constexpr u64 writable = u64{1} << 1;
inline constexpr u64 user = u64{1} << 2;
inline constexpr u64 accessed = u64{1} << 5;     // set by the CPU (or Nestor) when the entry is used
inline constexpr u64 dirty = u64{1} << 6;        // leaves: set on the first write through them
inline constexpr u64 large = u64{1} << 7;        // a 2 MiB (level 2) or 1 GiB (level 3) leaf
inline constexpr u64 no_execute = u64{1} << 63;  // honoured when the L1's EFER.NXE is set
inline constexpr u64 address_mask = 0x000FFFFFFFFFF000;
inline constexpr unsigned levels = 4;
inline unsigned index(u64 guest_physical, unsigned level) { return (guest_physical >> (12 + 9 * (level - 1))) & 511; }
}  // namespace npt

// INVLPGA: drops the translations of guest-linear `linear` for `asid` (with nested paging, what
// the CPU cached of the guest's and the nested tables for it).
inline void invlpga(u64 linear, u32 asid) { asm volatile("invlpga %%rax, %%ecx" ::"a"(linear), "c"(asid) : "memory"); }

}  // namespace nestor::guest::svm
