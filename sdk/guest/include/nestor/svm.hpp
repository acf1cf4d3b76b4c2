// SVM helpers for guests that are hypervisors themselves (an L1 under Nestor's nested
// virtualization, or on bare hardware): the VMCB layout (AMD64 APM vol. 2, appendix B), the
// intercept bits and exit codes a small test hypervisor needs, and wrappers for VMRUN, STGI and
// CLGI. The guest runtime identity-maps its memory, so a VMCB's address is its physical address.
#pragma once

#include "nestor/arch/svm_vmcb.hpp"
#include "nestor/guest.hpp"

namespace nestor::guest::svm {

using amd_svm::Vmcb;
using amd_svm::VmcbControl;
using amd_svm::VmcbSave;
using amd_svm::VmcbSegment;


inline constexpr u32 kMsrEfer = 0xC0000080;
inline constexpr u32 kMsrVmHsavePa = 0xC0010117;
inline constexpr u64 kEferSvme = u64{1} << 12;
inline constexpr u64 kIopmBytes = 3 * 4096;
inline constexpr u64 kMsrpmBytes = 2 * 4096;
inline constexpr u64 kNestedPagingEnable = 1;
inline constexpr u64 kResetPat = 0x0007040600070406;

// intercept_misc1 / intercept_misc2 bits.
namespace intercept1 {
inline constexpr u32 intr = 1u << 0;
inline constexpr u32 cpuid = 1u << 18;
inline constexpr u32 hlt = 1u << 24;
inline constexpr u32 ioio_prot = 1u << 27;
inline constexpr u32 msr_prot = 1u << 28;
}  // namespace intercept1
namespace intercept2 {
inline constexpr u32 vmrun = 1u << 0;  // VMRUN refuses a VMCB without it
inline constexpr u32 vmmcall = 1u << 1;
}  // namespace intercept2

namespace exit_code {
inline constexpr u64 cpuid = 0x72;
inline constexpr u64 hlt = 0x78;
inline constexpr u64 ioio = 0x7B;
inline constexpr u64 vmmcall = 0x81;
inline constexpr u64 npf = 0x400;
inline constexpr u64 invalid = ~u64{0};  // VMEXIT_INVALID: the VMCB failed VMRUN's checks
}  // namespace exit_code

// IOIO EXITINFO1: direction (bit 0, 1 = IN), sizes (bits 4-6), the port (bits 16-31).
namespace ioio {
inline constexpr u64 in = 1u << 0;
inline constexpr u64 size8 = 1u << 4;
inline constexpr u64 size16 = 1u << 5;
inline constexpr u64 size32 = 1u << 6;
inline u16 port(u64 info) { return static_cast<u16>(info >> 16); }
inline unsigned size(u64 info) { return (info & size32) ? 4 : (info & size16) ? 2 : (info & size8) ? 1 : 0; }
}  // namespace ioio

// Segment attributes (descriptor bits 40-47 and 52-55) of flat 64-bit code and data.
inline constexpr u16 kAttribCode64 = 0xA9B;
inline constexpr u16 kAttribData = 0xC93;

// Runs the guest of `vmcb_pa` until its next #VMEXIT. VMRUN itself saves and restores only RAX,
// RSP, RIP and RFLAGS (through the host save area); the guest starts with, and leaves behind, its
// own values in every other register, so all of them are clobbered here. RBP is kept on the
// stack below the red zone.
inline void vmrun(u64 vmcb_pa) {
    asm volatile("sub $128, %%rsp\n\t"
                 "push %%rbp\n\t"
                 "vmrun %%rax\n\t"
                 "pop %%rbp\n\t"
                 "add $128, %%rsp"
                 : "+a"(vmcb_pa)
                 :
                 : "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
                   "memory", "cc");
}
template <typename T> inline void vmrun(T* vmcb) { vmrun(reinterpret_cast<u64>(vmcb)); }

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

}  // namespace nestor::guest::svm
