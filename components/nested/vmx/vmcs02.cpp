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
constexpr u32 kGuestState[] = {field::guest_cr0,
                               field::guest_cr4,
                               field::guest_es_selector,
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
constexpr usize kGuestStateCount = sizeof(kGuestState) / sizeof(kGuestState[0]);
constexpr FieldList<kGuestStateCount> kGuestStateList = field_list(kGuestState);

template <usize N> consteval FieldSet set_of(const FieldList<N>& list) {
    FieldSet set{};
    for (u8 slot : list.slots) set.words[slot / 64] |= u64{1} << (slot % 64);
    return set;
}
constexpr FieldSet kGuestStateSet = set_of(kGuestStateList);

// Of kGuestState, what a VM exit copies into vmcs12 at once: what changes on nearly every exit of
// L2, and every guest field the VM-entry checks read (vmx_guest_checks.cpp), so that they see
// vmcs12 whole. vmcs02 keeps the rest (segments, descriptor tables, SYSENTER, PDPTEs, pending
// debug exceptions) until vmcs12 needs them (save_kept_guest_state), as KVM's
// sync_vmcs02_to_vmcs12_rare does.
constexpr u32 kGuestStateAtExit[] = {field::guest_cr0,
                                     field::guest_cr3,
                                     field::guest_cr4,
                                     field::guest_rsp,
                                     field::guest_rip,
                                     field::guest_rflags,
                                     field::guest_interruptibility,
                                     field::guest_activity_state};
constexpr usize kGuestStateAtExitCount = sizeof(kGuestStateAtExit) / sizeof(kGuestStateAtExit[0]);
constexpr FieldList<kGuestStateAtExitCount> kGuestStateAtExitList = field_list(kGuestStateAtExit);
constexpr usize kKeptCount = kGuestStateCount - kGuestStateAtExitCount;

struct KeptFields {
    u32 fields[kKeptCount];
};
consteval bool saved_at_exit(u32 encoding) {
    for (u32 e : kGuestStateAtExit)
        if (e == encoding) return true;
    return false;
}
// kGuestState less kGuestStateAtExit (a field of the latter not in the former overflows: no constant).
consteval KeptFields kept_fields() {
    KeptFields kept{};
    usize count = 0;
    for (u32 e : kGuestState)
        if (!saved_at_exit(e)) kept.fields[count++] = e;
    return kept;
}
constexpr KeptFields kKept = kept_fields();
constexpr FieldList<kKeptCount> kKeptList = field_list(kKept.fields);
constexpr FieldSet kKeptSet = set_of(kKeptList);

// What vmcs02 takes of L1's own state (vmcs01), read in one call.
constexpr u32 kFromL1[] = {field::tsc_offset, field::guest_dr7, field::guest_debugctl, field::guest_efer,
                           field::guest_pat};
struct FromL1 {
    u64 tsc_offset, dr7, debugctl, efer, pat;
};
static_assert(sizeof(FromL1) == sizeof(kFromL1) / sizeof(u32) * sizeof(u64));

u64 f(const Vmcs12& v, u32 encoding) { return read_field(v, encoding); }

// Writes of one VMCS gathered into NestedHardware::write_fields calls.
class FieldBatch {
public:
    FieldBatch(NestedHardware& hw, Level level) : hw_(hw), level_(level) {}
    void operator()(u32 field, u64 value) {
        if (count_ == kMax) flush();
        fields_[count_] = field;
        values_[count_++] = value;
    }
    void flush() {
        hw_.write_fields(level_, fields_, values_, count_);
        count_ = 0;
    }

private:
    static constexpr usize kMax = 48;
    NestedHardware& hw_;
    Level level_;
    usize count_ = 0;
    u32 fields_[kMax];
    u64 values_[kMax];
};

// A word of L1's MSR bitmap: all ones without a bitmap or where it is not L1's RAM (every MSR
// access is L1's). `window`: the whole bitmap, when it is L1's memory in one piece.
u64 l1_msr_word(const Vmcs12& v, Host& host, bool l1_bitmap, const u8* window, u32 i) {
    u64 word = ~u64{0};
    if (!l1_bitmap) return word;
    if (window) {
        __builtin_memcpy(&word, window + u64{i} * sizeof(u64), sizeof(word));
        return word;
    }
    if (!host.read(f(v, field::msr_bitmap) + u64{i} * sizeof(u64), &word, sizeof(word))) word = ~u64{0};
    return word;
}

void merge_msr_bitmap(const Vmcs12& v, const x86::vmx::L0Controls& l0, Host& host, OpenMsrWords& open) {
    constexpr u32 kWords = kMsrBitmapBytes / sizeof(u64);
    u64* merged = reinterpret_cast<u64*>(l0.merged_msr_bitmap);
    const u64* l0_words = reinterpret_cast<const u64*>(l0.l0_msr_bitmap);
    bool l1_bitmap = f(v, field::primary_controls) & primary::use_msr_bitmaps;
    // One look-up of L1's bitmap instead of one per word; each word is read once.
    const u8* window = l1_bitmap ? host.window(f(v, field::msr_bitmap), kMsrBitmapBytes, false) : nullptr;
    if (!open.known) {
        open.count = 0;
        for (u32 i = 0; i < kWords; ++i) {
            if (l0_words[i] == ~u64{0}) {
                merged[i] = ~u64{0};
                continue;
            }
            if (open.count < OpenMsrWords::kMax) open.index[open.count] = static_cast<u16>(i);
            ++open.count;
        }
        open.known = true;
    }
    if (open.count > OpenMsrWords::kMax) {
        for (u32 i = 0; i < kWords; ++i) merged[i] = l0_words[i] | l1_msr_word(v, host, l1_bitmap, window, i);
        return;
    }
    for (u32 n = 0; n < open.count; ++n) {
        u32 i = open.index[n];
        merged[i] = l0_words[i] | l1_msr_word(v, host, l1_bitmap, window, i);
    }
}

// The vmcs12 fields write_kept_controls derives vmcs02's controls from.
constexpr u32 kKeptControlInputs[] = {
    field::primary_controls,       field::secondary_controls,  field::exception_bitmap, field::page_fault_error_mask,
    field::page_fault_error_match, field::cr0_guest_host_mask, field::cr0_read_shadow,  field::cr4_guest_host_mask,
    field::cr4_read_shadow,        field::guest_cr0,           field::guest_cr4};
constexpr FieldSet kKeptControlInputsSet = set_of(field_list(kKeptControlInputs));

bool intersect(const FieldSet& a, const FieldSet& b) {
    u64 common = 0;
    for (usize i = 0; i < sizeof(a.words) / sizeof(a.words[0]); ++i) common |= a.words[i] & b.words[i];
    return common != 0;
}

// The controls vmcs02 keeps from one entry to the next: neither the backend nor the CPU changes
// them while L2 runs, so they are written again only when L1 VMWROTE what they come from (KVM's
// prepare_vmcs02_rare).
void write_kept_controls(const Vmcs12& v, const x86::vmx::L0Controls& l0, FieldBatch& w) {
    u32 l1_primary = static_cast<u32>(f(v, field::primary_controls));
    u32 l1_secondary =
        (l1_primary & primary::activate_secondary) ? static_cast<u32>(f(v, field::secondary_controls)) : 0;
    // The instructions L1 cannot enable for L2 (not offered) #UD there, as on the CPU.
    u32 secondary =
        (l0.secondary & ~(secondary::unrestricted_guest | secondary::enable_rdtscp | secondary::enable_invpcid)) |
        (l1_secondary & (secondary::unrestricted_guest | secondary::wbinvd_exiting));
    w(field::secondary_controls, secondary);
    w(field::exit_controls, l0.exit);
    w(field::exception_bitmap, l0.exception_bitmap | static_cast<u32>(f(v, field::exception_bitmap)));
    w(field::page_fault_error_mask, f(v, field::page_fault_error_mask));
    w(field::page_fault_error_match, f(v, field::page_fault_error_match));
    w(field::cr3_target_count, 0);
    w(field::exit_msr_store_count, 0);
    w(field::exit_msr_load_count, 0);
    w(field::entry_msr_load_count, 0);
    w(field::io_bitmap_a, l0.io_bitmap_a);
    w(field::io_bitmap_b, l0.io_bitmap_b);
    w(field::msr_bitmap, l0.merged_msr_bitmap_pa);
    if (l0.l2_vpid) w(field::vpid, l0.l2_vpid);
    // L2 reads L1's shadow for the bits L1 owns, its own value for the rest (L0's included).
    u64 mask0 = f(v, field::cr0_guest_host_mask), mask4 = f(v, field::cr4_guest_host_mask);
    w(field::cr0_guest_host_mask, mask0 | l0.cr0_mask);
    w(field::cr0_read_shadow, (f(v, field::cr0_read_shadow) & mask0) | (f(v, field::guest_cr0) & ~mask0));
    w(field::cr4_guest_host_mask, mask4 | l0.cr4_mask);
    w(field::cr4_read_shadow, (f(v, field::cr4_read_shadow) & mask4) | (f(v, field::guest_cr4) & ~mask4));
}

// The controls of every entry: those the backend changes while L2 runs (its timer, the event
// windows, the injected event, "IA-32e mode guest"), the EPT pointer (a shadow's changes) and the
// TSC offset (L1's may change).
void write_controls(const Vmcs12& v, NestedHardware& hw, u64 eptp, const FromL1& l1, FieldBatch& w) {
    const x86::vmx::L0Controls& l0 = hw.l0_controls();
    u32 l1_primary = static_cast<u32>(f(v, field::primary_controls));
    w(field::pin_based_controls, l0.pin | static_cast<u32>(f(v, field::pin_based_controls)));
    w(field::primary_controls, l0.primary | l1_primary | primary::activate_secondary);
    w(field::entry_controls, l0.entry | (static_cast<u32>(f(v, field::entry_controls)) & entry_ctl::ia32e_mode_guest));
    w(field::entry_interruption_info, f(v, field::entry_interruption_info));
    w(field::entry_exception_error_code, f(v, field::entry_exception_error_code));
    w(field::entry_instruction_length, f(v, field::entry_instruction_length));
    w(field::ept_pointer, eptp);
    u64 tsc_offset = l1.tsc_offset;
    if (l1_primary & primary::use_tsc_offsetting) tsc_offset += f(v, field::tsc_offset);
    w(field::tsc_offset, tsc_offset);
}

// The fields of kGuestState in `changed`: typically the one or two L1 wrote since the last exit.
void write_changed_guest_state(const Vmcs12& v, FieldBatch& w, const FieldSet& changed) {
    for (usize word = 0; word < sizeof(changed.words) / sizeof(changed.words[0]); ++word) {
        for (u64 bits = changed.words[word] & kGuestStateSet.words[word]; bits; bits &= bits - 1) {
            usize slot = word * 64 + static_cast<usize>(__builtin_ctzll(bits));
            w(vmcs12_layout::kEncodings[slot], v.slots[slot]);
        }
    }
}

void write_guest_state(const Vmcs12& v, NestedHardware& hw, const FieldSet* changed, const FromL1& l1, FieldBatch& w) {
    const x86::vmx::L0Controls& l0 = hw.l0_controls();
    if (changed) {
        write_changed_guest_state(v, w, *changed);
    } else {
        u64 values[kGuestStateCount];
        read_fields(v, kGuestStateList, values);
        hw.write_fields(Level::l2, kGuestState, values, kGuestStateCount);
    }
    u32 entry = static_cast<u32>(f(v, field::entry_controls));
    bool debug = entry & entry_ctl::load_debug_controls;
    w(field::guest_dr7, debug ? f(v, field::guest_dr7) : l1.dr7);
    w(field::guest_debugctl, debug ? f(v, field::guest_debugctl) : l1.debugctl);
    // Without "load EFER", EFER is L1's with LME and LMA from "IA-32e mode guest" (SDM 26.3.2.1).
    u64 efer = f(v, field::guest_efer);
    if (!(entry & entry_ctl::load_efer)) {
        u64 mode = (entry & entry_ctl::ia32e_mode_guest) ? kEferLme | kEferLma : 0;
        efer = (l1.efer & ~(kEferLme | kEferLma)) | mode;
    }
    if (l0.load_efer) w(field::guest_efer, efer);
    // PAT is not offered in vmcs12: L2 runs with L1's, as on a CPU without PAT loading.
    if (l0.entry & entry_ctl::load_pat) w(field::guest_pat, l1.pat);
}

}  // namespace

void write_vmcs02(const Vmcs12& v, NestedHardware& hw, Host& host, u64 eptp, OpenMsrWords& open,
                  const FieldSet* changed) {
    merge_msr_bitmap(v, hw.l0_controls(), host, open);
    u64 from_l1[sizeof(kFromL1) / sizeof(u32)];
    hw.read_fields(Level::l1, kFromL1, from_l1, sizeof(kFromL1) / sizeof(u32));
    const FromL1 l1{from_l1[0], from_l1[1], from_l1[2], from_l1[3], from_l1[4]};
    FieldBatch batch(hw, Level::l2);
    if (!changed || intersect(*changed, kKeptControlInputsSet)) write_kept_controls(v, hw.l0_controls(), batch);
    write_controls(v, hw, eptp, l1, batch);
    write_guest_state(v, hw, changed, l1, batch);
    batch.flush();
}

ExitInformation exit_information(NestedHardware& hw, u32 reason) {
    constexpr u32 kFields[] = {
        field::exit_qualification,           field::guest_linear_address,  field::exit_interruption_info,
        field::exit_interruption_error_code, field::idt_vectoring_info,    field::idt_vectoring_error_code,
        field::exit_instruction_length,      field::exit_instruction_info, field::guest_physical_address};
    u64 r[sizeof(kFields) / sizeof(kFields[0])];
    hw.read_fields(Level::l2, kFields, r, sizeof(kFields) / sizeof(kFields[0]));
    ExitInformation info{};
    info.reason = reason;
    info.qualification = r[0];
    info.guest_linear = r[1];
    info.interruption_info = static_cast<u32>(r[2]);
    info.interruption_error_code = static_cast<u32>(r[3]);
    info.idt_vectoring_info = static_cast<u32>(r[4]);
    info.idt_vectoring_error_code = static_cast<u32>(r[5]);
    info.instruction_length = static_cast<u32>(r[6]);
    info.instruction_info = static_cast<u32>(r[7]);
    u32 basic = reason & exit_reason::basic_mask;
    if (basic == exit_reason::ept_violation || basic == exit_reason::ept_misconfiguration) info.guest_physical = r[8];
    return info;
}

bool kept_in_vmcs02(const FieldInfo& field) {
    usize slot = slot_number(field);
    return (kKeptSet.words[slot / 64] >> (slot % 64)) & 1;
}

void save_kept_guest_state(Vmcs12& v, NestedHardware& hw) {
    u64 values[kKeptCount];
    hw.read_fields(Level::l2, kKept.fields, values, kKeptCount);
    write_fields(v, kKeptList, values);
}

void save_l2_state(Vmcs12& v, NestedHardware& hw) {
    const x86::vmx::L0Controls& l0 = hw.l0_controls();
    u64 values[kGuestStateAtExitCount];
    hw.read_fields(Level::l2, kGuestStateAtExit, values, kGuestStateAtExitCount);
    write_fields(v, kGuestStateAtExitList, values);
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

// The exit information fields, in the order write_exit_information gives their values.
constexpr u32 kExitInformationFields[] = {
    field::exit_reason,          field::exit_qualification,       field::guest_physical_address,
    field::guest_linear_address, field::exit_interruption_info,   field::exit_interruption_error_code,
    field::idt_vectoring_info,   field::idt_vectoring_error_code, field::exit_instruction_length,
    field::exit_instruction_info};
constexpr auto kExitInformationList = field_list(kExitInformationFields);

void write_exit_information(Vmcs12& v, const ExitInformation& info) {
    const u64 values[] = {info.reason,
                          info.qualification,
                          info.guest_physical,
                          info.guest_linear,
                          info.interruption_info,
                          info.interruption_error_code,
                          info.idt_vectoring_info,
                          info.idt_vectoring_error_code,
                          info.instruction_length,
                          info.instruction_info};
    static_assert(sizeof(values) / sizeof(values[0]) == sizeof(kExitInformationFields) / sizeof(u32));
    write_fields(v, kExitInformationList, values);
    // Every VM exit clears the valid bit of the VM-entry interruption information (SDM 27.2.3).
    write_field(v, field::entry_interruption_info, f(v, field::entry_interruption_info) & ~u64{intr_info::valid});
}

namespace {

// L1's state a VM exit loads into vmcs01 (SDM 27.5), in the order load_l1_host_state gives
// their values: one write_fields call.
constexpr u32 kL1HostStateFields[] = {field::guest_es_selector,
                                      field::guest_es_base,
                                      field::guest_es_limit,
                                      field::guest_es_access_rights,
                                      field::guest_ss_selector,
                                      field::guest_ss_base,
                                      field::guest_ss_limit,
                                      field::guest_ss_access_rights,
                                      field::guest_ds_selector,
                                      field::guest_ds_base,
                                      field::guest_ds_limit,
                                      field::guest_ds_access_rights,
                                      field::guest_fs_selector,
                                      field::guest_fs_base,
                                      field::guest_fs_limit,
                                      field::guest_fs_access_rights,
                                      field::guest_gs_selector,
                                      field::guest_gs_base,
                                      field::guest_gs_limit,
                                      field::guest_gs_access_rights,
                                      field::guest_cs_selector,
                                      field::guest_cs_base,
                                      field::guest_cs_limit,
                                      field::guest_cs_access_rights,
                                      field::guest_tr_selector,
                                      field::guest_tr_base,
                                      field::guest_tr_limit,
                                      field::guest_tr_access_rights,
                                      field::guest_ldtr_selector,
                                      field::guest_ldtr_base,
                                      field::guest_ldtr_limit,
                                      field::guest_ldtr_access_rights,
                                      field::guest_gdtr_base,
                                      field::guest_gdtr_limit,
                                      field::guest_idtr_base,
                                      field::guest_idtr_limit,
                                      field::guest_sysenter_cs,
                                      field::guest_sysenter_esp,
                                      field::guest_sysenter_eip,
                                      field::guest_dr7,
                                      field::guest_debugctl,
                                      field::guest_rip,
                                      field::guest_rsp,
                                      field::guest_rflags,
                                      field::guest_interruptibility,
                                      field::guest_activity_state,
                                      field::guest_pending_debug_exceptions};
constexpr usize kL1HostStateCount = sizeof(kL1HostStateFields) / sizeof(kL1HostStateFields[0]);

// A data segment from a host selector (SDM 27.5.2): flat, unusable when null.
constexpr u64 host_data_rights(u64 selector) { return selector ? kHostData : kHostData | kUnusable; }

}  // namespace

void load_l1_host_state(const Vmcs12& v, NestedHardware& hw, virt::VcpuState& state) {
    bool host_64 = f(v, field::exit_controls) & exit_ctl::host_address_space_size;
    u64 es = f(v, field::host_es_selector), ss = f(v, field::host_ss_selector), ds = f(v, field::host_ds_selector);
    u64 fs = f(v, field::host_fs_selector), gs = f(v, field::host_gs_selector);
    // SDM 27.5.2: flat segments from the host selectors, null ones unusable; TR busy; no LDT.
    const u64 values[] = {es,
                          0,
                          kFlatLimit,
                          host_data_rights(es),
                          ss,
                          0,
                          kFlatLimit,
                          host_data_rights(ss),
                          ds,
                          0,
                          kFlatLimit,
                          host_data_rights(ds),
                          fs,
                          f(v, field::host_fs_base),
                          kFlatLimit,
                          host_data_rights(fs),
                          gs,
                          f(v, field::host_gs_base),
                          kFlatLimit,
                          host_data_rights(gs),
                          f(v, field::host_cs_selector),
                          0,
                          kFlatLimit,
                          kHostCode | (host_64 ? access_rights::long_mode : access_rights::default32),
                          f(v, field::host_tr_selector),
                          f(v, field::host_tr_base),
                          kHostTrLimit,
                          kHostTr,
                          0,
                          0,
                          0,
                          kUnusable,
                          f(v, field::host_gdtr_base),
                          kHostDescriptorTableLimit,
                          f(v, field::host_idtr_base),
                          kHostDescriptorTableLimit,
                          f(v, field::host_sysenter_cs),
                          f(v, field::host_sysenter_esp),
                          f(v, field::host_sysenter_eip),
                          kDr7Reset,
                          0,
                          f(v, field::host_rip),
                          f(v, field::host_rsp),
                          kRflagsFixed1,
                          0,
                          0,
                          0};
    static_assert(sizeof(values) / sizeof(values[0]) == kL1HostStateCount);
    u64 efer = f(v, field::host_efer);
    if (!(f(v, field::exit_controls) & exit_ctl::load_efer)) {
        u64 l1_efer = hw.l0_controls().load_efer ? hw.read(Level::l1, field::guest_efer) : state.efer;
        efer = (l1_efer & ~(kEferLme | kEferLma)) | (host_64 ? kEferLme | kEferLma : 0);
    }
    hw.write_fields(Level::l1, kL1HostStateFields, values, kL1HostStateCount);
    hw.enter_l1(x86::vmx::L1ControlState{f(v, field::host_cr0), f(v, field::host_cr3), f(v, field::host_cr4), efer},
                state);
}

}  // namespace nestor::nested::vmx
