#include "vmx_capabilities.hpp"

#include "nestor/arch/vmx_vmcs.hpp"
#include "vmcs12.hpp"

namespace nestor::nested::vmx {
namespace {

using namespace intel_vmx;
using namespace x86_regs;

// The "default1" controls (SDM A.2): reserved bits a plain capability MSR reports as fixed to 1.
constexpr u32 kPinDefault1 = 0x00000016;
constexpr u32 kPrimaryDefault1 = 0x0401E172;
constexpr u32 kExitDefault1 = 0x00036DFF;
constexpr u32 kEntryDefault1 = 0x000011FF;

constexpr u32 kPinOffered =
    pin::external_interrupt_exiting | pin::nmi_exiting | pin::virtual_nmis | pin::preemption_timer;
// Interrupt / NMI windows, TSC offsetting, HLT, INVLPG, MWAIT, RDPMC, RDTSC, CR3 and CR8 loads
// and stores, the TPR shadow, MOV DR, unconditional I/O and the I/O bitmaps, the MSR bitmaps,
// MONITOR, PAUSE and the secondary controls.
constexpr u32 kPrimaryOffered = primary::interrupt_window_exiting | primary::use_tsc_offsetting | primary::hlt_exiting |
                                primary::invlpg_exiting | primary::mwait_exiting | primary::rdpmc_exiting |
                                primary::rdtsc_exiting | primary::cr3_load_exiting | primary::cr3_store_exiting |
                                primary::cr8_load_exiting | primary::cr8_store_exiting | primary::use_tpr_shadow |
                                primary::nmi_window_exiting | primary::mov_dr_exiting |
                                primary::unconditional_io_exiting | primary::use_io_bitmaps | primary::use_msr_bitmaps |
                                primary::monitor_exiting | primary::pause_exiting | primary::activate_secondary;
constexpr u32 kSecondaryOffered =
    secondary::enable_ept | secondary::enable_vpid | secondary::wbinvd_exiting | secondary::unrestricted_guest;
constexpr u32 kExitOffered = exit_ctl::host_address_space_size | exit_ctl::acknowledge_interrupt | exit_ctl::save_efer |
                             exit_ctl::load_efer | exit_ctl::save_preemption_timer;
constexpr u32 kEntryOffered = entry_ctl::ia32e_mode_guest | entry_ctl::load_efer;

constexpr u64 kMemoryTypeWriteBack = 6;
constexpr u64 kRegionBytes = 4096;
constexpr u64 kPreemptionTimerRate = 5;  // L2's timer counts every 2^5 TSC ticks
constexpr u64 kCr4Offered =
    kCr4Baseline | kCr4Umip | kCr4Vmxe | kCr4Fsgsbase | kCr4Pcide | kCr4Osxsave | kCr4Smep | kCr4Smap | kCr4Pke;

constexpr Capabilities kCapabilities = {
    // No dual-monitor SMM, no INS/OUTS instruction information, no 32-bit address limit.
    .basic = kVmcs12Revision | (kRegionBytes << basic::region_size_shift) |
             (kMemoryTypeWriteBack << basic::memory_type_shift) | basic::true_controls,
    .pin = {kPinDefault1, kPinDefault1 | kPinOffered},
    .true_pin = {kPinDefault1, kPinDefault1 | kPinOffered},
    .primary = {kPrimaryDefault1, kPrimaryDefault1 | kPrimaryOffered},
    // CR3-load and CR3-store exiting may be 0 (SDM A.3.2).
    .true_primary = {kPrimaryDefault1 & ~(primary::cr3_load_exiting | primary::cr3_store_exiting),
                     kPrimaryDefault1 | kPrimaryOffered},
    .secondary = {0, kSecondaryOffered},
    .exit = {kExitDefault1, kExitDefault1 | kExitOffered},
    .true_exit = {kExitDefault1 & ~exit_ctl::save_debug_controls, kExitDefault1 | kExitOffered},
    .entry = {kEntryDefault1, kEntryDefault1 | kEntryOffered},
    .true_entry = {kEntryDefault1 & ~entry_ctl::load_debug_controls, kEntryDefault1 | kEntryOffered},
    // The timer rate and EFER.LMA stored into "IA-32e mode guest" at exits. Only the active
    // activity state, no CR3-target values, the recommended 512 MSR-list entries, no
    // VMWRITE to read-only fields, no injection with instruction length 0.
    .misc = kPreemptionTimerRate | misc::unrestricted_lma,
    .cr0_fixed0 = kCr0Pe | kCr0Ne | kCr0Pg,
    .cr0_fixed1 = 0xFFFFFFFF,
    .cr4_fixed0 = kCr4Vmxe,
    .cr4_fixed1 = kCr4Offered,
    // 4-level walks, write-back tables, 2 MiB pages, INVEPT single / all context, INVVPID single
    // / all context. No execute-only, no accessed/dirty flags, no 1 GiB pages.
    .ept_vpid_cap = ept_vpid_cap::walk_length_4 | ept_vpid_cap::memory_type_wb | ept_vpid_cap::pages_2m |
                    ept_vpid_cap::invept | ept_vpid_cap::invept_single_context | ept_vpid_cap::invept_all_context |
                    ept_vpid_cap::invvpid | ept_vpid_cap::invvpid_single_context | ept_vpid_cap::invvpid_all_context,
};

}  // namespace

const Capabilities& capabilities() { return kCapabilities; }

u64 feature_control() { return feature_control::lock | feature_control::vmx_outside_smx; }

bool capability_msr(u32 index, u64 cr4_not_offered, u64& value) {
    const Capabilities& c = kCapabilities;
    switch (index) {
    case vmx_msr::vmx_basic: value = c.basic; return true;
    case vmx_msr::vmx_pinbased_ctls: value = c.pin.msr(); return true;
    case vmx_msr::vmx_procbased_ctls: value = c.primary.msr(); return true;
    case vmx_msr::vmx_exit_ctls: value = c.exit.msr(); return true;
    case vmx_msr::vmx_entry_ctls: value = c.entry.msr(); return true;
    case vmx_msr::vmx_misc: value = c.misc; return true;
    case vmx_msr::vmx_cr0_fixed0: value = c.cr0_fixed0; return true;
    case vmx_msr::vmx_cr0_fixed1: value = c.cr0_fixed1; return true;
    case vmx_msr::vmx_cr4_fixed0: value = c.cr4_fixed0; return true;
    case vmx_msr::vmx_cr4_fixed1: value = c.cr4_fixed1 & ~cr4_not_offered; return true;
    case vmx_msr::vmx_vmcs_enum: value = u64{highest_field_index()} << 1; return true;
    case vmx_msr::vmx_procbased_ctls2: value = c.secondary.msr(); return true;
    case vmx_msr::vmx_ept_vpid_cap: value = c.ept_vpid_cap; return true;
    case vmx_msr::vmx_true_pinbased_ctls: value = c.true_pin.msr(); return true;
    case vmx_msr::vmx_true_procbased_ctls: value = c.true_primary.msr(); return true;
    case vmx_msr::vmx_true_exit_ctls: value = c.true_exit.msr(); return true;
    case vmx_msr::vmx_true_entry_ctls: value = c.true_entry.msr(); return true;
    default: return false;
    }
}

}  // namespace nestor::nested::vmx
