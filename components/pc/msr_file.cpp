// A PC vCPU's platform MSRs (msr_file.hpp).
#include "nestor/pc/msr_file.hpp"

#include "nestor/virt/exit_handler.hpp"

namespace nestor::pc {

using namespace x86_regs;
using virt::CpuidValues;
using virt::DeviceHost;
using virt::DeviceOutcome;

namespace {

constexpr DeviceOutcome gp() { return DeviceOutcome::exception(virt::kVectorGp, true, 0); }

constexpr u32 kBankCtl = 0;  // the registers of a bank, in the order of their indices
constexpr u32 kBankStatus = 1;
// MCi_CTL takes 0 or all-ones; bits 10 and 0 may stay clear, as KVM allows: Linux clears bit 10
// of bank 4 on AMD K8 (GART TLB erratum), UnixWare bit 0 of bank 1.
constexpr u64 kBankCtlMayBeClear = (u64{1} << 10) | 1;
constexpr u32 kMinPhysicalAddressBits = 36;
constexpr u32 kMaxPhysicalAddressBits = 52;

bool is_mtrr(u32 index) {
    return index == kMsrMtrrCap || index == kMsrMtrrDefType || (index >= kMsrMtrrPhysBase0 && index <= 0x26F);
}

bool is_bank(u32 index) { return index - kMsrMc0Ctl < 4 * kMaxMachineCheckBanks; }

bool is_amd_pstate_def(u32 index) { return index - kMsrAmdPstateDef0 < kAmdPstateDefs; }

bool fixed_mtrr_is_valid(u64 value) {
    for (u32 i = 0; i < 8; ++i)
        if (!mtrr_type_is_valid((value >> (8 * i)) & 0xFF)) return false;
    return true;
}

u64 spec_ctrl_bits(const CpuidValues& leaf7, const CpuidValues& leaf7_2, const CpuidValues& ext8) {
    using namespace virt;
    u64 bits = 0;
    if ((leaf7.edx & kCpuid7EdxSpecCtrl) || (ext8.ebx & kCpuidExt8EbxIbrs)) bits |= kSpecCtrlIbrs;
    if ((leaf7.edx & kCpuid7EdxStibp) || (ext8.ebx & kCpuidExt8EbxStibp)) bits |= kSpecCtrlStibp;
    if ((leaf7.edx & kCpuid7EdxSsbd) || (ext8.ebx & kCpuidExt8EbxSsbd)) bits |= kSpecCtrlSsbd;
    if ((leaf7_2.edx & kCpuid7Sub2EdxPsfd) || (ext8.ebx & kCpuidExt8EbxPsfd)) bits |= kSpecCtrlPsfd;
    if (leaf7_2.edx & kCpuid7Sub2EdxIpredCtrl) bits |= kSpecCtrlIpredDis;
    if (leaf7_2.edx & kCpuid7Sub2EdxRrsbaCtrl) bits |= kSpecCtrlRrsbaDis;
    if (leaf7_2.edx & kCpuid7Sub2EdxBhiCtrl) bits |= kSpecCtrlBhiDisS;
    return bits;
}

}  // namespace

MsrConfig msr_config_from_cpuid(CpuVendor vendor, const CpuidValues& leaf7, const CpuidValues& leaf7_2,
                                const CpuidValues& leaf_80000008) {
    MsrConfig config;
    config.vendor = vendor;
    config.tsc_adjust = (leaf7.ebx & virt::kCpuid7EbxTscAdjust) != 0;
    config.spec_ctrl_bits = spec_ctrl_bits(leaf7, leaf7_2, leaf_80000008);
    bool ibpb = (leaf7.edx & virt::kCpuid7EdxSpecCtrl) || (leaf_80000008.ebx & virt::kCpuidExt8EbxIbpb);
    config.spec_ctrl = config.spec_ctrl_bits != 0 || ibpb;
    config.arch_capabilities = (leaf7.edx & virt::kCpuid7EdxArchCapabilities) != 0;
    if (u8 bits = static_cast<u8>(leaf_80000008.eax); bits != 0) config.physical_address_bits = bits;
    return config;
}

MsrFile::MsrFile(const MsrConfig& config, GuestTsc& tsc)
    : config_(config),
      tsc_(tsc),
      banks_(config.machine_check_banks < kMaxMachineCheckBanks ? config.machine_check_banks : kMaxMachineCheckBanks) {
    u32 bits = config.physical_address_bits;
    bits = bits < kMinPhysicalAddressBits   ? kMinPhysicalAddressBits
           : bits > kMaxPhysicalAddressBits ? kMaxPhysicalAddressBits
                                            : bits;
    reserved_address_bits_ = ~u64{0} << bits;
    config_.arch_capabilities_value &= kArchCapabilitiesOffered;
    reset();
}

void MsrFile::reset() {
    spec_ctrl_ = 0;
    misc_enable_ = kMiscEnableReset;
    mcg_status_ = 0;
    hwcr_ = kHwcrReset;
    osvw_id_length_ = 0;
    osvw_status_ = 0;
    mtrr_def_type_ = 0;
    for (u64& r : variable_mtrrs_) r = 0;
    for (u64& r : fixed_mtrrs_) r = 0;
    for (u32 i = 0; i < 4 * kMaxMachineCheckBanks; ++i) banks_regs_[i] = i % 4 == kBankCtl ? ~u64{0} : 0;
}

DeviceOutcome MsrFile::msr_read(u32 index, u64& value, DeviceHost&) {
    if (is_mtrr(index)) return read_mtrr(index, value);
    if (is_bank(index)) return read_bank(index, value);
    return read_common(index, value);
}

DeviceOutcome MsrFile::msr_write(u32 index, u64 value, DeviceHost&) {
    if (is_mtrr(index)) return write_mtrr(index, value);
    if (is_bank(index)) return write_bank(index, value);
    return write_common(index, value);
}

// The MSRs both vendors have; the rest is the vendor's.
DeviceOutcome MsrFile::read_common(u32 index, u64& value) const {
    switch (index) {
    case kMsrTsc: value = tsc_.now(); return {};
    case kMsrTscAdjust:
        if (!config_.tsc_adjust) return gp();
        value = tsc_.adjust();
        return {};
    case kMsrSpecCtrl:
        if (!config_.spec_ctrl) return gp();
        value = spec_ctrl_;
        return {};
    case kMsrArchCapabilities:
        if (!config_.arch_capabilities) return gp();
        value = config_.arch_capabilities_value;
        return {};
    case virt::kMsrBiosSignId:
        // Intel reports the revision in the high half (after WRMSR 0 and CPUID), AMD in the low.
        value = config_.vendor == CpuVendor::amd ? config_.microcode_revision : u64{config_.microcode_revision} << 32;
        return {};
    case kMsrMcgCap: value = banks_; return {};
    case kMsrMcgStatus: value = mcg_status_; return {};
    case kMsrDebugCtl: value = 0; return {};
    default: break;  // kMsrPredCmd is write-only
    }
    if (config_.vendor == CpuVendor::intel) return read_intel(index, value);
    if (config_.vendor == CpuVendor::amd) return read_amd(index, value);
    return gp();
}

DeviceOutcome MsrFile::write_common(u32 index, u64 value) {
    switch (index) {
    // WRMSR to either moves the TSC and TSC_ADJUST by the same amount (SDM vol. 3B 18.17.3).
    case kMsrTsc: tsc_.write_tsc(value); return {};
    case kMsrTscAdjust:
        if (!config_.tsc_adjust) return gp();
        tsc_.write_adjust(value);
        return {};
    case kMsrSpecCtrl:
        if (!config_.spec_ctrl || (value & ~config_.spec_ctrl_bits)) return gp();
        spec_ctrl_ = value;
        return {};
    case kMsrPredCmd:
        if (!config_.spec_ctrl || (value & ~kPredCmdIbpb)) return gp();
        return {};
    case virt::kMsrBiosSignId: return {};  // Intel's "WRMSR 0, then CPUID": nothing to load
    case kMsrMcgStatus:
        if (value & ~kMcgStatusWritable) return gp();
        mcg_status_ = value;
        return {};
    case kMsrDebugCtl:
        if (value & ~(kDebugCtlLbr | kDebugCtlBtf)) return gp();
        return {};
    default: break;  // ARCH_CAPABILITIES and MCG_CAP are read-only: #GP below
    }
    if (config_.vendor == CpuVendor::intel) return write_intel(index, value);
    if (config_.vendor == CpuVendor::amd) return write_amd(index, value);
    return gp();
}

DeviceOutcome MsrFile::read_intel(u32 index, u64& value) const {
    switch (index) {
    case kMsrPlatformId:        // no platform bits: microcode for any
    case kMsrPlatformInfo:      // no ratios, no CPUID faulting
    case kMsrCoreCapabilities:  // no split-lock detection
    case kMsrMiscFeaturesEnables: value = 0; return {};
    case kMsrMiscEnable: value = misc_enable_; return {};
    default: return gp();
    }
}

DeviceOutcome MsrFile::write_intel(u32 index, u64 value) {
    switch (index) {
    case kMsrMiscFeaturesEnables: return value == 0 ? DeviceOutcome{} : gp();  // no CPUID faulting, no ring-3 MWAIT
    case kMsrMiscEnable: return write_misc_enable(value);
    default: return gp();
    }
}

DeviceOutcome MsrFile::write_misc_enable(u64 value) {
    constexpr u64 kReadOnly = kMiscEnableBtsUnavailable | kMiscEnablePebsUnavailable;
    if ((value ^ misc_enable_) & kReadOnly) return gp();
    value &= ~kMiscEnableEmon;
    if (value & ~(kMiscEnableFastStrings | kReadOnly)) return gp();
    misc_enable_ = value;
    return {};
}

DeviceOutcome MsrFile::read_amd(u32 index, u64& value) const {
    if (is_amd_pstate_def(index)) {
        value = 0;
        return {};
    }
    switch (index) {
    case kMsrAmdHwcr: value = hwcr_; return {};
    case kMsrAmdOsvwIdLength: value = osvw_id_length_; return {};
    case kMsrAmdOsvwStatus: value = osvw_status_; return {};
    case kMsrAmdDeCfg: value = config_.lfence_serializing ? kDeCfgLfenceSerializing : 0; return {};
    case kMsrAmdSyscfg:  // no memory encryption, no TOP_MEM2 forcing WB, no fixed-MTRR DRAM bits
    case kMsrAmdNbCfg:
    case kMsrAmdDcCfg:
    case kMsrAmdTwCfg:
    case kMsrAmdBuCfg2:
    case kMsrAmdExCfg: value = 0; return {};
    default: return gp();  // PATCH_LOADER is write-only
    }
}

DeviceOutcome MsrFile::write_amd(u32 index, u64 value) {
    if (is_amd_pstate_def(index)) return {};
    switch (index) {
    case kMsrAmdHwcr: return write_hwcr(value);
    case kMsrAmdOsvwIdLength: osvw_id_length_ = value; return {};
    case kMsrAmdOsvwStatus: osvw_status_ = value; return {};
    case kMsrAmdDeCfg:
        // Only LFENCE serialization, and only as the host has it: setting it is kept, clearing
        // it cannot make the host's LFENCE speculate again, so it is ignored.
        if (value & ~kDeCfgLfenceSerializing) return gp();
        if ((value & kDeCfgLfenceSerializing) && !config_.lfence_serializing) return gp();
        return {};
    case kMsrAmdNbCfg:  // configuration errata workarounds write: KVM ignores them
    case kMsrAmdPatchLoader:
    case kMsrAmdDcCfg:
    case kMsrAmdTwCfg:
    case kMsrAmdBuCfg2:
    case kMsrAmdExCfg: return {};
    default: return gp();  // SYSCFG is read-only here, as in KVM
    }
}

DeviceOutcome MsrFile::write_hwcr(u64 value) {
    value &= ~kHwcrIgnored;
    if (value & ~kHwcrWritable) return gp();
    hwcr_ = kHwcrReset | value;
    return {};
}

u64* MsrFile::mtrr(u32 index) {
    if (index - kMsrMtrrPhysBase0 < 2 * kVariableMtrrs) return &variable_mtrrs_[index - kMsrMtrrPhysBase0];
    if (index == kMsrMtrrFix64k00000) return &fixed_mtrrs_[0];
    if (index - kMsrMtrrFix16k80000 < 2) return &fixed_mtrrs_[1 + index - kMsrMtrrFix16k80000];
    if (index - kMsrMtrrFix4kC0000 < 8) return &fixed_mtrrs_[3 + index - kMsrMtrrFix4kC0000];
    if (index == kMsrMtrrDefType) return &mtrr_def_type_;
    return nullptr;
}

DeviceOutcome MsrFile::read_mtrr(u32 index, u64& value) {
    if (index == kMsrMtrrCap) {
        value = kMtrrCapValue;
        return {};
    }
    const u64* slot = mtrr(index);
    if (!slot) return gp();
    value = *slot;
    return {};
}

// PHYSBASEn: a valid type, bits 11:8 and those at and above MAXPHYADDR reserved. PHYSMASKn:
// bits 10:0 and those at and above MAXPHYADDR reserved (kvm_mtrr_valid).
bool MsrFile::variable_mtrr_is_valid(u32 index, u64 value) const {
    bool mask = (index - kMsrMtrrPhysBase0) & 1;
    if (mask) return (value & (reserved_address_bits_ | 0x7FF)) == 0;
    return mtrr_type_is_valid(value & 0xFF) && (value & (reserved_address_bits_ | 0xF00)) == 0;
}

DeviceOutcome MsrFile::write_mtrr(u32 index, u64 value) {
    u64* slot = mtrr(index);
    if (!slot) return gp();  // MTRRCAP is read-only; the holes between the MTRRs hold nothing
    bool valid = index == kMsrMtrrDefType ? !(value & ~kMtrrDefTypeWritable) && mtrr_type_is_valid(value & 0xFF)
                 : index - kMsrMtrrPhysBase0 < 2 * kVariableMtrrs ? variable_mtrr_is_valid(index, value)
                                                                  : fixed_mtrr_is_valid(value);
    if (!valid) return gp();
    *slot = value;
    return {};
}

DeviceOutcome MsrFile::read_bank(u32 index, u64& value) const {
    if (!has_bank(index)) return gp();
    value = banks_regs_[index - kMsrMc0Ctl];
    return {};
}

// MCi_STATUS takes only 0 (clearing a logged error), but on AMD with HWCR.McStatusWrEn any value
// (error injection); MCi_ADDR and MCi_MISC take anything, as in KVM.
DeviceOutcome MsrFile::write_bank(u32 index, u64 value) {
    if (!has_bank(index)) return gp();
    u32 reg = (index - kMsrMc0Ctl) % 4;
    if (reg == kBankCtl && value != 0 && (value | kBankCtlMayBeClear) != ~u64{0}) return gp();
    bool status_writable = config_.vendor == CpuVendor::amd && (hwcr_ & kHwcrMcStatusWrEn);
    if (reg == kBankStatus && value != 0 && !status_writable) return gp();
    banks_regs_[index - kMsrMc0Ctl] = value;
    return {};
}

}  // namespace nestor::pc
