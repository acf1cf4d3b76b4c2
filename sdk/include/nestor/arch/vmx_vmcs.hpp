// Intel VMX architectural constants (Intel SDM vol. 3C, chapters 24-28 and appendices A-C):
// capability MSRs, VMCS field encodings, control bits, exit reasons and the layouts of the
// exit-information fields. One definition for Nestor's VMX backend (nestor/x86/vmx/vmcs.hpp),
// its nested component and guests that are hypervisors themselves. It depends on nothing but the
// compiler.
#pragma once

#include "nestor/arch/x86_regs.hpp"

namespace nestor::intel_vmx {

using u8 = __UINT8_TYPE__;
using u32 = __UINT32_TYPE__;
using u64 = __UINT64_TYPE__;

// Capability and control MSRs (SDM appendix A).
namespace vmx_msr {
inline constexpr u32 feature_control = 0x3A;
inline constexpr u32 sysenter_cs = x86_regs::kMsrSysenterCs;
inline constexpr u32 sysenter_esp = x86_regs::kMsrSysenterEsp;
inline constexpr u32 sysenter_eip = x86_regs::kMsrSysenterEip;
inline constexpr u32 pat = x86_regs::kMsrPat;
inline constexpr u32 vmx_basic = 0x480;
inline constexpr u32 vmx_pinbased_ctls = 0x481;
inline constexpr u32 vmx_procbased_ctls = 0x482;
inline constexpr u32 vmx_exit_ctls = 0x483;
inline constexpr u32 vmx_entry_ctls = 0x484;
inline constexpr u32 vmx_misc = 0x485;
inline constexpr u32 vmx_cr0_fixed0 = 0x486;
inline constexpr u32 vmx_cr0_fixed1 = 0x487;
inline constexpr u32 vmx_cr4_fixed0 = 0x488;
inline constexpr u32 vmx_cr4_fixed1 = 0x489;
inline constexpr u32 vmx_vmcs_enum = 0x48A;
inline constexpr u32 vmx_procbased_ctls2 = 0x48B;
inline constexpr u32 vmx_ept_vpid_cap = 0x48C;
inline constexpr u32 vmx_true_pinbased_ctls = 0x48D;
inline constexpr u32 vmx_true_procbased_ctls = 0x48E;
inline constexpr u32 vmx_true_exit_ctls = 0x48F;
inline constexpr u32 vmx_true_entry_ctls = 0x490;
inline constexpr u32 vmx_vmfunc = 0x491;  // the last VMX capability MSR
inline constexpr u32 efer = x86_regs::kMsrEfer;
inline constexpr u32 fs_base = x86_regs::kMsrFsBase;
inline constexpr u32 gs_base = x86_regs::kMsrGsBase;
}  // namespace vmx_msr

// IA32_FEATURE_CONTROL.
namespace feature_control {
inline constexpr u64 lock = u64{1} << 0;
inline constexpr u64 vmx_inside_smx = u64{1} << 1;
inline constexpr u64 vmx_outside_smx = u64{1} << 2;
}  // namespace feature_control

// IA32_VMX_BASIC.
namespace basic {
inline constexpr u64 revision_mask = 0x7FFFFFFF;
inline constexpr u32 region_size_shift = 32;  // bits 44:32
inline constexpr u64 region_size_mask = 0x1FFF;
inline constexpr u64 physical_width_32 = u64{1} << 48;
inline constexpr u32 memory_type_shift = 50;  // bits 53:50
inline constexpr u64 io_exit_info = u64{1} << 54;
inline constexpr u64 true_controls = u64{1} << 55;  // the TRUE_ control MSRs exist
}  // namespace basic

// IA32_VMX_MISC.
namespace misc {
inline constexpr u64 preemption_timer_rate_mask = 0x1F;  // the timer counts every 2^rate TSC ticks
inline constexpr u64 unrestricted_lma = u64{1} << 5;
// Bits 27:25, N: each MSR list should hold at most 512 * (N + 1) entries.
inline constexpr u32 msr_list_scale_shift = 25;
inline constexpr u64 msr_list_scale_mask = 7;
inline constexpr u32 msr_list_entries_unit = 512;
}  // namespace misc

// An entry of the VM-entry MSR-load and VM-exit MSR-store / MSR-load lists (SDM 24.7.2, 24.8.2):
// the MSR's index in bits 31:0, bits 63:32 reserved, the value in bits 127:64. A list's address
// is 16-byte aligned.
namespace msr_entry {
inline constexpr u32 bytes = 16;
inline constexpr u32 data_offset = 8;
}  // namespace msr_entry

// The VMX-abort indicator a VM exit that cannot complete writes (SDM 27.7).
namespace vmx_abort {
inline constexpr u32 saving_guest_msrs = 1;
inline constexpr u32 loading_host_msrs = 4;
}  // namespace vmx_abort

// IA32_VMX_EPT_VPID_CAP.
namespace ept_vpid_cap {
inline constexpr u64 walk_length_4 = u64{1} << 6;
inline constexpr u64 memory_type_uc = u64{1} << 8;
inline constexpr u64 memory_type_wb = u64{1} << 14;
inline constexpr u64 pages_2m = u64{1} << 16;
inline constexpr u64 pages_1g = u64{1} << 17;
inline constexpr u64 invept = u64{1} << 20;
inline constexpr u64 invept_single_context = u64{1} << 25;
inline constexpr u64 invept_all_context = u64{1} << 26;
inline constexpr u64 invvpid = u64{1} << 32;
inline constexpr u64 invvpid_single_context = u64{1} << 41;
inline constexpr u64 invvpid_all_context = u64{1} << 42;
}  // namespace ept_vpid_cap

// INVEPT / INVVPID types.
inline constexpr u64 kInveptSingleContext = 1;
inline constexpr u64 kInveptAllContext = 2;
inline constexpr u64 kInvvpidSingleContext = 1;
inline constexpr u64 kInvvpidAllContext = 2;

// VMCS field encodings (SDM appendix B).
namespace field {
// 16-bit control
inline constexpr u32 vpid = 0x0000;
// 16-bit guest state
inline constexpr u32 guest_es_selector = 0x0800;
inline constexpr u32 guest_cs_selector = 0x0802;
inline constexpr u32 guest_ss_selector = 0x0804;
inline constexpr u32 guest_ds_selector = 0x0806;
inline constexpr u32 guest_fs_selector = 0x0808;
inline constexpr u32 guest_gs_selector = 0x080A;
inline constexpr u32 guest_ldtr_selector = 0x080C;
inline constexpr u32 guest_tr_selector = 0x080E;
// 16-bit host state
inline constexpr u32 host_es_selector = 0x0C00;
inline constexpr u32 host_cs_selector = 0x0C02;
inline constexpr u32 host_ss_selector = 0x0C04;
inline constexpr u32 host_ds_selector = 0x0C06;
inline constexpr u32 host_fs_selector = 0x0C08;
inline constexpr u32 host_gs_selector = 0x0C0A;
inline constexpr u32 host_tr_selector = 0x0C0C;
// 64-bit control
inline constexpr u32 io_bitmap_a = 0x2000;
inline constexpr u32 io_bitmap_b = 0x2002;
inline constexpr u32 msr_bitmap = 0x2004;
inline constexpr u32 exit_msr_store_address = 0x2006;
inline constexpr u32 exit_msr_load_address = 0x2008;
inline constexpr u32 entry_msr_load_address = 0x200A;
inline constexpr u32 tsc_offset = 0x2010;
inline constexpr u32 virtual_apic_page_address = 0x2012;
inline constexpr u32 ept_pointer = 0x201A;
// 64-bit read-only
inline constexpr u32 guest_physical_address = 0x2400;
// 64-bit guest state
inline constexpr u32 vmcs_link_pointer = 0x2800;
inline constexpr u32 guest_debugctl = 0x2802;
inline constexpr u32 guest_pat = 0x2804;
inline constexpr u32 guest_efer = 0x2806;
inline constexpr u32 guest_pdpte0 = 0x280A;  // PAE paging under EPT: the PDPTEs the CPU loaded
inline constexpr u32 guest_pdpte1 = 0x280C;
inline constexpr u32 guest_pdpte2 = 0x280E;
inline constexpr u32 guest_pdpte3 = 0x2810;
// 64-bit host state
inline constexpr u32 host_pat = 0x2C00;
inline constexpr u32 host_efer = 0x2C02;
// 32-bit control
inline constexpr u32 pin_based_controls = 0x4000;
inline constexpr u32 primary_controls = 0x4002;
inline constexpr u32 exception_bitmap = 0x4004;
inline constexpr u32 page_fault_error_mask = 0x4006;
inline constexpr u32 page_fault_error_match = 0x4008;
inline constexpr u32 cr3_target_count = 0x400A;
inline constexpr u32 exit_controls = 0x400C;
inline constexpr u32 exit_msr_store_count = 0x400E;
inline constexpr u32 exit_msr_load_count = 0x4010;
inline constexpr u32 entry_controls = 0x4012;
inline constexpr u32 entry_msr_load_count = 0x4014;
inline constexpr u32 entry_interruption_info = 0x4016;
inline constexpr u32 entry_exception_error_code = 0x4018;
inline constexpr u32 entry_instruction_length = 0x401A;
inline constexpr u32 tpr_threshold = 0x401C;
inline constexpr u32 secondary_controls = 0x401E;
// 32-bit read-only
inline constexpr u32 instruction_error = 0x4400;
inline constexpr u32 exit_reason = 0x4402;
inline constexpr u32 exit_interruption_info = 0x4404;
inline constexpr u32 exit_interruption_error_code = 0x4406;
inline constexpr u32 idt_vectoring_info = 0x4408;
inline constexpr u32 idt_vectoring_error_code = 0x440A;
inline constexpr u32 exit_instruction_length = 0x440C;
inline constexpr u32 exit_instruction_info = 0x440E;
// 32-bit guest state
inline constexpr u32 guest_es_limit = 0x4800;
inline constexpr u32 guest_cs_limit = 0x4802;
inline constexpr u32 guest_ss_limit = 0x4804;
inline constexpr u32 guest_ds_limit = 0x4806;
inline constexpr u32 guest_fs_limit = 0x4808;
inline constexpr u32 guest_gs_limit = 0x480A;
inline constexpr u32 guest_ldtr_limit = 0x480C;
inline constexpr u32 guest_tr_limit = 0x480E;
inline constexpr u32 guest_gdtr_limit = 0x4810;
inline constexpr u32 guest_idtr_limit = 0x4812;
inline constexpr u32 guest_es_access_rights = 0x4814;
inline constexpr u32 guest_cs_access_rights = 0x4816;
inline constexpr u32 guest_ss_access_rights = 0x4818;
inline constexpr u32 guest_ds_access_rights = 0x481A;
inline constexpr u32 guest_fs_access_rights = 0x481C;
inline constexpr u32 guest_gs_access_rights = 0x481E;
inline constexpr u32 guest_ldtr_access_rights = 0x4820;
inline constexpr u32 guest_tr_access_rights = 0x4822;
inline constexpr u32 guest_interruptibility = 0x4824;
inline constexpr u32 guest_activity_state = 0x4826;
inline constexpr u32 guest_sysenter_cs = 0x482A;
inline constexpr u32 preemption_timer_value = 0x482E;
// 32-bit host state
inline constexpr u32 host_sysenter_cs = 0x4C00;
// natural-width control
inline constexpr u32 cr0_guest_host_mask = 0x6000;
inline constexpr u32 cr4_guest_host_mask = 0x6002;
inline constexpr u32 cr0_read_shadow = 0x6004;
inline constexpr u32 cr4_read_shadow = 0x6006;
// natural-width read-only
inline constexpr u32 exit_qualification = 0x6400;
inline constexpr u32 guest_linear_address = 0x640A;
// natural-width guest state
inline constexpr u32 guest_cr0 = 0x6800;
inline constexpr u32 guest_cr3 = 0x6802;
inline constexpr u32 guest_cr4 = 0x6804;
inline constexpr u32 guest_es_base = 0x6806;
inline constexpr u32 guest_cs_base = 0x6808;
inline constexpr u32 guest_ss_base = 0x680A;
inline constexpr u32 guest_ds_base = 0x680C;
inline constexpr u32 guest_fs_base = 0x680E;
inline constexpr u32 guest_gs_base = 0x6810;
inline constexpr u32 guest_ldtr_base = 0x6812;
inline constexpr u32 guest_tr_base = 0x6814;
inline constexpr u32 guest_gdtr_base = 0x6816;
inline constexpr u32 guest_idtr_base = 0x6818;
inline constexpr u32 guest_dr7 = 0x681A;
inline constexpr u32 guest_rsp = 0x681C;
inline constexpr u32 guest_rip = 0x681E;
inline constexpr u32 guest_rflags = 0x6820;
inline constexpr u32 guest_pending_debug_exceptions = 0x6822;
inline constexpr u32 guest_sysenter_esp = 0x6824;
inline constexpr u32 guest_sysenter_eip = 0x6826;
// natural-width host state
inline constexpr u32 host_cr0 = 0x6C00;
inline constexpr u32 host_cr3 = 0x6C02;
inline constexpr u32 host_cr4 = 0x6C04;
inline constexpr u32 host_fs_base = 0x6C06;
inline constexpr u32 host_gs_base = 0x6C08;
inline constexpr u32 host_tr_base = 0x6C0A;
inline constexpr u32 host_gdtr_base = 0x6C0C;
inline constexpr u32 host_idtr_base = 0x6C0E;
inline constexpr u32 host_sysenter_esp = 0x6C10;
inline constexpr u32 host_sysenter_eip = 0x6C12;
inline constexpr u32 host_rsp = 0x6C14;
inline constexpr u32 host_rip = 0x6C16;
}  // namespace field

// Pin-based VM-execution controls.
namespace pin {
inline constexpr u32 external_interrupt_exiting = 1u << 0;
inline constexpr u32 nmi_exiting = 1u << 3;
inline constexpr u32 virtual_nmis = 1u << 5;
inline constexpr u32 preemption_timer = 1u << 6;
}  // namespace pin

// Primary processor-based VM-execution controls.
namespace primary {
inline constexpr u32 interrupt_window_exiting = 1u << 2;
inline constexpr u32 use_tsc_offsetting = 1u << 3;
inline constexpr u32 hlt_exiting = 1u << 7;
inline constexpr u32 invlpg_exiting = 1u << 9;
inline constexpr u32 mwait_exiting = 1u << 10;
inline constexpr u32 rdpmc_exiting = 1u << 11;
inline constexpr u32 rdtsc_exiting = 1u << 12;
inline constexpr u32 cr3_load_exiting = 1u << 15;
inline constexpr u32 cr3_store_exiting = 1u << 16;
inline constexpr u32 cr8_load_exiting = 1u << 19;
inline constexpr u32 cr8_store_exiting = 1u << 20;
inline constexpr u32 use_tpr_shadow = 1u << 21;      // CR8 is the virtual-APIC page's VTPR
inline constexpr u32 nmi_window_exiting = 1u << 22;  // needs the virtual-NMIs pin control
inline constexpr u32 mov_dr_exiting = 1u << 23;
inline constexpr u32 unconditional_io_exiting = 1u << 24;
inline constexpr u32 use_io_bitmaps = 1u << 25;
inline constexpr u32 use_msr_bitmaps = 1u << 28;
inline constexpr u32 monitor_exiting = 1u << 29;
inline constexpr u32 pause_exiting = 1u << 30;
inline constexpr u32 activate_secondary = 1u << 31;
}  // namespace primary

// Secondary processor-based VM-execution controls.
namespace secondary {
inline constexpr u32 enable_ept = 1u << 1;
inline constexpr u32 enable_rdtscp = 1u << 3;
inline constexpr u32 enable_vpid = 1u << 5;
inline constexpr u32 wbinvd_exiting = 1u << 6;  // WBINVD and WBNOINVD
inline constexpr u32 unrestricted_guest = 1u << 7;
inline constexpr u32 enable_invpcid = 1u << 12;
inline constexpr u32 enable_vmfunc = 1u << 13;
inline constexpr u32 enable_xsaves = 1u << 20;
}  // namespace secondary

// VM-exit controls.
namespace exit_ctl {
inline constexpr u32 save_debug_controls = 1u << 2;
inline constexpr u32 host_address_space_size = 1u << 9;
inline constexpr u32 acknowledge_interrupt = 1u << 15;
inline constexpr u32 save_pat = 1u << 18;
inline constexpr u32 load_pat = 1u << 19;
inline constexpr u32 save_efer = 1u << 20;
inline constexpr u32 load_efer = 1u << 21;
inline constexpr u32 save_preemption_timer = 1u << 22;
}  // namespace exit_ctl

// VM-entry controls.
namespace entry_ctl {
inline constexpr u32 load_debug_controls = 1u << 2;
inline constexpr u32 ia32e_mode_guest = 1u << 9;
inline constexpr u32 load_pat = 1u << 14;
inline constexpr u32 load_efer = 1u << 15;
}  // namespace entry_ctl

// Basic exit reasons (SDM appendix C). Bit 31 of the exit-reason field: VM-entry failure.
namespace exit_reason {
inline constexpr u32 exception_or_nmi = 0;
inline constexpr u32 external_interrupt = 1;
inline constexpr u32 triple_fault = 2;
inline constexpr u32 init_signal = 3;
inline constexpr u32 sipi = 4;
inline constexpr u32 io_smi = 5;
inline constexpr u32 other_smi = 6;
inline constexpr u32 interrupt_window = 7;
inline constexpr u32 nmi_window = 8;
inline constexpr u32 task_switch = 9;
inline constexpr u32 cpuid = 10;
inline constexpr u32 getsec = 11;
inline constexpr u32 hlt = 12;
inline constexpr u32 invd = 13;
inline constexpr u32 invlpg = 14;
inline constexpr u32 rdpmc = 15;
inline constexpr u32 rdtsc = 16;
inline constexpr u32 rsm = 17;
inline constexpr u32 vmcall = 18;
inline constexpr u32 vmclear = 19;
inline constexpr u32 vmlaunch = 20;
inline constexpr u32 vmptrld = 21;
inline constexpr u32 vmptrst = 22;
inline constexpr u32 vmread = 23;
inline constexpr u32 vmresume = 24;
inline constexpr u32 vmwrite = 25;
inline constexpr u32 vmxoff = 26;
inline constexpr u32 vmxon = 27;
inline constexpr u32 cr_access = 28;
inline constexpr u32 dr_access = 29;
inline constexpr u32 io_instruction = 30;
inline constexpr u32 rdmsr = 31;
inline constexpr u32 wrmsr = 32;
inline constexpr u32 invalid_guest_state = 33;
inline constexpr u32 msr_loading = 34;
inline constexpr u32 mwait = 36;
inline constexpr u32 monitor_trap_flag = 37;
inline constexpr u32 monitor = 39;
inline constexpr u32 pause = 40;
inline constexpr u32 machine_check = 41;
inline constexpr u32 tpr_below_threshold = 43;
inline constexpr u32 ept_violation = 48;
inline constexpr u32 ept_misconfiguration = 49;
inline constexpr u32 invept = 50;
inline constexpr u32 rdtscp = 51;
inline constexpr u32 preemption_timer = 52;
inline constexpr u32 invvpid = 53;
inline constexpr u32 wbinvd = 54;
inline constexpr u32 xsetbv = 55;
inline constexpr u32 vmfunc = 59;
inline constexpr u32 basic_mask = 0xFFFF;
inline constexpr u32 entry_failure = 1u << 31;
}  // namespace exit_reason

// Exit qualification of I/O instructions (SDM table 28-5).
namespace io_qual {
inline constexpr u64 size_mask = 0x7;  // 0: 1 byte, 1: 2 bytes, 3: 4 bytes
inline constexpr u64 direction_in = u64{1} << 3;
inline constexpr u64 string = u64{1} << 4;
inline constexpr u64 rep = u64{1} << 5;
inline constexpr u64 immediate = u64{1} << 6;
inline constexpr u32 port_shift = 16;
}  // namespace io_qual

// Exit qualification of EPT violations (SDM table 28-7).
namespace ept_qual {
inline constexpr u64 read = u64{1} << 0;
inline constexpr u64 write = u64{1} << 1;
inline constexpr u64 fetch = u64{1} << 2;
inline constexpr u64 readable = u64{1} << 3;  // what the translation allowed
inline constexpr u64 writable = u64{1} << 4;
inline constexpr u64 executable = u64{1} << 5;
inline constexpr u64 linear_valid = u64{1} << 7;
inline constexpr u64 nmi_unblocking = u64{1} << 12;  // the access was by an IRET that unblocked NMIs
}  // namespace ept_qual

// Interruption-information format (entry injection, exit interruption, IDT vectoring).
namespace intr_info {
inline constexpr u32 vector_mask = 0xFF;
inline constexpr u32 type_shift = 8;
inline constexpr u32 type_mask = 0x7u << type_shift;
inline constexpr u32 type_external = 0u << type_shift;
inline constexpr u32 type_nmi = 2u << type_shift;
inline constexpr u32 type_hardware_exception = 3u << type_shift;
inline constexpr u32 type_software_interrupt = 4u << type_shift;
inline constexpr u32 type_privileged_software_exception = 5u << type_shift;
inline constexpr u32 type_software_exception = 6u << type_shift;
inline constexpr u32 error_code_valid = 1u << 11;
inline constexpr u32 nmi_unblocking = 1u << 12;
inline constexpr u32 valid = 1u << 31;
}  // namespace intr_info

// The exit qualification of a #DB (SDM table 28-1) and the pending-debug-exceptions field: DR6's
// B0-B3, BD and BS where DR6 has them, and RTM set where DR6's (active-low) RTM bit is clear.
namespace debug_qual {
inline constexpr u64 breakpoints = 0xF;                  // B0-B3
inline constexpr u64 enabled_breakpoint = u64{1} << 12;  // pending debug exceptions only
inline constexpr u64 bd = u64{1} << 13;
inline constexpr u64 bs = u64{1} << 14;
inline constexpr u64 rtm = u64{1} << 16;
}  // namespace debug_qual

// Guest interruptibility state (SDM 24.4.2): what blocks events for the next instruction.
namespace interruptibility {
inline constexpr u64 sti = u64{1} << 0;
inline constexpr u64 mov_ss = u64{1} << 1;
inline constexpr u64 nmi = u64{1} << 3;  // with virtual NMIs: virtual-NMI blocking
}  // namespace interruptibility

// The MSR bitmap (SDM 24.6.9): a 4 KiB page of four 1 KiB bitmaps, reads of MSRs 0-0x1FFF, reads
// of 0xC0000000-0xC0001FFF, then writes of each; a set bit makes the access exit. MSRs outside
// both ranges always exit.
namespace msr_bitmap {
inline constexpr u32 bytes = 4096;
inline constexpr u32 msrs_per_range = 0x2000;
inline constexpr u32 high_first = 0xC0000000;
inline constexpr u32 write_offset = 2048;  // the write bitmaps follow the read bitmaps
// Clears the read and write bits of `msr`: the guest accesses it without an exit. False if the
// bitmap cannot name it.
inline bool pass_through(u8* bitmap, u32 msr) {
    u32 offset;
    if (msr < msrs_per_range)
        offset = 0;
    else if (msr - high_first < msrs_per_range)
        offset = 1024;
    else
        return false;
    u32 bit = msr & (msrs_per_range - 1);
    u8 mask = static_cast<u8>(~(1u << (bit % 8)));
    bitmap[offset + bit / 8] &= mask;
    bitmap[write_offset + offset + bit / 8] &= mask;
    return true;
}
}  // namespace msr_bitmap

// Segment access rights in the VMCS (SDM table 24-2): descriptor bits 40..47 in 0..7, bits
// 52..55 in 12..15, and bit 16 "unusable".
namespace access_rights {
inline constexpr u32 accessed = 1u << 0;
inline constexpr u32 type_data_rw = 0x3;  // read/write, accessed
inline constexpr u32 type_code_rx = 0xB;  // execute/read, accessed
inline constexpr u32 type_ldt = 0x2;
inline constexpr u32 type_tss16_busy = 0x3;
inline constexpr u32 type_tss_busy = 0xB;     // 32-bit / 64-bit busy TSS
inline constexpr u32 code_or_data = 1u << 4;  // S
inline constexpr u32 dpl_shift = 5;
inline constexpr u32 present = 1u << 7;
inline constexpr u32 avl = 1u << 12;
inline constexpr u32 long_mode = 1u << 13;    // L
inline constexpr u32 default32 = 1u << 14;    // D/B
inline constexpr u32 granularity = 1u << 15;  // G
inline constexpr u32 unusable = 1u << 16;
}  // namespace access_rights

// EPT entries (SDM 28.3.2): not x86 page-table entries.
namespace ept {
inline constexpr u64 read = u64{1} << 0;
inline constexpr u64 write = u64{1} << 1;
inline constexpr u64 execute = u64{1} << 2;
inline constexpr u64 permissions_mask = 0x7;
inline constexpr u32 memory_type_shift = 3;  // leaves: bits 5:3
inline constexpr u64 memory_type_mask = u64{0x7} << memory_type_shift;
inline constexpr u64 ignore_pat = u64{1} << 6;
inline constexpr u64 large_page = u64{1} << 7;
inline constexpr u64 accessed = u64{1} << 8;
inline constexpr u64 dirty = u64{1} << 9;
inline constexpr u64 address_mask = 0x000FFFFFFFFFF000;
inline constexpr u64 memory_type_uc = 0;
inline constexpr u64 memory_type_wb = 6;
// EPTP: bits 2:0 memory type of the paging structures, 5:3 walk length - 1, 6 A/D enable.
inline constexpr u32 eptp_walk_length_shift = 3;
inline constexpr u64 eptp_ad_enable = u64{1} << 6;
}  // namespace ept

// VM-instruction error numbers worth a name in a report (SDM 30.4).
namespace instruction_error {
inline constexpr u32 vmclear_invalid_address = 2;
inline constexpr u32 vmclear_vmxon_pointer = 3;
inline constexpr u32 vmlaunch_nonclear = 4;
inline constexpr u32 vmresume_nonlaunched = 5;
inline constexpr u32 entry_invalid_control = 7;
inline constexpr u32 entry_invalid_host_state = 8;
inline constexpr u32 vmptrld_invalid = 9;
inline constexpr u32 vmptrld_vmxon_pointer = 10;
inline constexpr u32 vmptrld_wrong_revision = 11;
inline constexpr u32 unsupported_field = 12;
inline constexpr u32 vmwrite_read_only = 13;
inline constexpr u32 vmxon_in_root = 15;
inline constexpr u32 entry_events_blocked_by_mov_ss = 26;
inline constexpr u32 invalid_invept_invvpid = 28;
}  // namespace instruction_error

}  // namespace nestor::intel_vmx
