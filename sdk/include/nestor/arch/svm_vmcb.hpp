// The AMD SVM virtual machine control block (AMD64 APM vol. 2, appendix B): a 4 KiB page with
// the control area at 0x000 and the state save area at 0x400. One architectural layout, shared
// by Nestor's SVM backend and nested component (nestor/x86/svm/vmcb.hpp, which checks every
// field's offset) and by guests that are hypervisors themselves (the SDK's nestor/svm.hpp).
// It depends on nothing but the compiler.
#pragma once

namespace nestor::amd_svm {

using u8 = __UINT8_TYPE__;
using u16 = __UINT16_TYPE__;
using u32 = __UINT32_TYPE__;
using u64 = __UINT64_TYPE__;

struct VmcbSegment {
    u16 selector;
    u16 attrib;  // descriptor bits 40..47 in 0..7 (type, S, DPL, P), bits 52..55 in 8..11 (AVL, L, D/B, G)
    u32 limit;
    u64 base;
};
static_assert(sizeof(VmcbSegment) == 16);

struct VmcbControl {
    u32 intercept_cr;          // 0x000: bits 0..15 reads, 16..31 writes
    u32 intercept_dr;          // 0x004
    u32 intercept_exceptions;  // 0x008: one bit per vector
    u32 intercept_misc1;       // 0x00C
    u32 intercept_misc2;       // 0x010
    u32 intercept_misc3;       // 0x014
    u8 reserved_018[0x03C - 0x018];
    u16 pause_filter_threshold;  // 0x03C
    u16 pause_filter_count;      // 0x03E
    u64 iopm_base_pa;            // 0x040
    u64 msrpm_base_pa;           // 0x048
    u64 tsc_offset;              // 0x050
    u32 guest_asid;              // 0x058
    u8 tlb_control;              // 0x05C
    u8 reserved_05d[3];
    u32 int_ctl;           // 0x060: V_TPR, V_IRQ, V_INTR_PRIO, V_IGN_TPR, V_INTR_MASKING
    u32 int_vector;        // 0x064
    u64 interrupt_shadow;  // 0x068
    u64 exit_code;         // 0x070
    u64 exit_info_1;       // 0x078
    u64 exit_info_2;       // 0x080
    u64 exit_int_info;     // 0x088
    u64 nested_control;    // 0x090: bit 0 NP_ENABLE
    u64 avic_apic_bar;     // 0x098
    u64 ghcb_pa;           // 0x0A0
    u64 event_inject;      // 0x0A8
    u64 nested_cr3;        // 0x0B0
    u64 virt_ext;          // 0x0B8: LBR virtualization, virtual VMLOAD/VMSAVE
    u32 clean_bits;        // 0x0C0
    u32 reserved_0c4;
    u64 next_rip;                    // 0x0C8 (with NRIPS only)
    u8 bytes_fetched;                // 0x0D0 (with decode assists only)
    u8 guest_instruction_bytes[15];  // 0x0D1
    u64 avic_backing_page;           // 0x0E0
    u64 reserved_0e8;
    u64 avic_logical_table;   // 0x0F0
    u64 avic_physical_table;  // 0x0F8
    u64 reserved_100;
    u64 vmsa_pa;  // 0x108
    u8 reserved_110[0x400 - 0x110];
};

struct VmcbSave {
    VmcbSegment es, cs, ss, ds, fs, gs, gdtr, ldtr, idtr, tr;  // 0x400..0x49F
    u8 reserved_4a0[0x4CB - 0x4A0];
    u8 cpl;  // 0x4CB
    u32 reserved_4cc;
    u64 efer;  // 0x4D0
    u8 reserved_4d8[0x548 - 0x4D8];
    u64 cr4;     // 0x548
    u64 cr3;     // 0x550
    u64 cr0;     // 0x558
    u64 dr7;     // 0x560
    u64 dr6;     // 0x568
    u64 rflags;  // 0x570
    u64 rip;     // 0x578
    u8 reserved_580[0x5D8 - 0x580];
    u64 rsp;             // 0x5D8
    u64 s_cet;           // 0x5E0
    u64 ssp;             // 0x5E8
    u64 isst_addr;       // 0x5F0
    u64 rax;             // 0x5F8
    u64 star;            // 0x600
    u64 lstar;           // 0x608
    u64 cstar;           // 0x610
    u64 sfmask;          // 0x618
    u64 kernel_gs_base;  // 0x620
    u64 sysenter_cs;     // 0x628
    u64 sysenter_esp;    // 0x630
    u64 sysenter_eip;    // 0x638
    u64 cr2;             // 0x640
    u8 reserved_648[0x668 - 0x648];
    u64 g_pat;           // 0x668
    u64 dbgctl;          // 0x670
    u64 br_from;         // 0x678
    u64 br_to;           // 0x680
    u64 last_excp_from;  // 0x688
    u64 last_excp_to;    // 0x690
    u8 reserved_698[0x1000 - 0x698];
};

struct Vmcb {
    VmcbControl control;
    VmcbSave save;
};

static_assert(sizeof(VmcbControl) == 0x400);
static_assert(sizeof(Vmcb) == 0x1000);

}  // namespace nestor::amd_svm
