#include "vmx_entry_checks.hpp"

#include "nestor/arch/vmx_vmcs.hpp"
#include "vmx_capabilities.hpp"
#include "vmx_operand.hpp"

namespace nestor::nested::vmx {
namespace {

using namespace intel_vmx;
using namespace x86_regs;

constexpr u64 kPageMask = 0xFFF;
constexpr u64 kMsrEntryBytes = msr_entry::bytes;
constexpr u64 kEptpReserved = 0xF80;  // bits 11:7
constexpr u64 kEptpMemoryTypeMask = 7;
constexpr u64 kEptpWalkLengthMask = u64{7} << ept::eptp_walk_length_shift;
constexpr u64 kEptpWalk4 = u64{3} << ept::eptp_walk_length_shift;
constexpr u64 kEferAllowed = kEferSce | kEferLme | kEferLma | kEferNxe;
constexpr u64 kSelectorRplTi = 7;
constexpr u32 kCr3TargetCountShift = 16;
constexpr u64 kCr3TargetCountMask = 0x1FF;
// VM-entry interruption information (SDM 24.8.3).
constexpr u32 kEventTypeReserved = 1u << intr_info::type_shift;
constexpr u32 kEventTypeOther = 7u << intr_info::type_shift;
constexpr u32 kEventReservedBits = 0x7FFFF000;  // bits 30:12
constexpr u32 kVectorNmi = 2;
constexpr u32 kMaxInstructionLength = 15;
constexpr u64 kTprThresholdMask = 0xF;  // a priority class
constexpr u32 kVtprClassShift = 4;

bool beyond_width(u64 address, u32 bits) { return bits < 64 && (address >> bits) != 0; }

bool page_address_ok(u64 address, u32 bits) { return !(address & kPageMask) && !beyond_width(address, bits); }

bool msr_list_ok(const Vmcs12& v, u32 count_field, u32 address_field, u32 bits) {
    u64 count = read_field(v, count_field);
    if (count == 0) return true;
    u64 address = read_field(v, address_field);
    if (address & (kMsrEntryBytes - 1)) return false;
    return !beyond_width(address, bits) && !beyond_width(address + count * kMsrEntryBytes - 1, bits);
}

bool has_error_code(u32 vector) {
    return vector == 8 || (vector >= 10 && vector <= 14) || vector == 17 || vector == 21;
}

// SDM 26.2.1.3: the event VM entry is to inject, if any.
bool event_injection_ok(const Vmcs12& v) {
    u32 info = static_cast<u32>(read_field(v, field::entry_interruption_info));
    if (!(info & intr_info::valid)) return true;
    u32 type = info & intr_info::type_mask, vector = info & intr_info::vector_mask;
    if (type == kEventTypeReserved || type == kEventTypeOther) return false;  // MTF is not offered
    if (type == intr_info::type_nmi && vector != kVectorNmi) return false;
    if (type == intr_info::type_hardware_exception && vector > 31) return false;
    if (info & kEventReservedBits) return false;
    bool protected_mode = read_field(v, field::guest_cr0) & kCr0Pe;
    bool wants_error_code = protected_mode && type == intr_info::type_hardware_exception && has_error_code(vector);
    bool error_code = info & intr_info::error_code_valid;
    if (error_code != wants_error_code) return false;
    if (error_code && (read_field(v, field::entry_exception_error_code) >> 16)) return false;
    bool software = type == intr_info::type_software_interrupt ||
                    type == intr_info::type_privileged_software_exception || type == intr_info::type_software_exception;
    u64 length = read_field(v, field::entry_instruction_length);
    return !software || (length >= 1 && length <= kMaxInstructionLength);
}

// SDM 26.2.1.1: the TPR shadow's page and threshold.
EntryCheck tpr_shadow_controls(const Vmcs12& v, u32 bits, u8 vtpr) {
    if (!page_address_ok(read_field(v, field::virtual_apic_page_address), bits))
        return EntryCheck::virtual_apic_address;
    u64 threshold = read_field(v, field::tpr_threshold);
    if (threshold & ~kTprThresholdMask) return EntryCheck::tpr_threshold_reserved;
    if (threshold > (vtpr >> kVtprClassShift)) return EntryCheck::tpr_threshold_above_vtpr;
    return EntryCheck::ok;
}

EntryCheck execution_controls(const Vmcs12& v, u32 bits, u8 vtpr) {
    const Capabilities& caps = capabilities();
    u32 pin_controls = static_cast<u32>(read_field(v, field::pin_based_controls));
    u32 primary_controls = static_cast<u32>(read_field(v, field::primary_controls));
    u32 secondary_controls = (primary_controls & primary::activate_secondary)
                                 ? static_cast<u32>(read_field(v, field::secondary_controls))
                                 : 0;
    if (!caps.true_pin.allows(pin_controls)) return EntryCheck::pin_controls;
    if (!caps.true_primary.allows(primary_controls)) return EntryCheck::primary_controls;
    if (!caps.secondary.allows(secondary_controls)) return EntryCheck::secondary_controls;
    if (read_field(v, field::cr3_target_count) > ((caps.misc >> kCr3TargetCountShift) & kCr3TargetCountMask))
        return EntryCheck::cr3_target_count;
    if ((primary_controls & primary::use_io_bitmaps) && (!page_address_ok(read_field(v, field::io_bitmap_a), bits) ||
                                                         !page_address_ok(read_field(v, field::io_bitmap_b), bits)))
        return EntryCheck::io_bitmap_address;
    if ((primary_controls & primary::use_msr_bitmaps) && !page_address_ok(read_field(v, field::msr_bitmap), bits))
        return EntryCheck::msr_bitmap_address;
    if (primary_controls & primary::use_tpr_shadow)
        if (EntryCheck check = tpr_shadow_controls(v, bits, vtpr); check != EntryCheck::ok) return check;
    if (!(pin_controls & pin::nmi_exiting) && (pin_controls & pin::virtual_nmis))
        return EntryCheck::virtual_nmis_without_nmi_exiting;
    if (!(pin_controls & pin::virtual_nmis) && (primary_controls & primary::nmi_window_exiting))
        return EntryCheck::nmi_window_without_virtual_nmis;
    if ((secondary_controls & secondary::enable_vpid) && read_field(v, field::vpid) == 0) return EntryCheck::vpid_zero;
    if ((secondary_controls & secondary::enable_ept) && !valid_eptp(read_field(v, field::ept_pointer), bits))
        return EntryCheck::ept_pointer;
    if ((secondary_controls & secondary::unrestricted_guest) && !(secondary_controls & secondary::enable_ept))
        return EntryCheck::unrestricted_guest_without_ept;
    return EntryCheck::ok;
}

EntryCheck exit_and_entry_controls(const Vmcs12& v, u32 bits) {
    const Capabilities& caps = capabilities();
    u32 exit_controls = static_cast<u32>(read_field(v, field::exit_controls));
    if (!caps.true_exit.allows(exit_controls)) return EntryCheck::exit_controls;
    if ((exit_controls & exit_ctl::save_preemption_timer) &&
        !(read_field(v, field::pin_based_controls) & pin::preemption_timer))
        return EntryCheck::save_timer_without_timer;
    if (!msr_list_ok(v, field::exit_msr_store_count, field::exit_msr_store_address, bits))
        return EntryCheck::exit_msr_store_address;
    if (!msr_list_ok(v, field::exit_msr_load_count, field::exit_msr_load_address, bits))
        return EntryCheck::exit_msr_load_address;
    if (!caps.true_entry.allows(static_cast<u32>(read_field(v, field::entry_controls))))
        return EntryCheck::entry_controls;
    if (!msr_list_ok(v, field::entry_msr_load_count, field::entry_msr_load_address, bits))
        return EntryCheck::entry_msr_load_address;
    if (!event_injection_ok(v)) return EntryCheck::entry_event_injection;
    return EntryCheck::ok;
}

bool selectors_ok(const Vmcs12& v, bool host_64) {
    const u32 selectors[] = {field::host_es_selector, field::host_cs_selector, field::host_ss_selector,
                             field::host_ds_selector, field::host_fs_selector, field::host_gs_selector,
                             field::host_tr_selector};
    for (u32 s : selectors)
        if (read_field(v, s) & kSelectorRplTi) return false;
    if (read_field(v, field::host_cs_selector) == 0 || read_field(v, field::host_tr_selector) == 0) return false;
    return host_64 || read_field(v, field::host_ss_selector) != 0;
}

bool bases_canonical(const Vmcs12& v) {
    const u32 bases[] = {field::host_fs_base, field::host_gs_base, field::host_gdtr_base, field::host_idtr_base,
                         field::host_tr_base};
    for (u32 b : bases)
        if (!is_canonical(read_field(v, b))) return false;
    return true;
}

bool host_rip_ok(const Vmcs12& v, bool host_64) {
    u64 rip = read_field(v, field::host_rip);
    return host_64 ? is_canonical(rip) : (rip >> 32) == 0;
}

}  // namespace

bool valid_eptp(u64 eptp, u32 bits) {
    if ((eptp & kEptpMemoryTypeMask) != ept::memory_type_wb) return false;
    if ((eptp & kEptpWalkLengthMask) != kEptpWalk4) return false;
    if (eptp & (ept::eptp_ad_enable | kEptpReserved)) return false;
    return !beyond_width(eptp, bits);
}

bool is_entry_control_check(EntryCheck check) { return check != EntryCheck::ok && check < EntryCheck::host_cr0; }

EntryCheck check_controls(const Vmcs12& vmcs, u32 bits, u8 vtpr) {
    EntryCheck execution = execution_controls(vmcs, bits, vtpr);
    return execution != EntryCheck::ok ? execution : exit_and_entry_controls(vmcs, bits);
}

EntryCheck check_host_state(const Vmcs12& v, u32 bits, bool l1_long_mode) {
    const Capabilities& caps = capabilities();
    u64 cr4 = read_field(v, field::host_cr4);
    if (!fixed_bits_hold(read_field(v, field::host_cr0), caps.cr0_fixed0, caps.cr0_fixed1)) return EntryCheck::host_cr0;
    if (!fixed_bits_hold(cr4, caps.cr4_fixed0, caps.cr4_fixed1)) return EntryCheck::host_cr4;
    if (beyond_width(read_field(v, field::host_cr3), bits)) return EntryCheck::host_cr3;
    if (!is_canonical(read_field(v, field::host_sysenter_esp)) ||
        !is_canonical(read_field(v, field::host_sysenter_eip)))
        return EntryCheck::host_sysenter_address;
    u32 exit_controls = static_cast<u32>(read_field(v, field::exit_controls));
    bool host_64 = exit_controls & exit_ctl::host_address_space_size;
    if (exit_controls & exit_ctl::load_efer) {
        u64 efer = read_field(v, field::host_efer);
        if ((efer & ~kEferAllowed) || ((efer & kEferLma) != 0) != host_64 || ((efer & kEferLme) != 0) != host_64)
            return EntryCheck::host_efer;
    }
    if (!selectors_ok(v, host_64)) return EntryCheck::host_selector;
    if (!bases_canonical(v)) return EntryCheck::host_base_address;
    // SDM 26.2.4: the address-space size follows L1's own mode.
    bool guest_64 = read_field(v, field::entry_controls) & entry_ctl::ia32e_mode_guest;
    if (l1_long_mode ? !host_64 : (host_64 || guest_64)) return EntryCheck::host_address_space_size;
    if (host_64 && !(cr4 & kCr4Pae)) return EntryCheck::host_address_space_size;
    if (!host_64 && (cr4 & kCr4Pcide)) return EntryCheck::host_address_space_size;
    return host_rip_ok(v, host_64) ? EntryCheck::ok : EntryCheck::host_rip;
}

bool changes_entry_checks(u32 encoding) {
    const u32 type = vmcs12_layout::type_of(encoding);
    if (type != vmcs12_layout::kTypeControl && type != vmcs12_layout::kTypeHostState) return false;
    return encoding != field::host_rsp && encoding != field::host_rip;
}

EntryCheck recheck_controls(const Vmcs12& v, u32 bits, u8 vtpr) {
    if (read_field(v, field::primary_controls) & primary::use_tpr_shadow)
        if (EntryCheck check = tpr_shadow_controls(v, bits, vtpr); check != EntryCheck::ok) return check;
    return event_injection_ok(v) ? EntryCheck::ok : EntryCheck::entry_event_injection;
}

EntryCheck recheck_host_state(const Vmcs12& v) {
    bool host_64 = read_field(v, field::exit_controls) & exit_ctl::host_address_space_size;
    return host_rip_ok(v, host_64) ? EntryCheck::ok : EntryCheck::host_rip;
}

}  // namespace nestor::nested::vmx
