// SVM helpers for guests that are hypervisors themselves (an L1 under Nestor's nested
// virtualization, or on bare hardware): the VMCB layout (AMD64 APM vol. 2, appendix B), the
// intercept bits and exit codes a small test hypervisor needs, and wrappers for VMRUN, STGI and
// CLGI. The guest runtime identity-maps its memory, so a VMCB's address is its physical address.
#pragma once

#include "nestor/guest.hpp"

namespace nestor::guest::svm {

struct VmcbSegment {
    u16 selector;
    u16 attrib;  // descriptor bits 40..47 in 0..7 (type, S, DPL, P), bits 52..55 in 8..11 (AVL, L, D/B, G)
    u32 limit;
    u64 base;
};
static_assert(sizeof(VmcbSegment) == 16);

struct VmcbControl {
    u32 intercept_cr;         // 0x000: bits 0..15 reads, 16..31 writes
    u32 intercept_dr;         // 0x004
    u32 intercept_exceptions; // 0x008: one bit per vector
    u32 intercept_misc1;      // 0x00C
    u32 intercept_misc2;      // 0x010
    u32 intercept_misc3;      // 0x014
    u8 reserved_018[0x03C - 0x018];
    u16 pause_filter_threshold;  // 0x03C
    u16 pause_filter_count;      // 0x03E
    u64 iopm_base_pa;            // 0x040
    u64 msrpm_base_pa;           // 0x048
    u64 tsc_offset;              // 0x050
    u32 guest_asid;              // 0x058
    u8 tlb_control;              // 0x05C
    u8 reserved_05d[3];
    u32 int_ctl;                 // 0x060: V_TPR, V_IRQ, V_INTR_PRIO, V_IGN_TPR, V_INTR_MASKING
    u32 int_vector;              // 0x064
    u64 interrupt_shadow;        // 0x068
    u64 exit_code;               // 0x070
    u64 exit_info_1;             // 0x078
    u64 exit_info_2;             // 0x080
    u64 exit_int_info;           // 0x088
    u64 nested_control;          // 0x090: bit 0 NP_ENABLE
    u64 avic_apic_bar;           // 0x098
    u64 ghcb_pa;                 // 0x0A0
    u64 event_inject;            // 0x0A8
    u64 nested_cr3;              // 0x0B0
    u64 virt_ext;                // 0x0B8: LBR virtualization, virtual VMLOAD/VMSAVE
    u32 clean_bits;              // 0x0C0
    u32 reserved_0c4;
    u64 next_rip;                // 0x0C8 (with NRIPS only)
    u8 bytes_fetched;            // 0x0D0 (with decode assists only)
    u8 guest_instruction_bytes[15];  // 0x0D1
    u64 avic_backing_page;       // 0x0E0
    u64 reserved_0e8;
    u64 avic_logical_table;      // 0x0F0
    u64 avic_physical_table;     // 0x0F8
    u64 reserved_100;
    u64 vmsa_pa;                 // 0x108
    u8 reserved_110[0x400 - 0x110];
};

struct VmcbSave {
    VmcbSegment es, cs, ss, ds, fs, gs, gdtr, ldtr, idtr, tr;  // 0x400..0x49F
    u8 reserved_4a0[0x4CB - 0x4A0];
    u8 cpl;                      // 0x4CB
    u32 reserved_4cc;
    u64 efer;                    // 0x4D0
    u8 reserved_4d8[0x548 - 0x4D8];
    u64 cr4;                     // 0x548
    u64 cr3;                     // 0x550
    u64 cr0;                     // 0x558
    u64 dr7;                     // 0x560
    u64 dr6;                     // 0x568
    u64 rflags;                  // 0x570
    u64 rip;                     // 0x578
    u8 reserved_580[0x5D8 - 0x580];
    u64 rsp;                     // 0x5D8
    u64 s_cet;                   // 0x5E0
    u64 ssp;                     // 0x5E8
    u64 isst_addr;               // 0x5F0
    u64 rax;                     // 0x5F8
    u64 star;                    // 0x600
    u64 lstar;                   // 0x608
    u64 cstar;                   // 0x610
    u64 sfmask;                  // 0x618
    u64 kernel_gs_base;          // 0x620
    u64 sysenter_cs;             // 0x628
    u64 sysenter_esp;            // 0x630
    u64 sysenter_eip;            // 0x638
    u64 cr2;                     // 0x640
    u8 reserved_648[0x668 - 0x648];
    u64 g_pat;                   // 0x668
    u64 dbgctl;                  // 0x670
    u64 br_from;                 // 0x678
    u64 br_to;                   // 0x680
    u64 last_excp_from;          // 0x688
    u64 last_excp_to;            // 0x690
    u8 reserved_698[0x1000 - 0x698];
};

struct Vmcb {
    VmcbControl control;
    VmcbSave save;
};
static_assert(sizeof(Vmcb) == 0x1000);
static_assert(__builtin_offsetof(Vmcb, control.exit_code) == 0x070);
static_assert(__builtin_offsetof(Vmcb, control.next_rip) == 0x0C8);
static_assert(__builtin_offsetof(Vmcb, save.efer) == 0x4D0);
static_assert(__builtin_offsetof(Vmcb, save.rip) == 0x578);
static_assert(__builtin_offsetof(Vmcb, save.rax) == 0x5F8);
static_assert(__builtin_offsetof(Vmcb, save.g_pat) == 0x668);

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
