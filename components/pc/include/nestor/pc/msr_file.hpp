// The platform MSRs of one vCPU of a PC domain, as an unmodified kernel reads and writes them
// while it boots and runs: the TSC and its adjustment, the MTRRs, the machine-check banks, the
// speculation controls, the microcode revision, and the model-specific MSRs Linux touches on
// Intel and on AMD. Modelled on KVM (kvm_get_msr_common/kvm_set_msr_common in
// arch/x86/kvm/x86.c, mtrr.c), with a #GP wherever the hardware or KVM raises one. The vendor is
// configuration; nothing here knows VMCB or VMCS. The MSRs the backends switch with the vCPU, the
// local APIC's and the nested component's are not here: docs/msrs.md says whose each MSR is.
#pragma once

#include "nestor/arch/x86_regs.hpp"
#include "nestor/pc/guest_tsc.hpp"
#include "nestor/platform.hpp"
#include "nestor/virt/cpuid_policy.hpp"
#include "nestor/virt/device_bus.hpp"

namespace nestor::pc {

// Model-specific MSRs: not architectural, so only this model names them.
inline constexpr u32 kMsrPlatformInfo = 0xCE;          // Intel MSR_PLATFORM_INFO
inline constexpr u32 kMsrMiscFeaturesEnables = 0x140;  // Intel MSR_MISC_FEATURES_ENABLES
inline constexpr u32 kMsrAmdSyscfg = 0xC0010010;       // SYSCFG
inline constexpr u32 kMsrAmdHwcr = 0xC0010015;         // HWCR
inline constexpr u32 kMsrAmdNbCfg = 0xC001001F;        // NB_CFG
inline constexpr u32 kMsrAmdPatchLoader = 0xC0010020;  // PATCH_LOADER (write-only)
inline constexpr u32 kMsrAmdPstateDef0 = 0xC0010064;   // PStateDef[0..7]
inline constexpr u32 kAmdPstateDefs = 8;
inline constexpr u32 kMsrAmdOsvwIdLength = 0xC0010140;
inline constexpr u32 kMsrAmdOsvwStatus = 0xC0010141;
inline constexpr u32 kMsrAmdDcCfg = 0xC0011022;
inline constexpr u32 kMsrAmdTwCfg = 0xC0011023;
inline constexpr u32 kMsrAmdDeCfg = 0xC0011029;
inline constexpr u32 kMsrAmdBuCfg2 = 0xC001102A;
inline constexpr u32 kMsrAmdExCfg = 0xC001102C;

// The MTRRs: 8 variable pairs, the fixed ones, write-combining (IA32_MTRRCAP = 0x508, as KVM's).
inline constexpr u32 kVariableMtrrs = 8;
inline constexpr u32 kFixedMtrrs = 11;
inline constexpr u64 kMtrrCapFixed = u64{1} << 8;
inline constexpr u64 kMtrrCapWriteCombining = u64{1} << 10;
inline constexpr u64 kMtrrCapValue = kVariableMtrrs | kMtrrCapFixed | kMtrrCapWriteCombining;
inline constexpr u64 kMtrrDefTypeWritable = 0xCFF;  // type, FE (bit 10), E (bit 11)
// UC, WC, WT, WP, WB: the memory types an MTRR may hold (2, 3 and 7 up are reserved).
constexpr bool mtrr_type_is_valid(u64 type) { return type < 8 && ((1u << type) & 0x73) != 0; }

// Machine check: at most 32 banks, 0x400-0x47F (0x480 is IA32_VMX_BASIC). MCG_CAP holds the
// count alone: no MCG_CTL (MCG_CTL_P clear, so MCG_CTL #GPs), no CMCI, no extended registers.
inline constexpr u32 kMaxMachineCheckBanks = 32;
inline constexpr u64 kMcgStatusWritable = 0x7;  // RIPV, EIPV, MCIP

// IA32_MISC_ENABLE (Intel): fast strings on; no branch trace store, no PEBS (read-only, set);
// performance monitoring (EMON) reads 0 and writes to it are ignored, as KVM's.
inline constexpr u64 kMiscEnableFastStrings = u64{1} << 0;
inline constexpr u64 kMiscEnableEmon = u64{1} << 7;
inline constexpr u64 kMiscEnableBtsUnavailable = u64{1} << 11;
inline constexpr u64 kMiscEnablePebsUnavailable = u64{1} << 12;
inline constexpr u64 kMiscEnableReset = kMiscEnableFastStrings | kMiscEnableBtsUnavailable | kMiscEnablePebsUnavailable;

// AMD HWCR: McStatusWrEn lets MCi_STATUS take non-zero values. TscFreqSel (the TSC counts at
// the P0 frequency) is read-only 1, as on family 10h and later: Linux reports a firmware bug
// when it reads 0 on a CPU with a constant TSC. Writes of it, and of bits 3, 6 and 8 (TLB cache,
// flush filter, IGNNE emulation), are ignored. With TscFreqSel set OpenBSD reads PStateDef[0]
// with a plain RDMSR: the P-state definitions read 0 (not enabled: no P-state to take a
// frequency from, so it calibrates), and writes to them are ignored.
inline constexpr u64 kHwcrMcStatusWrEn = u64{1} << 18;
inline constexpr u64 kHwcrTscFreqSel = u64{1} << 24;
inline constexpr u64 kHwcrReset = kHwcrTscFreqSel;
inline constexpr u64 kHwcrWritable = kHwcrMcStatusWrEn;
inline constexpr u64 kHwcrIgnored = (u64{1} << 3) | (u64{1} << 6) | (u64{1} << 8) | kHwcrTscFreqSel;
inline constexpr u64 kDeCfgLfenceSerializing = u64{1} << 1;  // AMD DE_CFG[1]

// IA32_DEBUGCTL: reads 0. LBR and BTF writes are dropped (KVM without LBR virtualization);
// every other bit #GPs.
inline constexpr u64 kDebugCtlLbr = u64{1} << 0;
inline constexpr u64 kDebugCtlBtf = u64{1} << 1;

// IA32_SPEC_CTRL bits beyond IBRS, STIBP and SSBD (x86_regs.hpp).
inline constexpr u64 kSpecCtrlIpredDis = (u64{1} << 3) | (u64{1} << 4);  // user, supervisor
inline constexpr u64 kSpecCtrlRrsbaDis = (u64{1} << 5) | (u64{1} << 6);  // user, supervisor
inline constexpr u64 kSpecCtrlPsfd = u64{1} << 7;
inline constexpr u64 kSpecCtrlBhiDisS = u64{1} << 10;

// IA32_ARCH_CAPABILITIES bits a guest may be shown: the "not affected" and "mitigated" reports.
// The bits announcing further MSRs (TSX_CTRL, MCU_CONTROL, MISC_PACKAGE_CTRLS, DOITM,
// MCU_ENUMERATION, FB_CLEAR_CTRL, XAPIC_DISABLE, OVERCLOCKING_STATUS, GDS_CTRL, ...) are never
// shown: the PC has none of those MSRs. Nor is IBRS_ALL (enhanced IBRS): it is a promise about
// IA32_SPEC_CTRL.IBRS, which a PC guest does not have (cpuid_policy hides the speculation
// controls).
inline constexpr u64 kArchCapabilitiesOffered = (u64{1} << 0)      // RDCL_NO
                                                | (u64{1} << 2)    // RSBA
                                                | (u64{1} << 3)    // SKIP_L1DFL_VMENTRY
                                                | (u64{1} << 4)    // SSB_NO
                                                | (u64{1} << 5)    // MDS_NO
                                                | (u64{1} << 6)    // IF_PSCHANGE_MC_NO
                                                | (u64{1} << 8)    // TAA_NO
                                                | (u64{1} << 13)   // SBDR_SSDP_NO
                                                | (u64{1} << 14)   // FBSDP_NO
                                                | (u64{1} << 15)   // PSDP_NO
                                                | (u64{1} << 17)   // FB_CLEAR
                                                | (u64{1} << 19)   // RRSBA
                                                | (u64{1} << 20)   // BHI_NO
                                                | (u64{1} << 24)   // PBRSB_NO
                                                | (u64{1} << 26)   // GDS_NO
                                                | (u64{1} << 27)   // RFDS_NO
                                                | (u64{1} << 28);  // RFDS_CLEAR

// What a vCPU's MSR file offers. The CPUID-dependent fields must match what the vCPU's CPUID
// shows: msr_config_from_cpuid() derives them from the guest's leaves.
struct MsrConfig {
    CpuVendor vendor = CpuVendor::intel;
    u32 machine_check_banks = 10;     // at most kMaxMachineCheckBanks
    u8 physical_address_bits = 52;    // CPUID 0x80000008 EAX[7:0]: the variable MTRRs' bits above it are reserved
    bool tsc_adjust = true;           // IA32_TSC_ADJUST exists (CPUID.7.0:EBX[1])
    bool spec_ctrl = false;           // IA32_SPEC_CTRL and IA32_PRED_CMD exist (else both #GP)
    u64 spec_ctrl_bits = 0;           // the IA32_SPEC_CTRL bits that may be set
    bool arch_capabilities = false;   // IA32_ARCH_CAPABILITIES exists (CPUID.7.0:EDX[29])
    u64 arch_capabilities_value = 0;  // what it reads, within kArchCapabilitiesOffered
    u32 microcode_revision = 0;       // 0x8B: IA32_BIOS_SIGN_ID[63:32] (Intel), PATCH_LEVEL (AMD)
    bool lfence_serializing = true;   // the host's LFENCE is dispatch-serializing: AMD DE_CFG[1] reads 1
};

// The CPUID-dependent part of a MsrConfig, from the guest's own CPUID (cpuid_policy's answers for
// leaf 7 subleaves 0 and 2 and leaf 0x80000008): TSC_ADJUST, the speculation controls (Intel's
// and AMD's enumerations both count, as in KVM), ARCH_CAPABILITIES, MAXPHYADDR. The rest keeps
// its default.
MsrConfig msr_config_from_cpuid(CpuVendor vendor, const virt::CpuidValues& leaf7, const virt::CpuidValues& leaf7_2,
                                const virt::CpuidValues& leaf_80000008);

// A range of MSR indices the file serves: the platform registers each on the domain's bus.
struct MsrRange {
    u32 first;
    u32 count;
};

class MsrFile final : public virt::Device {
public:
    // Few ranges, none holding another model's MSR (0x1B, 0x3A, 0x174-0x176, 0x277, 0x480 up,
    // 0x6E0, 0x800-0x8FF, 0xC0000080 up, 0xC0010114, 0xC0010117); indices inside a range the
    // file does not emulate #GP.
    static constexpr MsrRange kRanges[] = {
        {x86_regs::kMsrTsc, 8},                                   // TSC .. PLATFORM_ID
        {x86_regs::kMsrTscAdjust, 0x174 - 0x3B},                  // TSC_ADJUST .. MISC_FEATURES_ENABLES
        {x86_regs::kMsrMcgCap, 0x277 - 0x179},                    // MCG_* .. the fixed MTRRs
        {x86_regs::kMsrMtrrDefType, 1},                           // MTRR_DEF_TYPE
        {x86_regs::kMsrMc0Ctl, 4 * kMaxMachineCheckBanks},        // the machine-check banks
        {kMsrAmdSyscfg, kMsrAmdPatchLoader - kMsrAmdSyscfg + 1},  // SYSCFG .. PATCH_LOADER
        {kMsrAmdPstateDef0, kAmdPstateDefs},                      // PStateDef[0..7]
        {kMsrAmdOsvwIdLength, 2},                                 // OSVW
        {kMsrAmdDcCfg, kMsrAmdExCfg - kMsrAmdDcCfg + 1},          // DC_CFG .. EX_CFG
    };

    // `tsc` is the domain's TSC, which IA32_TSC and IA32_TSC_ADJUST read and write.
    MsrFile(const MsrConfig& config, GuestTsc& tsc);

    virt::DeviceOutcome msr_read(u32 index, u64& value, virt::DeviceHost& host) override;
    virt::DeviceOutcome msr_write(u32 index, u64 value, virt::DeviceHost& host) override;

    // Every register back to its value after RESET, but the TSC: that is the domain's.
    void reset();

private:
    virt::DeviceOutcome read_common(u32 index, u64& value) const;
    virt::DeviceOutcome write_common(u32 index, u64 value);
    virt::DeviceOutcome read_intel(u32 index, u64& value) const;
    virt::DeviceOutcome write_intel(u32 index, u64 value);
    virt::DeviceOutcome read_amd(u32 index, u64& value) const;
    virt::DeviceOutcome write_amd(u32 index, u64 value);
    virt::DeviceOutcome read_mtrr(u32 index, u64& value);
    virt::DeviceOutcome write_mtrr(u32 index, u64 value);
    virt::DeviceOutcome read_bank(u32 index, u64& value) const;
    virt::DeviceOutcome write_bank(u32 index, u64 value);
    virt::DeviceOutcome write_misc_enable(u64 value);
    virt::DeviceOutcome write_hwcr(u64 value);
    u64* mtrr(u32 index);
    bool variable_mtrr_is_valid(u32 index, u64 value) const;
    bool has_bank(u32 index) const { return index - x86_regs::kMsrMc0Ctl < 4 * banks_; }

    MsrConfig config_;
    GuestTsc& tsc_;
    u32 banks_;
    u64 reserved_address_bits_;  // the bits of a variable MTRR at and above MAXPHYADDR
    u64 spec_ctrl_ = 0;
    u64 misc_enable_ = kMiscEnableReset;
    u64 mcg_status_ = 0;
    u64 hwcr_ = kHwcrReset;
    u64 osvw_id_length_ = 0;
    u64 osvw_status_ = 0;
    u64 mtrr_def_type_ = 0;
    u64 variable_mtrrs_[2 * kVariableMtrrs] = {};
    u64 fixed_mtrrs_[kFixedMtrrs] = {};
    u64 banks_regs_[4 * kMaxMachineCheckBanks] = {};  // CTL, STATUS, ADDR, MISC of each bank
};

}  // namespace nestor::pc
