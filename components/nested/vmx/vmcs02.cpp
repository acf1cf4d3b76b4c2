#include "vmcs02.hpp"

#include "nestor/arch/vmx_vmcs.hpp"

namespace nestor::nested::vmx {
namespace {

using namespace intel_vmx;
using namespace x86_regs;
using x86::vmx::Level;
using x86::vmx::NestedHardware;

constexpr u32 kMsrBitmapBytes = msr_bitmap::bytes;
constexpr u64 kDr7Reset = 0x400;
constexpr u32 kUnusable = access_rights::unusable;
constexpr u32 kHostCode =
    access_rights::present | access_rights::code_or_data | access_rights::type_code_rx | access_rights::granularity;
constexpr u32 kHostData = access_rights::present | access_rights::code_or_data | access_rights::type_data_rw |
                          access_rights::default32 | access_rights::granularity;
constexpr u32 kHostTr = access_rights::present | access_rights::type_tss_busy;
constexpr u32 kHostTrLimit = 0x67;
constexpr u32 kFlatLimit = 0xFFFFFFFF;
constexpr u32 kHostDescriptorTableLimit = 0xFFFF;

// L2's guest state that vmcs02 takes from vmcs12 at entry and gives back at an exit, as is.
constexpr u32 kGuestState[] = {field::guest_es_selector,
                               field::guest_cs_selector,
                               field::guest_ss_selector,
                               field::guest_ds_selector,
                               field::guest_fs_selector,
                               field::guest_gs_selector,
                               field::guest_ldtr_selector,
                               field::guest_tr_selector,
                               field::guest_es_limit,
                               field::guest_cs_limit,
                               field::guest_ss_limit,
                               field::guest_ds_limit,
                               field::guest_fs_limit,
                               field::guest_gs_limit,
                               field::guest_ldtr_limit,
                               field::guest_tr_limit,
                               field::guest_gdtr_limit,
                               field::guest_idtr_limit,
                               field::guest_es_access_rights,
                               field::guest_cs_access_rights,
                               field::guest_ss_access_rights,
                               field::guest_ds_access_rights,
                               field::guest_fs_access_rights,
                               field::guest_gs_access_rights,
                               field::guest_ldtr_access_rights,
                               field::guest_tr_access_rights,
                               field::guest_es_base,
                               field::guest_cs_base,
                               field::guest_ss_base,
                               field::guest_ds_base,
                               field::guest_fs_base,
                               field::guest_gs_base,
                               field::guest_ldtr_base,
                               field::guest_tr_base,
                               field::guest_gdtr_base,
                               field::guest_idtr_base,
                               field::guest_cr3,
                               field::guest_rsp,
                               field::guest_rip,
                               field::guest_rflags,
                               field::guest_interruptibility,
                               field::guest_activity_state,
                               field::guest_pending_debug_exceptions,
                               field::guest_sysenter_cs,
                               field::guest_sysenter_esp,
                               field::guest_sysenter_eip,
                               field::guest_pdpte0,
                               field::guest_pdpte1,
                               field::guest_pdpte2,
                               field::guest_pdpte3};

u64 f(const Vmcs12& v, u32 encoding) { return read_field(v, encoding); }

void merge_msr_bitmap(const Vmcs12& v, const x86::vmx::L0Controls& l0, Host& host) {
    u8* merged = l0.merged_msr_bitmap;
    bool l1_bitmap = f(v, field::primary_controls) & primary::use_msr_bitmaps;
    // Without a bitmap, or one that is not L1's RAM, every MSR access is L1's.
    if (!l1_bitmap || !host.read(f(v, field::msr_bitmap), merged, kMsrBitmapBytes)) {
        for (u32 i = 0; i < kMsrBitmapBytes; ++i) merged[i] = 0xFF;
        return;
    }
    for (u32 i = 0; i < kMsrBitmapBytes; ++i) merged[i] |= l0.l0_msr_bitmap[i];
}

void write_controls(const Vmcs12& v, NestedHardware& hw, u64 eptp) {
    const x86::vmx::L0Controls& l0 = hw.l0_controls();
    u32 l1_primary = static_cast<u32>(f(v, field::primary_controls));
    u32 l1_secondary =
        (l1_primary & primary::activate_secondary) ? static_cast<u32>(f(v, field::secondary_controls)) : 0;
    // The instructions L1 cannot enable for L2 (not offered) #UD there, as on the CPU.
    u32 secondary =
        (l0.secondary & ~(secondary::unrestricted_guest | secondary::enable_rdtscp | secondary::enable_invpcid)) |
        (l1_secondary & (secondary::unrestricted_guest | secondary::wbinvd_exiting));
    auto w = [&](u32 encoding, u64 value) { hw.write(Level::l2, encoding, value); };
    w(field::pin_based_controls, l0.pin | static_cast<u32>(f(v, field::pin_based_controls)));
    w(field::primary_controls, l0.primary | l1_primary | primary::activate_secondary);
    w(field::secondary_controls, secondary);
    w(field::exit_controls, l0.exit);
    w(field::entry_controls, l0.entry | (static_cast<u32>(f(v, field::entry_controls)) & entry_ctl::ia32e_mode_guest));
    w(field::exception_bitmap, l0.exception_bitmap | static_cast<u32>(f(v, field::exception_bitmap)));
    w(field::page_fault_error_mask, f(v, field::page_fault_error_mask));
    w(field::page_fault_error_match, f(v, field::page_fault_error_match));
    w(field::cr3_target_count, 0);
    w(field::exit_msr_store_count, 0);
    w(field::exit_msr_load_count, 0);
    w(field::entry_msr_load_count, 0);
    w(field::entry_interruption_info, f(v, field::entry_interruption_info));
    w(field::entry_exception_error_code, f(v, field::entry_exception_error_code));
    w(field::entry_instruction_length, f(v, field::entry_instruction_length));
    w(field::io_bitmap_a, l0.io_bitmap_a);
    w(field::io_bitmap_b, l0.io_bitmap_b);
    w(field::msr_bitmap, l0.merged_msr_bitmap_pa);
    w(field::ept_pointer, eptp);
    if (l0.l2_vpid) w(field::vpid, l0.l2_vpid);
    u64 tsc_offset = hw.read(Level::l1, field::tsc_offset);
    if (l1_primary & primary::use_tsc_offsetting) tsc_offset += f(v, field::tsc_offset);
    w(field::tsc_offset, tsc_offset);
    // L2 reads L1's shadow for the bits L1 owns, its own value for the rest (L0's included).
    u64 mask0 = f(v, field::cr0_guest_host_mask), mask4 = f(v, field::cr4_guest_host_mask);
    w(field::cr0_guest_host_mask, mask0 | l0.cr0_mask);
    w(field::cr0_read_shadow, (f(v, field::cr0_read_shadow) & mask0) | (f(v, field::guest_cr0) & ~mask0));
    w(field::cr4_guest_host_mask, mask4 | l0.cr4_mask);
    w(field::cr4_read_shadow, (f(v, field::cr4_read_shadow) & mask4) | (f(v, field::guest_cr4) & ~mask4));
}

void write_guest_state(const Vmcs12& v, NestedHardware& hw) {
    const x86::vmx::L0Controls& l0 = hw.l0_controls();
    auto w = [&](u32 encoding, u64 value) { hw.write(Level::l2, encoding, value); };
    for (u32 encoding : kGuestState) w(encoding, f(v, encoding));
    w(field::guest_cr0, f(v, field::guest_cr0));
    w(field::guest_cr4, f(v, field::guest_cr4));
    u32 entry = static_cast<u32>(f(v, field::entry_controls));
    bool debug = entry & entry_ctl::load_debug_controls;
    w(field::guest_dr7, debug ? f(v, field::guest_dr7) : hw.read(Level::l1, field::guest_dr7));
    w(field::guest_debugctl, debug ? f(v, field::guest_debugctl) : hw.read(Level::l1, field::guest_debugctl));
    // Without "load EFER", EFER is L1's with LME and LMA from "IA-32e mode guest" (SDM 26.3.2.1).
    u64 efer = f(v, field::guest_efer);
    if (!(entry & entry_ctl::load_efer)) {
        u64 mode = (entry & entry_ctl::ia32e_mode_guest) ? kEferLme | kEferLma : 0;
        efer = (hw.read(Level::l1, field::guest_efer) & ~(kEferLme | kEferLma)) | mode;
    }
    if (l0.load_efer) w(field::guest_efer, efer);
    // PAT is not offered in vmcs12: L2 runs with L1's, as on a CPU without PAT loading.
    if (l0.entry & entry_ctl::load_pat) w(field::guest_pat, hw.read(Level::l1, field::guest_pat));
}

}  // namespace

void write_vmcs02(const Vmcs12& v, NestedHardware& hw, Host& host, u64 eptp) {
    merge_msr_bitmap(v, hw.l0_controls(), host);
    write_controls(v, hw, eptp);
    write_guest_state(v, hw);
}

ExitInformation exit_information(NestedHardware& hw, u32 reason) {
    auto r = [&](u32 encoding) { return hw.read(Level::l2, encoding); };
    ExitInformation info{};
    info.reason = reason;
    info.qualification = r(field::exit_qualification);
    info.guest_linear = r(field::guest_linear_address);
    info.interruption_info = static_cast<u32>(r(field::exit_interruption_info));
    info.interruption_error_code = static_cast<u32>(r(field::exit_interruption_error_code));
    info.idt_vectoring_info = static_cast<u32>(r(field::idt_vectoring_info));
    info.idt_vectoring_error_code = static_cast<u32>(r(field::idt_vectoring_error_code));
    info.instruction_length = static_cast<u32>(r(field::exit_instruction_length));
    info.instruction_info = static_cast<u32>(r(field::exit_instruction_info));
    u32 basic = reason & exit_reason::basic_mask;
    if (basic == exit_reason::ept_violation || basic == exit_reason::ept_misconfiguration)
        info.guest_physical = r(field::guest_physical_address);
    return info;
}

void save_l2_state(Vmcs12& v, NestedHardware& hw) {
    const x86::vmx::L0Controls& l0 = hw.l0_controls();
    for (u32 encoding : kGuestState) write_field(v, encoding, hw.read(Level::l2, encoding));
    write_field(v, field::guest_cr0, hw.read(Level::l2, field::guest_cr0));
    write_field(v, field::guest_cr4, hw.read(Level::l2, field::guest_cr4));
    u32 exit = static_cast<u32>(f(v, field::exit_controls));
    if (exit & exit_ctl::save_debug_controls) {
        write_field(v, field::guest_dr7, hw.read(Level::l2, field::guest_dr7));
        write_field(v, field::guest_debugctl, hw.read(Level::l2, field::guest_debugctl));
    }
    u32 entry = static_cast<u32>(f(v, field::entry_controls));
    if (l0.save_efer) {
        u64 efer = hw.read(Level::l2, field::guest_efer);
        if (exit & exit_ctl::save_efer) write_field(v, field::guest_efer, efer);
        // MISC bit 5: EFER.LMA is stored into "IA-32e mode guest".
        entry = (efer & kEferLma) ? entry | entry_ctl::ia32e_mode_guest : entry & ~entry_ctl::ia32e_mode_guest;
        write_field(v, field::entry_controls, entry);
    }
    // L2's PAT is the CPU's, which L1 keeps after the exit (PAT is not switched for it).
    if (l0.entry & entry_ctl::load_pat) hw.write(Level::l1, field::guest_pat, hw.read(Level::l2, field::guest_pat));
}

void write_exit_information(Vmcs12& v, const ExitInformation& info) {
    write_field(v, field::exit_reason, info.reason);
    write_field(v, field::exit_qualification, info.qualification);
    write_field(v, field::guest_physical_address, info.guest_physical);
    write_field(v, field::guest_linear_address, info.guest_linear);
    write_field(v, field::exit_interruption_info, info.interruption_info);
    write_field(v, field::exit_interruption_error_code, info.interruption_error_code);
    write_field(v, field::idt_vectoring_info, info.idt_vectoring_info);
    write_field(v, field::idt_vectoring_error_code, info.idt_vectoring_error_code);
    write_field(v, field::exit_instruction_length, info.instruction_length);
    write_field(v, field::exit_instruction_info, info.instruction_info);
    // Every VM exit clears the valid bit of the VM-entry interruption information (SDM 27.2.3).
    write_field(v, field::entry_interruption_info, f(v, field::entry_interruption_info) & ~u64{intr_info::valid});
}

void load_l1_host_state(const Vmcs12& v, NestedHardware& hw, virt::VcpuState& state) {
    auto w = [&](u32 encoding, u64 value) { hw.write(Level::l1, encoding, value); };
    bool host_64 = f(v, field::exit_controls) & exit_ctl::host_address_space_size;
    // SDM 27.5.2: flat segments from the host selectors, null ones unusable; TR busy; no LDT.
    struct Segment {
        u32 selector_field;
        u32 host_selector;
        u64 base;
    };
    const Segment segments[] = {{field::guest_es_selector, field::host_es_selector, 0},
                                {field::guest_ss_selector, field::host_ss_selector, 0},
                                {field::guest_ds_selector, field::host_ds_selector, 0},
                                {field::guest_fs_selector, field::host_fs_selector, f(v, field::host_fs_base)},
                                {field::guest_gs_selector, field::host_gs_selector, f(v, field::host_gs_base)}};
    for (const Segment& s : segments) {
        u32 index = (s.selector_field - field::guest_es_selector) / 2;
        u64 selector = f(v, s.host_selector);
        w(s.selector_field, selector);
        w(field::guest_es_base + 2 * index, s.base);
        w(field::guest_es_limit + 2 * index, kFlatLimit);
        w(field::guest_es_access_rights + 2 * index, selector ? kHostData : kHostData | kUnusable);
    }
    w(field::guest_cs_selector, f(v, field::host_cs_selector));
    w(field::guest_cs_base, 0);
    w(field::guest_cs_limit, kFlatLimit);
    w(field::guest_cs_access_rights, kHostCode | (host_64 ? access_rights::long_mode : access_rights::default32));
    w(field::guest_tr_selector, f(v, field::host_tr_selector));
    w(field::guest_tr_base, f(v, field::host_tr_base));
    w(field::guest_tr_limit, kHostTrLimit);
    w(field::guest_tr_access_rights, kHostTr);
    w(field::guest_ldtr_selector, 0);
    w(field::guest_ldtr_base, 0);
    w(field::guest_ldtr_limit, 0);
    w(field::guest_ldtr_access_rights, kUnusable);
    w(field::guest_gdtr_base, f(v, field::host_gdtr_base));
    w(field::guest_gdtr_limit, kHostDescriptorTableLimit);
    w(field::guest_idtr_base, f(v, field::host_idtr_base));
    w(field::guest_idtr_limit, kHostDescriptorTableLimit);
    w(field::guest_sysenter_cs, f(v, field::host_sysenter_cs));
    w(field::guest_sysenter_esp, f(v, field::host_sysenter_esp));
    w(field::guest_sysenter_eip, f(v, field::host_sysenter_eip));
    w(field::guest_dr7, kDr7Reset);
    w(field::guest_debugctl, 0);
    w(field::guest_rip, f(v, field::host_rip));
    w(field::guest_rsp, f(v, field::host_rsp));
    w(field::guest_rflags, kRflagsFixed1);
    w(field::guest_interruptibility, 0);
    w(field::guest_activity_state, 0);
    w(field::guest_pending_debug_exceptions, 0);
    u64 efer = f(v, field::host_efer);
    if (!(f(v, field::exit_controls) & exit_ctl::load_efer)) {
        u64 l1_efer = hw.l0_controls().load_efer ? hw.read(Level::l1, field::guest_efer) : state.efer;
        efer = (l1_efer & ~(kEferLme | kEferLma)) | (host_64 ? kEferLme | kEferLma : 0);
    }
    hw.enter_l1(x86::vmx::L1ControlState{f(v, field::host_cr0), f(v, field::host_cr3), f(v, field::host_cr4), efer},
                state);
}

}  // namespace nestor::nested::vmx
