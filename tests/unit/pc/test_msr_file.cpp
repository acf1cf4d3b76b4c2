#include <catch2/catch.hpp>
#include <random>
#include <vector>

#include "nestor/pc/msr_file.hpp"
#include "nestor/virt/exit_handler.hpp"
#include "pc_fakes.hpp"

using namespace nestor;
using namespace nestor::pc;
using namespace nestor::pc::testing;
using namespace nestor::x86_regs;
using virt::CpuidValues;
using virt::DeviceHost;
using virt::DeviceOutcome;

namespace {

constexpr u64 kAllOnes = ~u64{0};
constexpr u64 kRdclNo = u64{1} << 0;
constexpr u64 kMdsNo = u64{1} << 5;
constexpr u64 kTsxCtrl = u64{1} << 7;  // names an MSR the PC lacks: never shown

MsrConfig config_for(CpuVendor vendor) {
    MsrConfig config;
    config.vendor = vendor;
    config.spec_ctrl = true;
    config.spec_ctrl_bits = kSpecCtrlIbrs | kSpecCtrlStibp | kSpecCtrlSsbd;
    config.arch_capabilities = true;
    config.arch_capabilities_value = kRdclNo | kMdsNo | kTsxCtrl;
    config.physical_address_bits = 40;
    config.microcode_revision = 0x1234;
    return config;
}

// One vCPU's MSR file on a clock the test moves (the domain's TSC starts at 0 with it).
struct Vcpu {
    explicit Vcpu(const MsrConfig& config) : tsc(clock), msrs(config, tsc) {}
    FakeClock clock;
    GuestTsc tsc;
    NullHost host;
    MsrFile msrs;

    DeviceOutcome read(u32 index, u64& value) {
        value = kAllOnes;
        return msrs.msr_read(index, value, host);
    }
    DeviceOutcome write(u32 index, u64 value) { return msrs.msr_write(index, value, host); }
};

bool completes(const DeviceOutcome& outcome) { return outcome.action == DeviceOutcome::Action::complete; }

bool is_gp(const DeviceOutcome& outcome) {
    return outcome.action == DeviceOutcome::Action::fault && outcome.vector == 13 && outcome.has_error_code &&
           outcome.code == 0;
}

u64 rd(Vcpu& vcpu, u32 index) {
    u64 value = 0;
    INFO("rdmsr " << std::hex << index);
    REQUIRE(completes(vcpu.read(index, value)));
    return value;
}

bool read_gps(Vcpu& vcpu, u32 index) {
    u64 value = 0;
    return is_gp(vcpu.read(index, value));
}

bool wr(Vcpu& vcpu, u32 index, u64 value) { return completes(vcpu.write(index, value)); }
bool write_gps(Vcpu& vcpu, u32 index, u64 value) { return is_gp(vcpu.write(index, value)); }

bool in_ranges(u32 index) {
    for (const MsrRange& range : MsrFile::kRanges)
        if (index - range.first < range.count) return true;
    return false;
}

const CpuVendor kVendors[] = {CpuVendor::intel, CpuVendor::amd};

}  // namespace

TEST_CASE("pc.msrs.ranges_leave_other_owners_alone") {
    // The local APIC's, the backends' switched MSRs, EFER and the nested component's.
    std::vector<u32> others = {0x1B, 0x6E0, 0x800, 0x8FF, 0x174, 0x175, 0x176, 0x277, kMsrEfer};
    for (u32 i = 0xC0000081; i <= 0xC0000103; ++i) others.push_back(i);
    for (u32 index : others) {
        INFO(std::hex << index);
        CHECK_FALSE(in_ranges(index));
    }
    for (const MsrRange& range : MsrFile::kRanges)
        for (u32 index = range.first; index - range.first < range.count; ++index) {
            INFO(std::hex << index);
            CHECK_FALSE(virt::is_virtualization_msr(index));
        }
}

TEST_CASE("pc.msrs.ranges_fit_on_the_bus_beside_the_local_apic") {
    virt::DeviceBus bus;
    FakeClock clock;
    GuestTsc tsc(clock);
    MsrFile msrs(config_for(CpuVendor::intel), tsc);
    class Apic final : public virt::Device {
    } apic;
    REQUIRE(bus.add_msrs(0x800, 0x100, apic).ok());
    REQUIRE(bus.add_msrs(0x1B, 1, apic).ok());
    REQUIRE(bus.add_msrs(0x6E0, 1, apic).ok());
    for (const MsrRange& range : MsrFile::kRanges) CHECK(bus.add_msrs(range.first, range.count, msrs).ok());
    CHECK(bus.msr_range(kMsrMtrrDefType)->device == &msrs);
    CHECK(bus.msr_range(0x1B)->device == &apic);
}

TEST_CASE("pc.msrs.every_emulated_msr_is_in_a_range") {
    for (u32 index : {kMsrTsc,
                      kMsrPlatformId,
                      kMsrTscAdjust,
                      kMsrSpecCtrl,
                      kMsrPredCmd,
                      virt::kMsrBiosSignId,
                      kMsrPlatformInfo,
                      kMsrCoreCapabilities,
                      kMsrMtrrCap,
                      kMsrArchCapabilities,
                      kMsrMiscFeaturesEnables,
                      kMsrMcgCap,
                      kMsrMcgStatus,
                      kMsrMiscEnable,
                      kMsrDebugCtl,
                      kMsrMtrrPhysBase0,
                      0x20Fu,
                      kMsrMtrrFix64k00000,
                      kMsrMtrrFix16k80000,
                      0x259u,
                      kMsrMtrrFix4kC0000,
                      0x26Fu,
                      kMsrMtrrDefType,
                      kMsrMc0Ctl,
                      0x47Fu,
                      kMsrAmdSyscfg,
                      kMsrAmdHwcr,
                      kMsrAmdNbCfg,
                      kMsrAmdPatchLoader,
                      kMsrAmdOsvwIdLength,
                      kMsrAmdOsvwStatus,
                      kMsrAmdDcCfg,
                      kMsrAmdTwCfg,
                      kMsrAmdDeCfg,
                      kMsrAmdBuCfg2,
                      kMsrAmdExCfg}) {
        INFO(std::hex << index);
        CHECK(in_ranges(index));
    }
}

TEST_CASE("pc.msrs.tsc_follows_the_clock_and_its_adjustment") {
    for (CpuVendor vendor : kVendors) {
        Vcpu vcpu(config_for(vendor));
        vcpu.clock.tsc = 1000;
        CHECK(rd(vcpu, kMsrTsc) == 1000);
        CHECK(rd(vcpu, kMsrTscAdjust) == 0);
        CHECK(vcpu.tsc.adjust() == 0);
        // WRMSR to the TSC moves TSC_ADJUST by as much (SDM vol. 3B 18.17.3).
        CHECK(wr(vcpu, kMsrTsc, 5000));
        CHECK(vcpu.tsc.adjust() == 4000);
        CHECK(rd(vcpu, kMsrTscAdjust) == 4000);
        vcpu.clock.tsc = 2000;
        CHECK(rd(vcpu, kMsrTsc) == 6000);
        // And WRMSR to TSC_ADJUST moves the TSC.
        CHECK(wr(vcpu, kMsrTscAdjust, 100));
        CHECK(rd(vcpu, kMsrTsc) == 2100);
        CHECK(vcpu.tsc.adjust() == 100);
        // Backwards: a negative adjustment, as TSC_ADJUST reads it (two's complement).
        CHECK(wr(vcpu, kMsrTsc, 1500));
        CHECK(static_cast<i64>(vcpu.tsc.adjust()) == -500);
        CHECK(rd(vcpu, kMsrTscAdjust) == static_cast<u64>(-500));
        CHECK(rd(vcpu, kMsrTsc) == 1500);
        vcpu.clock.tsc = 3000;
        CHECK(rd(vcpu, kMsrTsc) == 2500);
    }
}

TEST_CASE("pc.msrs.tsc_adjust_only_when_offered") {
    MsrConfig config = config_for(CpuVendor::intel);
    config.tsc_adjust = false;
    Vcpu vcpu(config);
    CHECK(read_gps(vcpu, kMsrTscAdjust));
    CHECK(write_gps(vcpu, kMsrTscAdjust, 0));
    CHECK(wr(vcpu, kMsrTsc, 77));  // the TSC itself is always there
    CHECK(rd(vcpu, kMsrTsc) == 77);
}

TEST_CASE("pc.msrs.mtrr_reset_values") {
    for (CpuVendor vendor : kVendors) {
        Vcpu vcpu(config_for(vendor));
        CHECK(rd(vcpu, kMsrMtrrCap) == 0x508);  // 8 variable, fixed, write-combining
        CHECK(write_gps(vcpu, kMsrMtrrCap, 0x508));
        CHECK(rd(vcpu, kMsrMtrrDefType) == 0);
        for (u32 i = 0; i < 2 * kVariableMtrrs; ++i) CHECK(rd(vcpu, kMsrMtrrPhysBase0 + i) == 0);
        for (u32 index : {0x250u, 0x258u, 0x259u, 0x268u, 0x269u, 0x26Au, 0x26Bu, 0x26Cu, 0x26Du, 0x26Eu, 0x26Fu})
            CHECK(rd(vcpu, index) == 0);
    }
}

TEST_CASE("pc.msrs.mtrr_def_type_validity") {
    Vcpu vcpu(config_for(CpuVendor::intel));
    for (u64 good : {0xC06ull, 0x806ull, 0x400ull, 0xC01ull, 0xC04ull, 0xC05ull, 0ull}) {
        CHECK(wr(vcpu, kMsrMtrrDefType, good));
        CHECK(rd(vcpu, kMsrMtrrDefType) == good);
    }
    CHECK(wr(vcpu, kMsrMtrrDefType, 0xC06));
    for (u64 bad : {0xC02ull, 0xC03ull, 0xC07ull, 0xC08ull, 0xCFFull, 0xD06ull, 0x1C06ull, 0x8000000000000C06ull}) {
        INFO(std::hex << bad);
        CHECK(write_gps(vcpu, kMsrMtrrDefType, bad));
    }
    CHECK(rd(vcpu, kMsrMtrrDefType) == 0xC06);  // a refused write changes nothing
}

TEST_CASE("pc.msrs.variable_mtrr_validity") {
    Vcpu vcpu(config_for(CpuVendor::amd));  // MAXPHYADDR 40
    for (u32 pair = 0; pair < kVariableMtrrs; ++pair) {
        u32 base = kMsrMtrrPhysBase0 + 2 * pair, mask = base + 1;
        CHECK(wr(vcpu, base, 0xFF'FFFF'F000 | 6));  // the highest address below MAXPHYADDR, WB
        CHECK(rd(vcpu, base) == (0xFF'FFFF'F000 | 6));
        CHECK(wr(vcpu, mask, 0xFF'C000'0800));  // valid bit 11
        CHECK(rd(vcpu, mask) == 0xFF'C000'0800);
        CHECK(write_gps(vcpu, base, (u64{1} << 40) | 6));  // at MAXPHYADDR
        CHECK(write_gps(vcpu, base, 0x100 | 6));           // bits 11:8
        CHECK(write_gps(vcpu, base, 0x800));
        for (u64 type : {2, 3, 7, 8, 0xFF}) CHECK(write_gps(vcpu, base, 0x1000 | type));
        CHECK(write_gps(vcpu, mask, 0x800 | 1));  // bits 10:0
        CHECK(write_gps(vcpu, mask, 0x800 | 0x400));
        CHECK(write_gps(vcpu, mask, (u64{1} << 40) | 0x800));
        CHECK(write_gps(vcpu, mask, kAllOnes));
        CHECK(rd(vcpu, mask) == 0xFF'C000'0800);
    }
    for (u32 hole = 0x210; hole < 0x250; ++hole) {
        CHECK(read_gps(vcpu, hole));
        CHECK(write_gps(vcpu, hole, 0));
    }
}

TEST_CASE("pc.msrs.variable_mtrr_reserved_bits_follow_maxphyaddr") {
    MsrConfig config = config_for(CpuVendor::intel);
    config.physical_address_bits = 46;
    Vcpu vcpu(config);
    CHECK(wr(vcpu, kMsrMtrrPhysBase0, (u64{1} << 45) | 6));
    CHECK(write_gps(vcpu, kMsrMtrrPhysBase0, (u64{1} << 46) | 6));
    config.physical_address_bits = 0;  // nonsense is held to at least 36 bits
    Vcpu low(config);
    CHECK(wr(low, kMsrMtrrPhysBase0, (u64{1} << 35) | 6));
    CHECK(write_gps(low, kMsrMtrrPhysBase0, (u64{1} << 36) | 6));
}

TEST_CASE("pc.msrs.fixed_mtrr_validity") {
    Vcpu vcpu(config_for(CpuVendor::intel));
    for (u32 index : {0x250u, 0x258u, 0x259u, 0x268u, 0x269u, 0x26Au, 0x26Bu, 0x26Cu, 0x26Du, 0x26Eu, 0x26Fu}) {
        INFO(std::hex << index);
        CHECK(wr(vcpu, index, 0x0606060606060606));
        CHECK(wr(vcpu, index, 0x0504010006050401));
        CHECK(rd(vcpu, index) == 0x0504010006050401);
        for (u32 byte = 0; byte < 8; ++byte)
            for (u64 type : {2, 3, 7, 0x80})
                CHECK(write_gps(vcpu, index, 0x0606060606060606 ^ (6ull << (8 * byte)) ^ (type << (8 * byte))));
        CHECK(rd(vcpu, index) == 0x0504010006050401);
    }
    for (u32 hole : {0x251u, 0x257u, 0x25Au, 0x267u, 0x270u, 0x276u}) {
        INFO(std::hex << hole);
        CHECK(read_gps(vcpu, hole));
        CHECK(write_gps(vcpu, hole, 0));
    }
}

TEST_CASE("pc.msrs.machine_check_globals") {
    for (CpuVendor vendor : kVendors) {
        Vcpu vcpu(config_for(vendor));
        CHECK(rd(vcpu, kMsrMcgCap) == 10);  // ten banks, no MCG_CTL, no CMCI, nothing extended
        CHECK(write_gps(vcpu, kMsrMcgCap, 10));
        CHECK(read_gps(vcpu, kMsrMcgCtl));  // MCG_CTL_P is clear
        CHECK(write_gps(vcpu, kMsrMcgCtl, kAllOnes));
        CHECK(rd(vcpu, kMsrMcgStatus) == 0);
        CHECK(wr(vcpu, kMsrMcgStatus, 7));
        CHECK(rd(vcpu, kMsrMcgStatus) == 7);
        CHECK(write_gps(vcpu, kMsrMcgStatus, 8));
        CHECK(wr(vcpu, kMsrMcgStatus, 0));
        CHECK(rd(vcpu, kMsrMcgStatus) == 0);
    }
}

TEST_CASE("pc.msrs.machine_check_banks") {
    for (CpuVendor vendor : kVendors) {
        Vcpu vcpu(config_for(vendor));
        for (u32 bank = 0; bank < 10; ++bank) {
            u32 ctl = kMsrMc0Ctl + 4 * bank;
            CHECK(rd(vcpu, ctl) == kAllOnes);
            CHECK(rd(vcpu, ctl + 1) == 0);
            CHECK(rd(vcpu, ctl + 2) == 0);
            CHECK(rd(vcpu, ctl + 3) == 0);
            CHECK(wr(vcpu, ctl, 0));
            CHECK(rd(vcpu, ctl) == 0);
            CHECK(wr(vcpu, ctl, kAllOnes & ~(u64{1} << 10)));  // K8's GART erratum workaround
            CHECK(wr(vcpu, ctl, kAllOnes & ~u64{1}));
            CHECK(wr(vcpu, ctl, kAllOnes));
            CHECK(write_gps(vcpu, ctl, 1));
            CHECK(write_gps(vcpu, ctl, kAllOnes & ~u64{2}));
            CHECK(rd(vcpu, ctl) == kAllOnes);
            CHECK(wr(vcpu, ctl + 1, 0));  // clearing a logged error
            CHECK(write_gps(vcpu, ctl + 1, u64{1} << 63));
            CHECK(wr(vcpu, ctl + 2, 0x1234'5678'9ABC));
            CHECK(rd(vcpu, ctl + 2) == 0x1234'5678'9ABC);
            CHECK(wr(vcpu, ctl + 3, kAllOnes));
            CHECK(rd(vcpu, ctl + 3) == kAllOnes);
        }
        for (u32 index = kMsrMc0Ctl + 40; index < kMsrMc0Ctl + 0x80; ++index) {
            CHECK(read_gps(vcpu, index));
            CHECK(write_gps(vcpu, index, 0));
        }
    }
}

TEST_CASE("pc.msrs.machine_check_bank_count") {
    MsrConfig config = config_for(CpuVendor::intel);
    config.machine_check_banks = 40;  // more than 0x400-0x47F holds
    Vcpu many(config);
    CHECK(rd(many, kMsrMcgCap) == kMaxMachineCheckBanks);
    CHECK(rd(many, 0x47C) == kAllOnes);
    CHECK(rd(many, 0x47F) == 0);
    config.machine_check_banks = 0;
    Vcpu none(config);
    CHECK(rd(none, kMsrMcgCap) == 0);
    CHECK(read_gps(none, kMsrMc0Ctl));
}

TEST_CASE("pc.msrs.amd_mci_status_takes_values_with_mc_status_wr_en") {
    Vcpu amd(config_for(CpuVendor::amd));
    u32 status = kMsrMc0Ctl + 4 * 3 + 1;
    CHECK(write_gps(amd, status, 0xB000'0000'0000'0001));
    CHECK(wr(amd, kMsrAmdHwcr, kHwcrMcStatusWrEn));
    CHECK(wr(amd, status, 0xB000'0000'0000'0001));
    CHECK(rd(amd, status) == 0xB000'0000'0000'0001);
    Vcpu intel(config_for(CpuVendor::intel));  // Intel has no such switch
    CHECK(write_gps(intel, kMsrAmdHwcr, kHwcrMcStatusWrEn));
    CHECK(write_gps(intel, status, 1));
}

TEST_CASE("pc.msrs.speculation_controls") {
    for (CpuVendor vendor : kVendors) {
        Vcpu vcpu(config_for(vendor));
        CHECK(rd(vcpu, kMsrSpecCtrl) == 0);
        CHECK(wr(vcpu, kMsrSpecCtrl, kSpecCtrlIbrs | kSpecCtrlStibp | kSpecCtrlSsbd));
        CHECK(rd(vcpu, kMsrSpecCtrl) == (kSpecCtrlIbrs | kSpecCtrlStibp | kSpecCtrlSsbd));
        CHECK(write_gps(vcpu, kMsrSpecCtrl, kSpecCtrlBhiDisS));  // not offered by this config
        CHECK(write_gps(vcpu, kMsrSpecCtrl, u64{1} << 63));
        CHECK(rd(vcpu, kMsrSpecCtrl) == (kSpecCtrlIbrs | kSpecCtrlStibp | kSpecCtrlSsbd));
        CHECK(wr(vcpu, kMsrPredCmd, kPredCmdIbpb));
        CHECK(wr(vcpu, kMsrPredCmd, 0));
        CHECK(write_gps(vcpu, kMsrPredCmd, 2));
        CHECK(read_gps(vcpu, kMsrPredCmd));  // write-only
    }
    MsrConfig config = config_for(CpuVendor::intel);
    config.spec_ctrl = false;
    Vcpu absent(config);
    CHECK(read_gps(absent, kMsrSpecCtrl));
    CHECK(write_gps(absent, kMsrSpecCtrl, 0));
    CHECK(write_gps(absent, kMsrPredCmd, kPredCmdIbpb));
}

TEST_CASE("pc.msrs.arch_capabilities") {
    for (CpuVendor vendor : kVendors) {
        Vcpu vcpu(config_for(vendor));
        CHECK(rd(vcpu, kMsrArchCapabilities) == (kRdclNo | kMdsNo));  // TSX_CTRL never shown
        CHECK(write_gps(vcpu, kMsrArchCapabilities, 0));
    }
    MsrConfig config = config_for(CpuVendor::intel);
    config.arch_capabilities = false;
    Vcpu absent(config);
    CHECK(read_gps(absent, kMsrArchCapabilities));
}

TEST_CASE("pc.msrs.microcode_revision") {
    Vcpu intel(config_for(CpuVendor::intel));
    CHECK(rd(intel, virt::kMsrBiosSignId) == u64{0x1234} << 32);
    CHECK(wr(intel, virt::kMsrBiosSignId, 0));  // "write 0, then CPUID": the revision stays
    CHECK(rd(intel, virt::kMsrBiosSignId) == u64{0x1234} << 32);
    Vcpu amd(config_for(CpuVendor::amd));
    CHECK(rd(amd, virt::kMsrBiosSignId) == 0x1234);  // PATCH_LEVEL: the low half
    // By default 0, what the kernel answers a domain without a PC.
    MsrConfig plain;
    Vcpu bare(plain);
    CHECK(rd(bare, virt::kMsrBiosSignId) == 0);
}

TEST_CASE("pc.msrs.intel_model_specific") {
    Vcpu intel(config_for(CpuVendor::intel));
    for (u32 index : {kMsrPlatformId, kMsrPlatformInfo, kMsrCoreCapabilities}) {
        CHECK(rd(intel, index) == 0);
        CHECK(write_gps(intel, index, 0));
    }
    CHECK(rd(intel, kMsrMiscFeaturesEnables) == 0);
    CHECK(wr(intel, kMsrMiscFeaturesEnables, 0));
    CHECK(write_gps(intel, kMsrMiscFeaturesEnables, 1));  // no CPUID faulting
    CHECK(write_gps(intel, kMsrMiscFeaturesEnables, 2));  // no ring-3 MWAIT
    Vcpu amd(config_for(CpuVendor::amd));
    for (u32 index :
         {kMsrPlatformId, kMsrPlatformInfo, kMsrCoreCapabilities, kMsrMiscFeaturesEnables, kMsrMiscEnable}) {
        CHECK(read_gps(amd, index));
        CHECK(write_gps(amd, index, 0));
    }
}

TEST_CASE("pc.msrs.misc_enable") {
    Vcpu vcpu(config_for(CpuVendor::intel));
    CHECK(rd(vcpu, kMsrMiscEnable) == 0x1801);  // fast strings; no BTS, no PEBS
    CHECK(wr(vcpu, kMsrMiscEnable, 0x1800));
    CHECK(rd(vcpu, kMsrMiscEnable) == 0x1800);
    CHECK(wr(vcpu, kMsrMiscEnable, 0x1881));  // EMON: ignored
    CHECK(rd(vcpu, kMsrMiscEnable) == 0x1801);
    CHECK(write_gps(vcpu, kMsrMiscEnable, 0x0801));  // BTS_UNAVAILABLE is read-only
    CHECK(write_gps(vcpu, kMsrMiscEnable, 0x1001));
    for (u32 bit : {3u, 16u, 18u, 22u, 23u, 34u, 38u, 63u}) {
        INFO(bit);
        CHECK(write_gps(vcpu, kMsrMiscEnable, 0x1801 | (u64{1} << bit)));
    }
    CHECK(rd(vcpu, kMsrMiscEnable) == 0x1801);
}

TEST_CASE("pc.msrs.amd_model_specific") {
    Vcpu amd(config_for(CpuVendor::amd));
    CHECK(rd(amd, kMsrAmdSyscfg) == 0);
    CHECK(write_gps(amd, kMsrAmdSyscfg, 0));
    CHECK(wr(amd, kMsrAmdHwcr, kHwcrIgnored));
    CHECK(rd(amd, kMsrAmdHwcr) == kHwcrTscFreqSel);
    for (u32 bit : {0u, 1u, 9u, 17u, 25u, 30u, 63u}) CHECK(write_gps(amd, kMsrAmdHwcr, u64{1} << bit));
    CHECK(rd(amd, kMsrAmdHwcr) == kHwcrTscFreqSel);
    for (u32 index : {kMsrAmdNbCfg, kMsrAmdDcCfg, kMsrAmdTwCfg, kMsrAmdBuCfg2, kMsrAmdExCfg}) {
        CHECK(rd(amd, index) == 0);
        CHECK(wr(amd, index, 0x0123'4567'89AB'CDEF));  // errata workarounds: ignored
        CHECK(rd(amd, index) == 0);
    }
    CHECK(read_gps(amd, kMsrAmdPatchLoader));
    CHECK(wr(amd, kMsrAmdPatchLoader, 0x1000));
    CHECK(rd(amd, kMsrAmdOsvwIdLength) == 0);
    CHECK(rd(amd, kMsrAmdOsvwStatus) == 0);
    CHECK(wr(amd, kMsrAmdOsvwIdLength, 4));
    CHECK(wr(amd, kMsrAmdOsvwStatus, 0x5));
    CHECK(rd(amd, kMsrAmdOsvwIdLength) == 4);
    CHECK(rd(amd, kMsrAmdOsvwStatus) == 5);
    Vcpu intel(config_for(CpuVendor::intel));
    for (u32 index : {kMsrAmdSyscfg, kMsrAmdHwcr, kMsrAmdNbCfg, kMsrAmdOsvwIdLength, kMsrAmdOsvwStatus, kMsrAmdDcCfg,
                      kMsrAmdDeCfg, kMsrAmdExCfg}) {
        CHECK(read_gps(intel, index));
        CHECK(write_gps(intel, index, 0));
    }
}

TEST_CASE("pc.msrs.amd_de_cfg_follows_the_host_lfence") {
    Vcpu serializing(config_for(CpuVendor::amd));
    CHECK(rd(serializing, kMsrAmdDeCfg) == kDeCfgLfenceSerializing);
    CHECK(wr(serializing, kMsrAmdDeCfg, kDeCfgLfenceSerializing));  // Linux sets it at boot
    CHECK(wr(serializing, kMsrAmdDeCfg, 0));
    CHECK(rd(serializing, kMsrAmdDeCfg) == kDeCfgLfenceSerializing);
    CHECK(write_gps(serializing, kMsrAmdDeCfg, 4));
    MsrConfig config = config_for(CpuVendor::amd);
    config.lfence_serializing = false;
    Vcpu speculating(config);
    CHECK(rd(speculating, kMsrAmdDeCfg) == 0);
    CHECK(write_gps(speculating, kMsrAmdDeCfg, kDeCfgLfenceSerializing));
    CHECK(wr(speculating, kMsrAmdDeCfg, 0));
}

TEST_CASE("pc.msrs.debugctl") {
    for (CpuVendor vendor : kVendors) {
        Vcpu vcpu(config_for(vendor));
        CHECK(rd(vcpu, kMsrDebugCtl) == 0);
        CHECK(wr(vcpu, kMsrDebugCtl, kDebugCtlLbr | kDebugCtlBtf));  // dropped, as KVM without LBR virtualization
        CHECK(rd(vcpu, kMsrDebugCtl) == 0);
        CHECK(write_gps(vcpu, kMsrDebugCtl, u64{1} << 2));  // bus-lock detection is not offered
        CHECK(write_gps(vcpu, kMsrDebugCtl, u64{1} << 6));
    }
}

TEST_CASE("pc.msrs.holes_inside_the_ranges_gp") {
    for (CpuVendor vendor : kVendors) {
        Vcpu vcpu(config_for(vendor));
        for (u32 index : {0x11u, 0x16u, 0x3Cu, 0x79u, 0x10Bu, 0x122u, 0x173u, 0x17Bu, 0x1A1u, 0x1DBu, 0x276u,
                          0xC0010011u, 0xC001001Au, 0xC0011024u, 0xC001102Bu}) {
            INFO(std::hex << index);
            CHECK(in_ranges(index));
            CHECK(read_gps(vcpu, index));
            CHECK(write_gps(vcpu, index, 0));
        }
    }
}

TEST_CASE("pc.msrs.unknown_vendor_has_only_the_common_msrs") {
    MsrConfig config = config_for(CpuVendor::unknown);
    Vcpu vcpu(config);
    CHECK(rd(vcpu, kMsrMtrrCap) == 0x508);
    CHECK(read_gps(vcpu, kMsrMiscEnable));
    CHECK(read_gps(vcpu, kMsrAmdHwcr));
}

TEST_CASE("pc.msrs.reset_restores_power_on_values") {
    Vcpu vcpu(config_for(CpuVendor::amd));
    vcpu.clock.tsc = 50;
    CHECK(wr(vcpu, kMsrTsc, 10));
    CHECK(wr(vcpu, kMsrMtrrDefType, 0xC06));
    CHECK(wr(vcpu, kMsrMtrrPhysBase0, 0x1006));
    CHECK(wr(vcpu, kMsrMtrrFix4kC0000, 0x0505050505050505));
    CHECK(wr(vcpu, kMsrMc0Ctl, 0));
    CHECK(wr(vcpu, kMsrMcgStatus, 4));
    CHECK(wr(vcpu, kMsrSpecCtrl, kSpecCtrlIbrs));
    CHECK(wr(vcpu, kMsrAmdHwcr, kHwcrMcStatusWrEn));
    CHECK(wr(vcpu, kMsrMc0Ctl + 1, 5));
    CHECK(wr(vcpu, kMsrAmdOsvwStatus, 1));
    vcpu.msrs.reset();
    CHECK(rd(vcpu, kMsrTsc) == 10);  // the domain's, not the vCPU's to reset
    CHECK(vcpu.tsc.adjust() == static_cast<u64>(-40));
    CHECK(rd(vcpu, kMsrMtrrDefType) == 0);
    CHECK(rd(vcpu, kMsrMtrrPhysBase0) == 0);
    CHECK(rd(vcpu, kMsrMtrrFix4kC0000) == 0);
    CHECK(rd(vcpu, kMsrMc0Ctl) == kAllOnes);
    CHECK(rd(vcpu, kMsrMc0Ctl + 1) == 0);
    CHECK(rd(vcpu, kMsrMcgStatus) == 0);
    CHECK(rd(vcpu, kMsrSpecCtrl) == 0);
    CHECK(rd(vcpu, kMsrAmdHwcr) == kHwcrTscFreqSel);
    CHECK(rd(vcpu, kMsrAmdOsvwStatus) == 0);
}

// Linux's check_tsc_freq_sel (amd.c) on family 10h and later with a constant TSC: bit 24 clear
// is "[Firmware Bug]: TSC doesn't count with P0 frequency!". It reads 1 from reset, and no write
// clears it (it is read-only on the hardware).
TEST_CASE("pc.msrs.amd_hwcr_tsc_counts_at_p0") {
    Vcpu amd(config_for(CpuVendor::amd));
    CHECK(rd(amd, kMsrAmdHwcr) == kHwcrTscFreqSel);
    CHECK(wr(amd, kMsrAmdHwcr, 0));
    CHECK(rd(amd, kMsrAmdHwcr) == kHwcrTscFreqSel);
    CHECK(wr(amd, kMsrAmdHwcr, kHwcrMcStatusWrEn));
    CHECK(rd(amd, kMsrAmdHwcr) == (kHwcrTscFreqSel | kHwcrMcStatusWrEn));
    CHECK(wr(amd, kMsrAmdHwcr, kHwcrTscFreqSel));
    CHECK(rd(amd, kMsrAmdHwcr) == kHwcrTscFreqSel);
    // OpenBSD's tsc_freq_msr() then reads PStateDef[0]: not enabled, so it calibrates.
    for (u32 index = kMsrAmdPstateDef0; index < kMsrAmdPstateDef0 + kAmdPstateDefs; ++index) {
        CHECK(in_ranges(index));
        CHECK(rd(amd, index) == 0);
        CHECK(wr(amd, index, u64{1} << 63));
        CHECK(rd(amd, index) == 0);
    }
    CHECK_FALSE(in_ranges(kMsrAmdPstateDef0 + kAmdPstateDefs));
    Vcpu intel(config_for(CpuVendor::intel));
    CHECK(read_gps(intel, kMsrAmdPstateDef0));
}

// What a PC vCPU is really shown: cpuid_policy hides the speculation controls (the file would
// only store IA32_SPEC_CTRL), so neither it nor IA32_PRED_CMD exists, on either vendor, whatever
// the host has.
TEST_CASE("pc.msrs.pc_cpuid_offers_no_speculation_controls") {
    using namespace virt;
    const CpuidValues host{0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF};
    for (CpuVendor vendor : kVendors) {
        CpuidTopology pc{vendor, 0, 2, 2000000, 1000000};
        auto leaf = [&](u32 number, u32 subleaf) { return guest_cpuid(number, subleaf, host, nullptr, &pc); };
        MsrConfig config = msr_config_from_cpuid(vendor, leaf(7, 0), leaf(7, 2), leaf(0x80000008, 0));
        CHECK_FALSE(config.spec_ctrl);
        CHECK(config.spec_ctrl_bits == 0);
        CHECK(config.tsc_adjust);
        Vcpu vcpu(config);
        CHECK(read_gps(vcpu, kMsrSpecCtrl));
        CHECK(write_gps(vcpu, kMsrSpecCtrl, 0));
        CHECK(write_gps(vcpu, kMsrPredCmd, kPredCmdIbpb));
        CHECK(write_gps(vcpu, kMsrPredCmd, 0));
    }
    MsrConfig enhanced;
    enhanced.arch_capabilities = true;
    enhanced.arch_capabilities_value = u64{1} << 1;  // IBRS_ALL: a promise about SPEC_CTRL
    Vcpu vcpu(enhanced);
    CHECK(rd(vcpu, kMsrArchCapabilities) == 0);
}

TEST_CASE("pc.msrs.config_from_cpuid") {
    using namespace virt;
    CpuidValues none{0, 0, 0, 0};
    MsrConfig bare = msr_config_from_cpuid(CpuVendor::intel, none, none, none);
    CHECK_FALSE(bare.tsc_adjust);
    CHECK_FALSE(bare.spec_ctrl);
    CHECK(bare.spec_ctrl_bits == 0);
    CHECK_FALSE(bare.arch_capabilities);
    CHECK(bare.physical_address_bits == MsrConfig{}.physical_address_bits);
    CHECK(bare.vendor == CpuVendor::intel);

    CpuidValues leaf7{0, kCpuid7EbxTscAdjust, 0,
                      kCpuid7EdxSpecCtrl | kCpuid7EdxStibp | kCpuid7EdxSsbd | kCpuid7EdxArchCapabilities};
    CpuidValues leaf7_2{0, 0, 0, kCpuid7Sub2EdxBhiCtrl | kCpuid7Sub2EdxIpredCtrl};
    CpuidValues ext8{46, 0, 0, 0};
    MsrConfig intel = msr_config_from_cpuid(CpuVendor::intel, leaf7, leaf7_2, ext8);
    CHECK(intel.tsc_adjust);
    CHECK(intel.spec_ctrl);
    CHECK(intel.spec_ctrl_bits ==
          (kSpecCtrlIbrs | kSpecCtrlStibp | kSpecCtrlSsbd | kSpecCtrlBhiDisS | kSpecCtrlIpredDis));
    CHECK(intel.arch_capabilities);
    CHECK(intel.physical_address_bits == 46);
    Vcpu vcpu(intel);
    CHECK(wr(vcpu, kMsrSpecCtrl, kSpecCtrlBhiDisS | kSpecCtrlIbrs));
    CHECK(write_gps(vcpu, kMsrSpecCtrl, kSpecCtrlPsfd));

    CpuidValues amd_ext8{48, kCpuidExt8EbxIbpb | kCpuidExt8EbxIbrs | kCpuidExt8EbxSsbd | kCpuidExt8EbxPsfd, 0, 0};
    MsrConfig amd = msr_config_from_cpuid(CpuVendor::amd, none, none, amd_ext8);
    CHECK(amd.vendor == CpuVendor::amd);
    CHECK(amd.spec_ctrl);
    CHECK(amd.spec_ctrl_bits == (kSpecCtrlIbrs | kSpecCtrlSsbd | kSpecCtrlPsfd));
    CHECK(amd.physical_address_bits == 48);
    CHECK_FALSE(amd.arch_capabilities);
    // IBPB alone: PRED_CMD exists, SPEC_CTRL takes no bit but 0.
    MsrConfig ibpb = msr_config_from_cpuid(CpuVendor::amd, none, none, {40, kCpuidExt8EbxIbpb, 0, 0});
    CHECK(ibpb.spec_ctrl);
    CHECK(ibpb.spec_ctrl_bits == 0);
}

// Hostile: every index of every range, read and written with random values, on both vendors and
// with every optional MSR on and off: each access completes or raises #GP(0), never anything else,
// and a refused write leaves the register as it was. Then indices far outside the ranges.
TEST_CASE("pc.msrs.hostile_accesses_complete_or_gp") {
    std::mt19937_64 random(0x5EED);
    for (CpuVendor vendor : {CpuVendor::intel, CpuVendor::amd, CpuVendor::unknown})
        for (bool optional : {false, true}) {
            MsrConfig config = config_for(vendor);
            config.spec_ctrl = config.arch_capabilities = config.tsc_adjust = config.lfence_serializing = optional;
            config.machine_check_banks = optional ? 40 : 3;
            Vcpu vcpu(config);
            vcpu.clock.tsc = random();
            for (const MsrRange& range : MsrFile::kRanges)
                for (u32 index = range.first; index - range.first < range.count; ++index) {
                    INFO(std::hex << index);
                    for (int round = 0; round < 12; ++round) {
                        u64 value = round == 0 ? 0 : round == 1 ? kAllOnes : random() >> (random() % 64);
                        u64 before = 0;
                        DeviceOutcome read = vcpu.read(index, before);
                        REQUIRE((completes(read) || is_gp(read)));
                        DeviceOutcome write = vcpu.write(index, value);
                        REQUIRE((completes(write) || is_gp(write)));
                        u64 after = 0;
                        if (is_gp(write) && completes(read) && index != kMsrTsc) {
                            REQUIRE(completes(vcpu.read(index, after)));
                            CHECK(after == before);
                        }
                    }
                }
            for (int i = 0; i < 20000; ++i) {
                u32 index = static_cast<u32>(random());
                u64 value = 0;
                DeviceOutcome read = vcpu.read(index, value);
                REQUIRE((completes(read) || is_gp(read)));
                DeviceOutcome write = vcpu.write(index, random());
                REQUIRE((completes(write) || is_gp(write)));
            }
        }
}
