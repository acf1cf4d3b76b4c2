// Nested VMX (components/nested/vmx): the capability MSRs, the vmcs12 layout, the memory
// operands and every VMX instruction's checks, each failure case alone, driven through the
// kernel's exit handler with a fake kernel Host (1 MiB of L1 RAM) and a fake VMX backend.
#include <catch2/catch.hpp>
#include <cstring>
#include <map>
#include <set>
#include <string>

#include "../../../components/nested/vmx/vmcs12.hpp"
#include "../../../components/nested/vmx/vmx_capabilities.hpp"
#include "../../../components/nested/vmx/vmx_entry_checks.hpp"
#include "../../../components/nested/vmx/vmx_msr_lists.hpp"
#include "../../../components/nested/vmx/vmx_operand.hpp"
#include "fake_nested_host.hpp"
#include "fake_vmx_hardware.hpp"
#include "nested_fixture.hpp"
#include "nestor/arch/vmx_vmcs.hpp"
#include "nestor/x86/vmx/nested_hardware.hpp"

using namespace nested_test;
namespace nv = nestor::nested::vmx;
namespace iv = nestor::intel_vmx;

namespace {

constexpr u64 kVmxon = 0x10000;
constexpr u64 kVmcsA = 0x11000;
constexpr u64 kVmcsB = 0x12000;
constexpr u64 kOperand = 0x20000;  // where L1's memory operands live

struct VmxL1 : Guest {
    FakeNestedHost host;
    FakeVmxHardware hw;
    nested::NestedDomain domain;
    nested::NestedVcpu vcpu;

    VmxL1() {
        REQUIRE(nested_domain_initialise(domain, intel_cpu(), FakeNestedHost::kL1Bytes).ok());
        vcpu.host = &host;
        vcpu.hardware = static_cast<x86::vmx::NestedHardware*>(&hw);
        REQUIRE(nested_vcpu_initialise(vcpu, domain).ok());
        env.nested = &vcpu;
        state.mode = CpuMode::long64;
        state.efer = x86_regs::kEferLme | x86_regs::kEferLma;
        state.cr0 = kCr0;
        state.rflags = 2;
        put_revision(kVmxon, nv::kVmcs12Revision);
        put_revision(kVmcsA, nv::kVmcs12Revision);
        put_revision(kVmcsB, nv::kVmcs12Revision);
    }
    ~VmxL1() {
        nested_vcpu_destroy(vcpu);
        nested_domain_teardown(domain);
    }
    void put_revision(u64 gpa, u32 revision) { REQUIRE(host.write(gpa, &revision, 4)); }

    // An instruction with a memory operand holding `pointer` (VMXON, VMCLEAR, VMPTRLD).
    ExitOutcome with_pointer(u32 reason, u64 pointer) {
        host.put(kOperand, pointer);
        state.rax() = kOperand;
        hw.exit = {0, info_memory()};
        return run(instruction(reason));
    }
    ExitOutcome vmxon(u64 pointer = kVmxon) { return with_pointer(iv::exit_reason::vmxon, pointer); }
    ExitOutcome vmptrld(u64 pointer) { return with_pointer(iv::exit_reason::vmptrld, pointer); }
    ExitOutcome vmclear(u64 pointer) { return with_pointer(iv::exit_reason::vmclear, pointer); }
    ExitOutcome vmwrite(u64 field, u64 value) {
        state.rcx() = field;
        state.rdx() = value;
        hw.exit = {0, info_register(2, 1)};
        return run(instruction(iv::exit_reason::vmwrite));
    }
    u64 vmread(u64 field) {
        state.rcx() = field;
        state.rdx() = 0xDEAD;
        hw.exit = {0, info_register(2, 1)};
        run(instruction(iv::exit_reason::vmread));
        return state.rdx();
    }
    ExitOutcome simple(u32 reason) {
        hw.exit = {0, info_memory()};
        state.rax() = kOperand;
        return run(instruction(reason));
    }
    ExitOutcome invalidate(u32 reason, u64 type, u64 first, u64 second = 0) {
        host.put(kOperand, first);
        host.put(kOperand + 8, second);
        state.rax() = kOperand;
        state.rcx() = type;
        hw.exit = {0, info_memory()};
        return run(instruction(reason));
    }
    bool succeeded() const { return (state.rflags & 0x8D5) == 0; }
    bool failed_invalid() const { return (state.rflags & 0x8D5) == 1; }
    bool failed_valid() const { return (state.rflags & 0x8D5) == 0x40; }
    u64 error() { return vmread(iv::field::instruction_error); }
    u64 rdmsr(u32 index) {
        run(msr_read(index));
        return (state.rdx() << 32) | (state.rax() & 0xFFFFFFFF);
    }
    nv::Vmcs12 region(u64 gpa) {
        nv::Vmcs12 v{};
        REQUIRE(host.read(gpa, &v, sizeof(v)));
        return v;
    }
};

bool is_gp(const ExitOutcome& o) { return o.inject && o.vector == 13 && o.has_error_code && o.error_code == 0; }
bool is_ud(const ExitOutcome& o) { return o.inject && o.vector == 6; }
bool completed(const ExitOutcome& o) { return !o.inject && !o.stop; }

constexpr u32 kAllInstructionsButVmxon[] = {19, 20, 21, 22, 23, 24, 25, 26, 50, 53};

// A vmcs12 that passes every VM-entry check on controls and host state (64-bit L1 and host).
nv::Vmcs12 good_vmcs12() {
    using namespace iv;
    const nv::Capabilities& caps = nv::capabilities();
    nv::Vmcs12 v{};
    nv::write_field(v, field::pin_based_controls, caps.true_pin.must_be_one);
    nv::write_field(v, field::primary_controls, caps.true_primary.must_be_one | primary::activate_secondary);
    nv::write_field(v, field::secondary_controls, secondary::enable_ept | secondary::enable_vpid);
    nv::write_field(v, field::vpid, 1);
    nv::write_field(v, field::ept_pointer, 0x5000 | (3 << 3) | 6);
    nv::write_field(v, field::exit_controls, caps.true_exit.must_be_one | exit_ctl::host_address_space_size);
    nv::write_field(v, field::entry_controls, caps.true_entry.must_be_one | entry_ctl::ia32e_mode_guest);
    nv::write_field(v, field::host_cr0, kCr0);
    nv::write_field(v, field::host_cr4, kCr4);
    nv::write_field(v, field::host_cr3, 0x1000);
    nv::write_field(v, field::host_cs_selector, 0x8);
    nv::write_field(v, field::host_ss_selector, 0x10);
    nv::write_field(v, field::host_tr_selector, 0x18);
    nv::write_field(v, field::host_rip, 0x1000);
    return v;
}

}  // namespace

TEST_CASE("nested_vmx.capability_msrs_come_from_the_table") {
    VmxL1 l1;
    const nv::Capabilities& caps = nv::capabilities();
    u64 basic = l1.rdmsr(0x480);
    CHECK((basic & 0x7FFFFFFF) == nv::kVmcs12Revision);
    CHECK(((basic >> 32) & 0x1FFF) == 4096);
    CHECK((basic & (u64{1} << 55)) != 0);  // TRUE_ controls
    CHECK(((basic >> 50) & 0xF) == 6);     // write-back
    CHECK(l1.rdmsr(0x481) == caps.pin.msr());
    CHECK(l1.rdmsr(0x482) == caps.primary.msr());
    CHECK(l1.rdmsr(0x48E) == caps.true_primary.msr());
    CHECK((caps.true_primary.must_be_one & iv::primary::cr3_load_exiting) == 0);
    CHECK((caps.primary.must_be_one & iv::primary::cr3_load_exiting) != 0);
    CHECK(l1.rdmsr(0x483) == caps.exit.msr());
    CHECK(l1.rdmsr(0x48F) == caps.true_exit.msr());
    CHECK(l1.rdmsr(0x484) == caps.entry.msr());
    CHECK(l1.rdmsr(0x490) == caps.true_entry.msr());
    CHECK(l1.rdmsr(0x48D) == caps.true_pin.msr());
    CHECK(l1.rdmsr(0x48B) == caps.secondary.msr());
    CHECK(l1.rdmsr(0x48C) == caps.ept_vpid_cap);
    CHECK(l1.rdmsr(0x485) == caps.misc);
    CHECK(l1.rdmsr(0x486) == 0x80000021);
    CHECK(l1.rdmsr(0x487) == 0xFFFFFFFF);
    CHECK(l1.rdmsr(0x488) == x86_regs::kCr4Vmxe);
    CHECK(l1.rdmsr(0x489) == caps.cr4_fixed1);
    // A CR4 feature L0 does not offer (it owns the bit in every guest) is not L1's to set either.
    REQUIRE((caps.cr4_fixed1 & x86_regs::kCr4Pke) != 0);
    l1.hw.controls.cr4_mask |= x86_regs::kCr4Pke;
    CHECK(l1.rdmsr(0x489) == (caps.cr4_fixed1 & ~x86_regs::kCr4Pke));
    CHECK(l1.rdmsr(0x48A) == u64{nv::highest_field_index()} << 1);
    CHECK(l1.rdmsr(0x3A) == 5);             // locked, VMX outside SMX
    CHECK(is_gp(l1.run(msr_read(0x491))));  // VM functions are not offered
    CHECK(is_gp(l1.run(msr_write(0x480, 0))));
    CHECK(is_gp(l1.run(msr_write(0x3A, 5))));
    // Every must-be-one bit may be one, and the plain MSRs fix the default1 bits the TRUE_ free.
    for (const nv::ControlCapability* c : {&caps.pin, &caps.true_pin, &caps.primary, &caps.true_primary,
                                           &caps.secondary, &caps.exit, &caps.true_exit, &caps.entry, &caps.true_entry})
        CHECK((c->must_be_one & ~c->may_be_one) == 0);
    CHECK((caps.true_exit.must_be_one & ~caps.exit.must_be_one) == 0);
}

TEST_CASE("nested_vmx.vmcs12_field_table") {
    usize count = 0;
    const nv::FieldInfo* fields = nv::field_table(count);
    std::set<u32> encodings;
    std::set<u16> offsets;
    for (usize i = 0; i < count; ++i) {
        encodings.insert(fields[i].encoding);
        offsets.insert(fields[i].offset);
        CHECK(fields[i].offset + 8u <= sizeof(nv::Vmcs12));
        CHECK(fields[i].read_only == (((fields[i].encoding >> 10) & 3) == 1));
        CHECK((fields[i].encoding & 1) == 0);
    }
    CHECK(encodings.size() == count);
    CHECK(offsets.size() == count);
    CHECK(nv::highest_field_index() == 0x17);                                      // the preemption timer value, 0x482E
    CHECK(nv::find_field(iv::field::virtual_apic_page_address).field != nullptr);  // the TPR shadow's
    CHECK(nv::find_field(iv::field::tpr_threshold).field != nullptr);
    CHECK(nv::find_field(0x2014).field == nullptr);  // APIC-access address: not offered
    CHECK(nv::find_field(iv::field::guest_rip).field != nullptr);
    CHECK(nv::find_field(0x2804).field == nullptr);                    // guest PAT: not offered
    CHECK(nv::find_field(iv::field::guest_rip | 1).field == nullptr);  // high access of a natural field
    CHECK(nv::find_field(iv::field::ept_pointer | 1).high);            // of a 64-bit one
    CHECK(nv::find_field(u64{1} << 32 | iv::field::guest_rip).field == nullptr);
}

TEST_CASE("nested_vmx.vmxon_succeeds_and_enters_vmx_operation") {
    VmxL1 l1;
    l1.state.rflags = 2 | 0x8D5;
    ExitOutcome o = l1.vmxon();
    CHECK(completed(o));
    CHECK(l1.state.rip == 0x1003);
    CHECK(l1.succeeded());
    CHECK(completed(l1.simple(iv::exit_reason::vmptrst)));
    u64 stored = 0;
    REQUIRE(l1.host.read(kOperand, &stored, 8));
    CHECK(stored == ~u64{0});  // no current VMCS
}

TEST_CASE("nested_vmx.vmxon_ud_cases") {
    SECTION("CR4.VMXE clear") {
        VmxL1 l1;
        l1.hw.l1_cr4 = x86_regs::kCr4Pae;
        CHECK(is_ud(l1.vmxon()));
    }
    SECTION("compatibility mode") {
        VmxL1 l1;
        l1.state.mode = CpuMode::protected32;
        CHECK(is_ud(l1.vmxon()));
    }
    SECTION("virtual-8086 mode") {
        VmxL1 l1;
        l1.state.rflags |= x86_regs::kRflagsVm;
        CHECK(is_ud(l1.vmxon()));
    }
    SECTION("real mode") {
        VmxL1 l1;
        l1.state.mode = CpuMode::real16;
        l1.state.cr0 = 0x10;
        CHECK(is_ud(l1.vmxon()));
    }
}

TEST_CASE("nested_vmx.vmxon_gp_cases") {
    SECTION("CPL 3") {
        VmxL1 l1;
        l1.hw.segments[nv::kSegmentSs].access_rights = kFlatData | (3u << 5);
        CHECK(is_gp(l1.vmxon()));
    }
    SECTION("CR0.NE clear (FIXED0)") {
        VmxL1 l1;
        l1.state.cr0 = kCr0 & ~x86_regs::kCr0Ne;
        CHECK(is_gp(l1.vmxon()));
    }
    SECTION("CR4.SMXE set (not in FIXED1)") {
        VmxL1 l1;
        l1.hw.l1_cr4 = kCr4 | x86_regs::kCr4Smxe;
        CHECK(is_gp(l1.vmxon()));
    }
    SECTION("non-canonical operand") {
        VmxL1 l1;
        l1.state.rax() = u64{1} << 47;
        l1.hw.exit = {0, info_memory()};
        CHECK(is_gp(l1.run(instruction(iv::exit_reason::vmxon))));
    }
}

TEST_CASE("nested_vmx.vmxon_operand_through_ss_is_ss_fault") {
    VmxL1 l1;
    l1.state.rax() = u64{1} << 47;
    l1.hw.exit = {0, info_memory(nv::kSegmentSs)};
    ExitOutcome o = l1.run(instruction(iv::exit_reason::vmxon));
    CHECK_FALSE(o.inject);
    CHECK_FALSE(o.stop);
    CHECK(l1.hw.injected_vector == 12);
    CHECK(l1.state.rip == 0x1000);  // the instruction faults
}

TEST_CASE("nested_vmx.vmxon_vmfail_invalid_cases") {
    SECTION("unaligned") {
        VmxL1 l1;
        CHECK(completed(l1.vmxon(kVmxon + 8)));
        CHECK(l1.failed_invalid());
    }
    SECTION("beyond the physical-address width") {
        VmxL1 l1;
        CHECK(completed(l1.vmxon(u64{1} << 39)));
        CHECK(l1.failed_invalid());
    }
    SECTION("wrong revision") {
        VmxL1 l1;
        l1.put_revision(kVmxon, nv::kVmcs12Revision + 1);
        CHECK(completed(l1.vmxon()));
        CHECK(l1.failed_invalid());
    }
    SECTION("revision with bit 31 (shadow)") {
        VmxL1 l1;
        l1.put_revision(kVmxon, nv::kVmcs12Revision | 0x80000000);
        CHECK(completed(l1.vmxon()));
        CHECK(l1.failed_invalid());
    }
    SECTION("not L1's memory") {
        VmxL1 l1;
        CHECK(completed(l1.vmxon(FakeNestedHost::kL1Bytes)));
        CHECK(l1.failed_invalid());
    }
    // And still outside VMX operation after each.
    VmxL1 l1;
    l1.vmxon(kVmxon + 8);
    CHECK(is_ud(l1.vmptrld(kVmcsA)));
}

TEST_CASE("nested_vmx.vmxon_in_vmx_operation_is_error_15") {
    VmxL1 l1;
    REQUIRE(completed(l1.vmxon()));
    CHECK(completed(l1.vmxon()));
    CHECK(l1.failed_invalid());  // no current VMCS
    REQUIRE(completed(l1.vmptrld(kVmcsA)));
    CHECK(completed(l1.vmxon()));
    CHECK(l1.failed_valid());
    CHECK(l1.error() == 15);
    l1.hw.segments[nv::kSegmentSs].access_rights = kFlatData | (3u << 5);
    CHECK(is_gp(l1.vmxon()));
}

TEST_CASE("nested_vmx.operand_outside_l1_ram_stops_the_domain") {
    VmxL1 l1;
    l1.hw.paging_maps = false;  // a table on the way is not L1's RAM
    ExitOutcome o = l1.vmxon();
    CHECK(o.stop);
    REQUIRE(o.detail != nullptr);
    CHECK(std::string(o.detail).find("is not L1's RAM") != std::string::npos);
}

TEST_CASE("nested_vmx.operand_l1s_paging_refuses_is_a_page_fault_at_its_address") {
    VmxL1 l1;
    l1.hw.unmapped_from = kOperand;
    ExitOutcome o = l1.vmxon();
    CHECK_FALSE(o.inject);
    CHECK_FALSE(o.stop);
    CHECK(l1.hw.injected_vector == 14);
    CHECK(l1.hw.injected_cr2 == kOperand);
    CHECK(l1.hw.injected_error == 0);                   // a read, not present
    CHECK(l1.state.rip == 0x1000);                      // the instruction faults
    CHECK(is_ud(l1.simple(iv::exit_reason::vmptrst)));  // VMXON did not happen
}

TEST_CASE("nested_vmx.operand_across_a_page_that_faults_writes_nothing") {
    VmxL1 l1;
    REQUIRE(completed(l1.vmxon()));
    // VMPTRST's 8 bytes: 4 on a mapped page, 4 on the next, which L1's paging refuses.
    constexpr u64 kAcross = kOperand + 0x1000 - 4;
    l1.host.put(kAcross, 0x1111111111111111);
    l1.hw.unmapped_from = kOperand + 0x1000;
    l1.hw.exit = {0, info_memory()};
    l1.state.rax() = kAcross;
    ExitOutcome o = l1.run(instruction(iv::exit_reason::vmptrst));
    CHECK_FALSE(o.stop);
    CHECK(l1.hw.injected_vector == 14);
    CHECK(l1.hw.injected_cr2 == kOperand + 0x1000);
    CHECK(l1.hw.injected_error == x86::kPageFaultWrite);
    u64 kept = 0;
    REQUIRE(l1.host.read(kAcross, &kept, 8));
    CHECK(kept == 0x1111111111111111);  // the first page untouched too
}

TEST_CASE("nested_vmx.instructions_ud_outside_vmx_operation") {
    for (u32 reason : kAllInstructionsButVmxon) {
        VmxL1 l1;
        INFO("exit reason " << reason);
        CHECK(is_ud(l1.simple(reason)));
    }
}

TEST_CASE("nested_vmx.instructions_gp_at_cpl3_in_vmx_operation") {
    for (u32 reason : kAllInstructionsButVmxon) {
        VmxL1 l1;
        REQUIRE(completed(l1.vmxon()));
        l1.hw.segments[nv::kSegmentSs].access_rights = kFlatData | (3u << 5);
        INFO("exit reason " << reason);
        CHECK(is_gp(l1.simple(reason)));
    }
}

TEST_CASE("nested_vmx.instructions_ud_with_cr4_vmxe_clear_in_vmx_operation") {
    VmxL1 l1;
    REQUIRE(completed(l1.vmxon()));
    l1.hw.l1_cr4 = x86_regs::kCr4Pae;
    CHECK(is_ud(l1.vmptrld(kVmcsA)));
    CHECK(is_ud(l1.simple(iv::exit_reason::vmxoff)));
}

TEST_CASE("nested_vmx.vmclear_errors") {
    VmxL1 l1;
    REQUIRE(completed(l1.vmxon()));
    CHECK(completed(l1.vmclear(kVmcsA + 0x10)));
    CHECK(l1.failed_invalid());  // error 2 without a current VMCS
    REQUIRE(completed(l1.vmptrld(kVmcsB)));
    CHECK(completed(l1.vmclear(kVmcsA + 0x10)));
    CHECK(l1.failed_valid());
    CHECK(l1.error() == 2);
    CHECK(completed(l1.vmclear(u64{1} << 40)));
    CHECK(l1.error() == 2);
    CHECK(completed(l1.vmclear(kVmxon)));
    CHECK(l1.failed_valid());
    CHECK(l1.error() == 3);
}

TEST_CASE("nested_vmx.vmptrld_errors") {
    VmxL1 l1;
    REQUIRE(completed(l1.vmxon()));
    REQUIRE(completed(l1.vmptrld(kVmcsB)));
    CHECK(completed(l1.vmptrld(kVmcsA + 8)));
    CHECK(l1.failed_valid());
    CHECK(l1.error() == 9);
    CHECK(completed(l1.vmptrld(u64{1} << 39)));
    CHECK(l1.error() == 9);
    CHECK(completed(l1.vmptrld(kVmxon)));
    CHECK(l1.error() == 10);
    l1.put_revision(kVmcsA, 0x1234);
    CHECK(completed(l1.vmptrld(kVmcsA)));
    CHECK(l1.error() == 11);
    l1.put_revision(kVmcsA, nv::kVmcs12Revision | 0x80000000);  // a shadow VMCS: not offered
    CHECK(completed(l1.vmptrld(kVmcsA)));
    CHECK(l1.error() == 11);
    CHECK(completed(l1.vmptrld(FakeNestedHost::kL1Bytes + 0x1000)));  // reads as all ones
    CHECK(l1.error() == 11);
    // The current VMCS is still B.
    CHECK(completed(l1.simple(iv::exit_reason::vmptrst)));
    u64 stored = 0;
    REQUIRE(l1.host.read(kOperand, &stored, 8));
    CHECK(stored == kVmcsB);
}

TEST_CASE("nested_vmx.vmptrld_vmwrite_vmread_vmptrst_round_trip") {
    VmxL1 l1;
    REQUIRE(completed(l1.vmxon()));
    REQUIRE(completed(l1.vmptrld(kVmcsA)));
    CHECK(l1.succeeded());
    CHECK(completed(l1.vmwrite(iv::field::guest_rip, 0x123456789A)));
    CHECK(l1.succeeded());
    CHECK(l1.vmread(iv::field::guest_rip) == 0x123456789A);
    CHECK(l1.succeeded());
    l1.vmwrite(iv::field::guest_cs_selector, 0x12345);  // 16-bit: cut to its width
    CHECK(l1.vmread(iv::field::guest_cs_selector) == 0x2345);
    l1.vmwrite(iv::field::ept_pointer, 0x1111222233334444);
    l1.vmwrite(iv::field::ept_pointer | 1, 0xAAAA);  // the high half alone
    CHECK(l1.vmread(iv::field::ept_pointer) == 0x0000AAAA33334444);
    CHECK(l1.vmread(iv::field::ept_pointer | 1) == 0xAAAA);
    CHECK(completed(l1.simple(iv::exit_reason::vmptrst)));
    u64 stored = 0;
    REQUIRE(l1.host.read(kOperand, &stored, 8));
    CHECK(stored == kVmcsA);
}

TEST_CASE("nested_vmx.vmread_vmwrite_memory_operands") {
    VmxL1 l1;
    REQUIRE(completed(l1.vmxon()));
    REQUIRE(completed(l1.vmptrld(kVmcsA)));
    l1.host.put(kOperand + 0x40, 0xFEDCBA9876);
    l1.state.rcx() = iv::field::guest_rsp;
    l1.state.rax() = kOperand;
    l1.hw.exit = {0x40, info_memory()};  // displacement 0x40
    CHECK(completed(l1.run(instruction(iv::exit_reason::vmwrite))));
    CHECK(l1.vmread(iv::field::guest_rsp) == 0xFEDCBA9876);
    l1.state.rcx() = iv::field::guest_rsp;
    l1.hw.exit = {0x80, info_memory()};
    l1.state.rax() = kOperand;
    CHECK(completed(l1.run(instruction(iv::exit_reason::vmread))));
    u64 stored = 0;
    REQUIRE(l1.host.read(kOperand + 0x80, &stored, 8));
    CHECK(stored == 0xFEDCBA9876);
}

TEST_CASE("nested_vmx.vmread_vmwrite_without_current_vmcs_fail_invalid") {
    VmxL1 l1;
    REQUIRE(completed(l1.vmxon()));
    CHECK(completed(l1.vmwrite(iv::field::guest_rip, 1)));
    CHECK(l1.failed_invalid());
    l1.vmread(iv::field::guest_rip);
    CHECK(l1.failed_invalid());
    CHECK(l1.state.rdx() == 0xDEAD);  // nothing written
}

TEST_CASE("nested_vmx.unsupported_fields_are_error_12") {
    VmxL1 l1;
    REQUIRE(completed(l1.vmxon()));
    REQUIRE(completed(l1.vmptrld(kVmcsA)));
    for (u64 encoding :
         {u64{0x2804}, u64{0x0002}, u64{iv::field::guest_rip | 1}, u64{0x1} << 32 | 0x681E, u64{0xFFFFFFFF}}) {
        INFO("encoding " << encoding);
        CHECK(completed(l1.vmwrite(encoding, 1)));
        CHECK(l1.failed_valid());
        CHECK(l1.error() == 12);
        CHECK(l1.vmread(encoding) == 0xDEAD);
    }
}

TEST_CASE("nested_vmx.vmwrite_to_read_only_fields_is_error_13") {
    VmxL1 l1;
    REQUIRE(completed(l1.vmxon()));
    REQUIRE(completed(l1.vmptrld(kVmcsA)));
    for (u32 encoding : {iv::field::exit_reason, iv::field::exit_qualification, iv::field::guest_physical_address,
                         iv::field::instruction_error, iv::field::guest_linear_address}) {
        CHECK(completed(l1.vmwrite(encoding, 7)));
        CHECK(l1.failed_valid());
        CHECK(l1.error() == 13);
        if (encoding != iv::field::instruction_error) CHECK(l1.vmread(encoding) == 0);
    }
}

TEST_CASE("nested_vmx.vmcs12_cache_and_vmclear_write_back") {
    VmxL1 l1;
    REQUIRE(completed(l1.vmxon()));
    REQUIRE(completed(l1.vmptrld(kVmcsA)));
    l1.vmwrite(iv::field::guest_rip, 0x4242);
    // L1 writing its region while it is current changes nothing the component uses.
    std::vector<u8> garbage(sizeof(nv::Vmcs12), 0x77);
    REQUIRE(l1.host.write(kVmcsA + 16, garbage.data(), garbage.size() - 16));
    CHECK(l1.vmread(iv::field::guest_rip) == 0x4242);
    CHECK(completed(l1.vmclear(kVmcsA)));
    CHECK(l1.succeeded());
    nv::Vmcs12 region = l1.region(kVmcsA);
    CHECK(region.revision == nv::kVmcs12Revision);
    CHECK(region.launch_state == nv::kLaunchStateClear);
    CHECK(nv::read_field(region, iv::field::guest_rip) == 0x4242);
    l1.vmwrite(iv::field::guest_rip, 1);
    CHECK(l1.failed_invalid());  // VMCLEAR of the current VMCS leaves none
    // A VMPTRLD of another region writes the first one back.
    REQUIRE(completed(l1.vmptrld(kVmcsA)));
    l1.vmwrite(iv::field::guest_rsp, 0x99);
    REQUIRE(completed(l1.vmptrld(kVmcsB)));
    CHECK(nv::read_field(l1.region(kVmcsA), iv::field::guest_rsp) == 0x99);
    CHECK(l1.vmread(iv::field::guest_rsp) == 0);
}

// In VMX operation CR0.PE, NE, PG and CR4.VMXE are fixed to 1 (the fixed-0 MSRs L1 reads): the
// backend is told to #GP a MOV that clears one, from VMXON to VMXOFF or the vCPU's end; a VMXON
// that fails pins nothing.
TEST_CASE("nested_vmx.vmx_operation_pins_cr0_pe_ne_pg_and_cr4_vmxe") {
    const u64 kPinnedCr0 = x86_regs::kCr0Pe | x86_regs::kCr0Ne | x86_regs::kCr0Pg;
    VmxL1 l1;
    l1.state.cr0 = kCr0 & ~x86_regs::kCr0Ne;
    CHECK(is_gp(l1.vmxon()));
    CHECK(l1.hw.pinned_cr0 == 0);
    l1.state.cr0 = kCr0;
    REQUIRE(completed(l1.vmxon()));
    CHECK(l1.hw.pinned_cr0 == kPinnedCr0);
    CHECK(l1.hw.pinned_cr4 == x86_regs::kCr4Vmxe);
    REQUIRE(completed(l1.simple(iv::exit_reason::vmxoff)));
    CHECK(l1.hw.pinned_cr0 == 0);
    CHECK(l1.hw.pinned_cr4 == 0);
    REQUIRE(completed(l1.vmxon()));
    CHECK(l1.hw.pinned_cr0 == kPinnedCr0);
    nested_vcpu_destroy(l1.vcpu);
    CHECK(l1.hw.pinned_cr0 == 0);
}

TEST_CASE("nested_vmx.vmxoff_writes_back_and_leaves_vmx_operation") {
    VmxL1 l1;
    REQUIRE(completed(l1.vmxon()));
    REQUIRE(completed(l1.vmptrld(kVmcsA)));
    l1.vmwrite(iv::field::guest_rip, 0x5151);
    CHECK(completed(l1.simple(iv::exit_reason::vmxoff)));
    CHECK(l1.succeeded());
    CHECK(nv::read_field(l1.region(kVmcsA), iv::field::guest_rip) == 0x5151);
    CHECK(l1.host.live.empty());  // the cache went back to L0
    CHECK(is_ud(l1.simple(iv::exit_reason::vmptrst)));
    CHECK(completed(l1.vmxon()));  // and VMXON works again
    CHECK(l1.succeeded());
}

TEST_CASE("nested_vmx.vcpu_destroy_releases_the_cache") {
    VmxL1 l1;
    REQUIRE(completed(l1.vmxon()));
    REQUIRE(completed(l1.vmptrld(kVmcsA)));
    CHECK_FALSE(l1.host.live.empty());
    nested_vcpu_destroy(l1.vcpu);
    CHECK(l1.host.live.empty());
    REQUIRE(nested_vcpu_initialise(l1.vcpu, l1.domain).ok());
}

TEST_CASE("nested_vmx.vmlaunch_vmresume_instruction_checks") {
    SECTION("no current VMCS") {
        VmxL1 l1;
        REQUIRE(completed(l1.vmxon()));
        CHECK(completed(l1.simple(iv::exit_reason::vmlaunch)));
        CHECK(l1.failed_invalid());
        CHECK(completed(l1.simple(iv::exit_reason::vmresume)));
        CHECK(l1.failed_invalid());
    }
    SECTION("blocking by MOV SS: 26 before the launch state") {
        VmxL1 l1;
        REQUIRE(completed(l1.vmxon()));
        REQUIRE(completed(l1.vmptrld(kVmcsA)));
        l1.hw.blocking = iv::interruptibility::mov_ss;
        CHECK(completed(l1.simple(iv::exit_reason::vmresume)));
        CHECK(l1.failed_valid());
        l1.hw.blocking = 0;
        CHECK(l1.error() == 26);
    }
    SECTION("VMRESUME of a clear VMCS: 5") {
        VmxL1 l1;
        REQUIRE(completed(l1.vmxon()));
        REQUIRE(completed(l1.vmptrld(kVmcsA)));
        CHECK(completed(l1.simple(iv::exit_reason::vmresume)));
        CHECK(l1.error() == 5);
    }
    SECTION("VMLAUNCH of a launched VMCS: 4") {
        VmxL1 l1;
        u32 launched = nv::kLaunchStateLaunched;
        REQUIRE(l1.host.write(kVmcsA + nv::kLaunchStateOffset, &launched, 4));
        REQUIRE(completed(l1.vmxon()));
        REQUIRE(completed(l1.vmptrld(kVmcsA)));
        CHECK(completed(l1.simple(iv::exit_reason::vmlaunch)));
        CHECK(l1.error() == 4);
        // VMCLEAR makes it clear again: the checks on controls come next (an empty VMCS: 7).
        REQUIRE(completed(l1.vmclear(kVmcsA)));
        REQUIRE(completed(l1.vmptrld(kVmcsA)));
        CHECK(completed(l1.simple(iv::exit_reason::vmlaunch)));
        CHECK(l1.error() == 7);
    }
}

TEST_CASE("nested_vmx.vmlaunch_entry_check_errors_then_invalid_guest_state") {
    VmxL1 l1;
    nv::Vmcs12 v = good_vmcs12();
    v.revision = nv::kVmcs12Revision;
    REQUIRE(l1.host.write(kVmcsA, &v, sizeof(v)));
    REQUIRE(completed(l1.vmxon()));
    REQUIRE(completed(l1.vmptrld(kVmcsA)));
    l1.vmwrite(iv::field::host_cr4, kCr4 & ~x86_regs::kCr4Vmxe);
    CHECK(completed(l1.simple(iv::exit_reason::vmlaunch)));
    CHECK(l1.error() == 8);
    l1.vmwrite(iv::field::host_cr4, kCr4);
    l1.vmwrite(iv::field::pin_based_controls, 0);
    CHECK(completed(l1.simple(iv::exit_reason::vmlaunch)));
    CHECK(l1.error() == 7);
    l1.vmwrite(iv::field::pin_based_controls, nv::capabilities().true_pin.must_be_one);
    l1.vmwrite(iv::field::host_rip, 0x7000);
    // No guest state at all (CR0 0): a VM exit into L1 with "invalid guest state", L1 at its host
    // RIP, the launch state still clear, nothing of L2 run.
    ExitOutcome o = l1.simple(iv::exit_reason::vmlaunch);
    CHECK(!o.stop);
    CHECK(!l1.hw.running_l2());
    CHECK(l1.state.rip == 0x7000);
    CHECK(l1.vmread(iv::field::exit_reason) == 0x80000021);
    CHECK(l1.vmread(iv::field::exit_qualification) == 0);
    CHECK(l1.hw.l1_control.cr0 == kCr0);
    CHECK(l1.hw.l1_control.cr3 == 0x1000);
    CHECK(completed(l1.simple(iv::exit_reason::vmresume)));
    CHECK(l1.error() == 5);  // still clear
}

TEST_CASE("nested_vmx.entry_checks_each_fail_alone") {
    using namespace iv;
    using nv::EntryCheck;
    constexpr u32 kBits = 39;
    nv::Vmcs12 good = good_vmcs12();
    constexpr u8 kVtpr = 0x5F;
    REQUIRE(nv::check_controls(good, kBits, kVtpr) == EntryCheck::ok);
    REQUIRE(nv::check_host_state(good, kBits, true) == EntryCheck::ok);
    struct Case {
        EntryCheck expected;
        u32 field;
        u64 value;
        u32 second_field = field::guest_rip;  // a second change, where one needs two
        u64 second_value = 1;
    };
    const nv::Capabilities& caps = nv::capabilities();
    u32 primary_ok = caps.true_primary.must_be_one | primary::activate_secondary;
    const Case cases[] = {
        {EntryCheck::pin_controls, field::pin_based_controls, 0},
        {EntryCheck::pin_controls, field::pin_based_controls, caps.true_pin.must_be_one | (1u << 7)},  // posted
        {EntryCheck::primary_controls, field::primary_controls, primary_ok | (1u << 27)},  // monitor trap flag
        {EntryCheck::virtual_apic_address, field::primary_controls, primary_ok | primary::use_tpr_shadow,
         field::virtual_apic_page_address, 0x40010},
        {EntryCheck::virtual_apic_address, field::primary_controls, primary_ok | primary::use_tpr_shadow,
         field::virtual_apic_page_address, u64{1} << 39},
        {EntryCheck::tpr_threshold_reserved, field::primary_controls, primary_ok | primary::use_tpr_shadow,
         field::tpr_threshold, 0x10},
        {EntryCheck::tpr_threshold_above_vtpr, field::primary_controls, primary_ok | primary::use_tpr_shadow,
         field::tpr_threshold, 6},  // VTPR 0x5F: class 5
        {EntryCheck::secondary_controls, field::secondary_controls, secondary::enable_ept | secondary::enable_vmfunc},
        {EntryCheck::cr3_target_count, field::cr3_target_count, 1},
        {EntryCheck::io_bitmap_address, field::primary_controls, primary_ok | primary::use_io_bitmaps,
         field::io_bitmap_b, 0x10},
        {EntryCheck::io_bitmap_address, field::primary_controls, primary_ok | primary::use_io_bitmaps,
         field::io_bitmap_a, u64{1} << 39},
        {EntryCheck::msr_bitmap_address, field::primary_controls, primary_ok | primary::use_msr_bitmaps,
         field::msr_bitmap, 0x800},
        {EntryCheck::virtual_nmis_without_nmi_exiting, field::pin_based_controls,
         caps.true_pin.must_be_one | pin::virtual_nmis},
        {EntryCheck::nmi_window_without_virtual_nmis, field::primary_controls,
         primary_ok | primary::nmi_window_exiting},
        {EntryCheck::vpid_zero, field::vpid, 0},
        {EntryCheck::ept_pointer, field::ept_pointer, 0x5000 | (3 << 3) | 0},         // UC: not offered
        {EntryCheck::ept_pointer, field::ept_pointer, 0x5000 | (2 << 3) | 6},         // 3-level walk
        {EntryCheck::ept_pointer, field::ept_pointer, 0x5000 | (3 << 3) | 6 | 0x40},  // A/D: not offered
        {EntryCheck::ept_pointer, field::ept_pointer, (u64{1} << 39) | (3 << 3) | 6},
        {EntryCheck::unrestricted_guest_without_ept, field::secondary_controls, secondary::unrestricted_guest},
        {EntryCheck::exit_controls, field::exit_controls,
         caps.true_exit.must_be_one | exit_ctl::save_pat},  // not offered
        {EntryCheck::save_timer_without_timer, field::exit_controls,
         caps.true_exit.must_be_one | exit_ctl::host_address_space_size | exit_ctl::save_preemption_timer},
        {EntryCheck::exit_msr_store_address, field::exit_msr_store_count, 1, field::exit_msr_store_address, 0x8},
        {EntryCheck::exit_msr_load_address, field::exit_msr_load_count, 2, field::exit_msr_load_address,
         (u64{1} << 39) - 16},
        {EntryCheck::entry_msr_load_address, field::entry_msr_load_count, 1, field::entry_msr_load_address, 0x4},
        {EntryCheck::entry_controls, field::entry_controls, caps.true_entry.must_be_one | entry_ctl::load_pat},
        {EntryCheck::entry_event_injection, field::entry_interruption_info, intr_info::valid | (1u << 8)},
        {EntryCheck::entry_event_injection, field::entry_interruption_info, intr_info::valid | intr_info::type_nmi | 3},
        {EntryCheck::entry_event_injection, field::entry_interruption_info,
         intr_info::valid | intr_info::type_hardware_exception | 32},
        {EntryCheck::entry_event_injection, field::entry_interruption_info,
         intr_info::valid | intr_info::type_software_interrupt | 0x80},  // length 0
        {EntryCheck::host_cr0, field::host_cr0, kCr0 & ~x86_regs::kCr0Pg},
        {EntryCheck::host_cr4, field::host_cr4, kCr4 | x86_regs::kCr4Smxe},
        {EntryCheck::host_cr3, field::host_cr3, u64{1} << 40},
        {EntryCheck::host_sysenter_address, field::host_sysenter_eip, u64{1} << 47},
        {EntryCheck::host_efer, field::exit_controls,
         caps.true_exit.must_be_one | exit_ctl::host_address_space_size | exit_ctl::load_efer},  // EFER 0
        {EntryCheck::host_selector, field::host_ds_selector, 0x13},
        {EntryCheck::host_selector, field::host_tr_selector, 0},
        {EntryCheck::host_base_address, field::host_gs_base, u64{1} << 47},
        {EntryCheck::host_address_space_size, field::exit_controls, caps.true_exit.must_be_one},
        {EntryCheck::host_rip, field::host_rip, u64{1} << 47},
    };
    for (const Case& c : cases) {
        nv::Vmcs12 v = good;
        nv::write_field(v, c.field, c.value);
        nv::write_field(v, c.second_field, c.second_value);
        EntryCheck got = nv::check_controls(v, kBits, kVtpr);
        if (got == EntryCheck::ok) got = nv::check_host_state(v, kBits, true);
        INFO("field " << c.field << " value " << c.value);
        CHECK(static_cast<int>(got) == static_cast<int>(c.expected));
        CHECK(nv::is_entry_control_check(got) == (c.expected < EntryCheck::host_cr0));
    }
    // A 32-bit L1 may not ask for a 64-bit host.
    CHECK(nv::check_host_state(good, kBits, false) == EntryCheck::host_address_space_size);
}

TEST_CASE("nested_vmx.invept_invvpid_checks") {
    VmxL1 l1;
    REQUIRE(completed(l1.vmxon()));
    REQUIRE(completed(l1.vmptrld(kVmcsA)));
    constexpr u64 kGoodEptp = 0x5000 | (3 << 3) | 6;
    CHECK(completed(l1.invalidate(50, 1, kGoodEptp)));
    CHECK(l1.succeeded());
    CHECK(completed(l1.invalidate(50, 2, 0)));
    CHECK(l1.succeeded());
    for (u64 type : {u64{0}, u64{3}, u64{1} << 32}) {
        CHECK(completed(l1.invalidate(50, type, kGoodEptp)));
        CHECK(l1.error() == 28);
    }
    CHECK(completed(l1.invalidate(50, 1, 0x5000)));  // UC tables
    CHECK(l1.error() == 28);
    CHECK(completed(l1.invalidate(53, 1, 5)));
    CHECK(l1.succeeded());
    CHECK(completed(l1.invalidate(53, 2, 0)));
    CHECK(l1.succeeded());
    CHECK(completed(l1.invalidate(53, 0, 5)));  // individual address: not offered
    CHECK(l1.error() == 28);
    CHECK(completed(l1.invalidate(53, 3, 5)));
    CHECK(l1.error() == 28);
    CHECK(completed(l1.invalidate(53, 1, 0)));  // VPID 0
    CHECK(l1.error() == 28);
    CHECK(completed(l1.invalidate(53, 2, u64{1} << 16)));  // reserved descriptor bits
    CHECK(l1.error() == 28);
    CHECK(completed(l1.invalidate(50, 1, kGoodEptp, 0)));
    l1.host.put(kOperand, kGoodEptp);
    l1.state.rax() = u64{1} << 47;  // the descriptor's address: non-canonical
    CHECK(is_gp(l1.run(instruction(50))));
}

TEST_CASE("nested_vmx.memory_operand_address_and_segment_checks") {
    using nv::OperandFault;
    nv::L1Cpu cpu{};
    cpu.mode = CpuMode::protected32;
    for (auto& s : cpu.segments) s = {0, 0xFFFFFFFF, kFlatData};
    VcpuState state{};
    state.rax() = 0x1000;
    state.rbx() = 0x10;
    // [EAX + EBX*4 + disp] 32-bit addressing through DS.
    u32 info = (2u) | (1u << 7) | (kDs << 15) | (3u << 18) | (0u << 23);
    cpu.exit = {0xFFFFFFF0, info};  // displacement -16, sign-extended
    nv::MemoryOperand op = nv::memory_operand(nv::decode_information(info), cpu, state, 8, false);
    CHECK(op.fault == OperandFault::none);
    CHECK(op.linear == 0x1000 + 0x40 - 16);
    SECTION("16-bit addressing wraps at 64 KiB") {
        state.rax() = 0xFFF8;
        cpu.exit = {0x10, (0u << 7) | (kDs << 15) | (1u << 22)};
        op = nv::memory_operand(nv::decode_information(cpu.exit.information), cpu, state, 8, false);
        CHECK(op.linear == 0x8);
    }
    SECTION("segment base and limit") {
        cpu.segments[kDs] = {0x100000, 0x1003, kFlatData};
        op = nv::memory_operand(nv::decode_information(info), cpu, state, 8, false);
        CHECK(op.fault == OperandFault::general_protection);  // 0x1030..0x1037 beyond 0x1003
        cpu.segments[kDs].limit = 0x2000;
        op = nv::memory_operand(nv::decode_information(info), cpu, state, 8, false);
        CHECK(op.fault == OperandFault::none);
        CHECK(op.linear == 0x101030);
    }
    SECTION("a write to read-only data or code, a read of execute-only code") {
        cpu.segments[kDs].access_rights = 0xC091;  // read-only data
        CHECK(nv::memory_operand(nv::decode_information(info), cpu, state, 8, true).fault ==
              OperandFault::general_protection);
        CHECK(nv::memory_operand(nv::decode_information(info), cpu, state, 8, false).fault == OperandFault::none);
        cpu.segments[kDs].access_rights = 0xC099;  // execute-only code
        CHECK(nv::memory_operand(nv::decode_information(info), cpu, state, 8, false).fault ==
              OperandFault::general_protection);
    }
    SECTION("unusable: #GP, or #SS through SS") {
        cpu.segments[kDs].access_rights = kFlatData | (1u << 16);
        CHECK(nv::memory_operand(nv::decode_information(info), cpu, state, 8, false).fault ==
              OperandFault::general_protection);
        u32 through_ss = (info & ~(7u << 15)) | (nv::kSegmentSs << 15);
        cpu.segments[nv::kSegmentSs].access_rights = kFlatData | (1u << 16);
        CHECK(nv::memory_operand(nv::decode_information(through_ss), cpu, state, 8, false).fault ==
              OperandFault::stack);
    }
    SECTION("expand-down data") {
        cpu.segments[kDs] = {0, 0x2000, 0xC097};  // expand-down, writable; valid 0x2001-0xFFFFFFFF
        CHECK(nv::memory_operand(nv::decode_information(info), cpu, state, 8, false).fault ==
              OperandFault::general_protection);
        state.rax() = 0x3000;
        CHECK(nv::memory_operand(nv::decode_information(info), cpu, state, 8, false).fault == OperandFault::none);
    }
    SECTION("64-bit mode: only FS and GS bases, canonical addresses") {
        cpu.mode = CpuMode::long64;
        cpu.segments[kDs].base = 0x5000;
        cpu.segments[4].base = 0x7000;
        u32 info64 = (2u << 7) | (kDs << 15) | (1u << 22);
        cpu.exit = {0, info64};
        CHECK(nv::memory_operand(nv::decode_information(info64), cpu, state, 8, false).linear == 0x1000);
        u32 via_fs = (info64 & ~(7u << 15)) | (4u << 15);
        CHECK(nv::memory_operand(nv::decode_information(via_fs), cpu, state, 8, false).linear == 0x8000);
        state.rax() = 0x00007FFFFFFFFFFC;  // the operand crosses into non-canonical space
        CHECK(nv::memory_operand(nv::decode_information(info64), cpu, state, 8, false).fault ==
              OperandFault::general_protection);
    }
}

namespace {

// A vmcs12 that enters L2: good_vmcs12's controls and host state (host RIP 0x7000), HLT and
// unconditional I/O exiting, #UD in the exception bitmap, no EPT, and a 64-bit L2 at 0x4000.
nv::Vmcs12 runnable_vmcs12(bool ept = false) {
    using namespace iv;
    const nv::Capabilities& caps = nv::capabilities();
    nv::Vmcs12 v = good_vmcs12();
    v.revision = nv::kVmcs12Revision;
    u32 primary = caps.true_primary.must_be_one | primary::hlt_exiting | primary::unconditional_io_exiting;
    nv::write_field(v, field::primary_controls, ept ? primary | primary::activate_secondary : primary);
    nv::write_field(v, field::secondary_controls, ept ? secondary::enable_ept : 0);
    nv::write_field(v, field::ept_pointer, 0x30000 | (3 << 3) | 6);
    nv::write_field(v, field::exception_bitmap, 1u << 6);
    nv::write_field(v, field::host_rip, 0x7000);
    nv::write_field(v, field::host_rsp, 0x8000);
    nv::write_field(v, field::guest_cr0, kCr0);
    nv::write_field(v, field::guest_cr4, kCr4);
    nv::write_field(v, field::guest_cr3, 0x2000);
    nv::write_field(v, field::guest_rflags, 2);
    nv::write_field(v, field::guest_rip, 0x4000);
    nv::write_field(v, field::guest_rsp, 0x5000);
    nv::write_field(v, field::vmcs_link_pointer, ~u64{0});
    return v;
}

struct RunningL2 : VmxL1 {
    explicit RunningL2(bool ept = false) {
        nv::Vmcs12 v = runnable_vmcs12(ept);
        REQUIRE(host.write(kVmcsA, &v, sizeof(v)));
        hw.vmcs[0][iv::field::guest_efer] = x86_regs::kEferLme | x86_regs::kEferLma;
        REQUIRE(completed(vmxon()));
        REQUIRE(completed(vmptrld(kVmcsA)));
        REQUIRE(completed(simple(iv::exit_reason::vmlaunch)));
        REQUIRE(hw.running_l2());
    }
    // L2 exits with `reason` (the CPU's fields in vmcs02) as the backend decodes it into `exit`.
    ExitOutcome l2_exit(VmExit exit, u32 reason, u64 qualification = 0) {
        exit.vendor_code = reason;
        hw.l2_exits(reason, qualification, exit.instruction_length);
        return run(exit);
    }
    ExitOutcome l2_instruction(ExitKind kind, u32 reason, u8 length, u64 qualification = 0) {
        VmExit exit{};
        exit.kind = kind;
        exit.instruction_length = length;
        return l2_exit(exit, reason, qualification);
    }
    // L1 runs at its host RIP with the exit's reason in vmcs12 (read with VMREAD, which moves RIP).
    bool reflected(u32 reason) {
        bool at_host_rip = state.rip == 0x7000;
        return !hw.running_l2() && at_host_rip && vmread(iv::field::exit_reason) == reason;
    }
    void resume_l2() {
        REQUIRE(completed(simple(iv::exit_reason::vmresume)));
        REQUIRE(hw.running_l2());
    }
};

}  // namespace

TEST_CASE("nested_vmx.vmcs02_is_l0s_controls_with_l1s") {
    RunningL2 l1;
    auto& v02 = l1.hw.vmcs[1];
    const x86::vmx::L0Controls& l0 = l1.hw.controls;
    CHECK(l1.state.rip == 0x4000);
    CHECK(l1.state.reg(Gpr::rsp) == 0x5000);
    CHECK((v02[iv::field::pin_based_controls] & l0.pin) == l0.pin);
    CHECK((v02[iv::field::primary_controls] & (l0.primary | iv::primary::unconditional_io_exiting)) ==
          (l0.primary | iv::primary::unconditional_io_exiting));
    // Not offered to L1, so not to L2: RDTSCP #UDs there; L0's EPT of L1 without L1's own.
    CHECK((v02[iv::field::secondary_controls] & iv::secondary::enable_rdtscp) == 0);
    CHECK((v02[iv::field::secondary_controls] & iv::secondary::unrestricted_guest) == 0);
    CHECK(v02[iv::field::ept_pointer] == l0.l1_eptp);
    CHECK(v02[iv::field::vpid] == 7);
    CHECK(v02[iv::field::exception_bitmap] == (l0.exception_bitmap | (1u << 6)));
    CHECK(v02[iv::field::msr_bitmap] == l0.merged_msr_bitmap_pa);
    CHECK(v02[iv::field::io_bitmap_a] == l0.io_bitmap_a);
    CHECK((v02[iv::field::entry_controls] & iv::entry_ctl::ia32e_mode_guest) != 0);
    // Without "load EFER" L2's EFER is L1's with LME / LMA from "IA-32e mode guest".
    CHECK(v02[iv::field::guest_efer] == (x86_regs::kEferLme | x86_regs::kEferLma));
    // L1 uses no MSR bitmap: every MSR access of L2 exits.
    CHECK(l1.hw.merged_msr_bitmap[0] == 0xFF);
    CHECK(l1.hw.flushes == 1);
}

TEST_CASE("nested_vmx.l2_exits_reach_l1_by_l1s_controls") {
    RunningL2 l1;
    // CPUID always: exit reason 10, length 2, L2's RIP saved, L1 at its host RIP and RSP.
    CHECK(!l1.l2_instruction(ExitKind::cpuid, iv::exit_reason::cpuid, 2).stop);
    CHECK(l1.state.reg(Gpr::rsp) == 0x8000);
    CHECK(l1.state.rflags == 2);
    CHECK(l1.reflected(iv::exit_reason::cpuid));
    CHECK(l1.vmread(iv::field::exit_instruction_length) == 2);
    CHECK(l1.vmread(iv::field::guest_rip) == 0x4000);
    l1.resume_l2();
    // OUT with unconditional I/O exiting: the qualification as the CPU gave it.
    VmExit out{};
    out.kind = ExitKind::io;
    out.instruction_length = 2;
    out.io.port = 0x80;
    out.io.size = 1;
    CHECK(!l1.l2_exit(out, iv::exit_reason::io_instruction, 0x800040).stop);
    CHECK(l1.reflected(iv::exit_reason::io_instruction));
    CHECK(l1.vmread(iv::field::exit_qualification) == 0x800040);
    l1.resume_l2();
    CHECK(!l1.l2_instruction(ExitKind::hlt, iv::exit_reason::hlt, 1).stop);
    CHECK(l1.reflected(iv::exit_reason::hlt));
    l1.resume_l2();
    // An RDMSR without L1's MSR bitmap is L1's.
    VmExit rdmsr{};
    rdmsr.kind = ExitKind::msr_read;
    rdmsr.instruction_length = 2;
    rdmsr.msr.index = 0x10;
    CHECK(!l1.l2_exit(rdmsr, iv::exit_reason::rdmsr).stop);
    CHECK(l1.reflected(iv::exit_reason::rdmsr));
    l1.resume_l2();
    // #UD in L1's exception bitmap; #DB (L0's intercept only) goes back to L2.
    VmExit ud{};
    ud.kind = ExitKind::exception;
    ud.exception.vector = 6;
    l1.hw.vmcs[1][iv::field::exit_interruption_info] = 0x80000306;
    CHECK(!l1.l2_exit(ud, iv::exit_reason::exception_or_nmi).stop);
    CHECK(l1.reflected(iv::exit_reason::exception_or_nmi));
    CHECK(l1.vmread(iv::field::exit_interruption_info) == 0x80000306);
    l1.resume_l2();
    VmExit db{};
    db.kind = ExitKind::exception;
    db.exception.vector = 1;
    ExitOutcome o = l1.l2_exit(db, iv::exit_reason::exception_or_nmi);
    CHECK(o.inject);
    CHECK(o.vector == 1);
    CHECK(l1.hw.running_l2());
    // A physical interrupt is L0's: L2 stays.
    VmExit intr{};
    intr.kind = ExitKind::external_interrupt;
    CHECK(!l1.l2_exit(intr, iv::exit_reason::external_interrupt).stop);
    CHECK(l1.hw.running_l2());
    // VMCALL and L2's own VMX instructions are always L1's.
    CHECK(!l1.l2_instruction(ExitKind::hypercall, iv::exit_reason::vmcall, 3).stop);
    CHECK(l1.reflected(iv::exit_reason::vmcall));
    l1.resume_l2();
    CHECK(!l1.l2_instruction(ExitKind::virtualization_instruction, iv::exit_reason::vmptrld, 3).stop);
    CHECK(l1.reflected(iv::exit_reason::vmptrld));
}

TEST_CASE("nested_vmx.l1_interrupt_exits_and_is_acknowledged_when_l1_asks") {
    RunningL2 l1;
    constexpr u8 kVector = 0x41;
    // L1 (at a reflected CPUID) asks for external-interrupt exiting and their acknowledgement.
    REQUIRE(!l1.l2_instruction(ExitKind::cpuid, iv::exit_reason::cpuid, 2).stop);
    REQUIRE(l1.reflected(iv::exit_reason::cpuid));
    const nv::Capabilities& caps = nv::capabilities();
    u32 exit_controls = caps.true_exit.must_be_one | iv::exit_ctl::host_address_space_size;
    REQUIRE(caps.true_exit.allows(exit_controls | iv::exit_ctl::acknowledge_interrupt));
    REQUIRE(completed(
        l1.vmwrite(iv::field::pin_based_controls, caps.true_pin.must_be_one | iv::pin::external_interrupt_exiting)));
    REQUIRE(completed(l1.vmwrite(iv::field::exit_controls, exit_controls | iv::exit_ctl::acknowledge_interrupt)));
    l1.resume_l2();
    // An event whose delivery L2's last exit interrupted is delivered again first: the interrupt waits.
    l1.hw.vmcs[1][iv::field::idt_vectoring_info] = iv::intr_info::valid | iv::intr_info::type_hardware_exception | 6;
    CHECK(l1.vcpu.ops->route_interrupt(l1.vcpu, l1.state, kVector).action == nested::Action::resume);
    CHECK(l1.hw.running_l2());
    CHECK(l1.hw.immediate_exits == 1);  // the exit comes right after that delivery
    l1.hw.vmcs[1][iv::field::idt_vectoring_info] = 0;
    // The interrupt is taken by the exit (Action::complete): its vector is in the exit's information.
    CHECK(l1.vcpu.ops->route_interrupt(l1.vcpu, l1.state, kVector).action == nested::Action::complete);
    CHECK(l1.reflected(iv::exit_reason::external_interrupt));
    CHECK(l1.vmread(iv::field::exit_interruption_info) ==
          (iv::intr_info::valid | iv::intr_info::type_external | kVector));
    // Without acknowledgement L1 takes the interrupt itself later: the exit leaves it pending.
    REQUIRE(completed(l1.vmwrite(iv::field::exit_controls, exit_controls)));
    l1.resume_l2();
    CHECK(l1.vcpu.ops->route_interrupt(l1.vcpu, l1.state, kVector).action == nested::Action::resume);
    CHECK(l1.reflected(iv::exit_reason::external_interrupt));
    CHECK((l1.vmread(iv::field::exit_interruption_info) & iv::intr_info::valid) == 0);
}

// L1's TPR shadow for L2: vmcs02 runs with L1's virtual-APIC page and threshold (the backend's
// L2TprShadow), a MOV to CR8 below the threshold is L1's exit, and without it L2's CR8 is L1's
// own (no L2TprShadow: L0's threshold, whose exit is L0's).
TEST_CASE("nested_vmx.tpr_shadow_gives_l2_l1s_virtual_apic_page_and_threshold") {
    RunningL2 l1;
    constexpr u64 kPage = 0x40000;
    CHECK(!l1.hw.l1_tpr_shadow);
    VmExit below{};
    below.kind = ExitKind::task_priority;
    CHECK(!l1.l2_exit(below, iv::exit_reason::tpr_below_threshold).stop);
    CHECK(l1.hw.running_l2());  // L0's threshold: L0's exit
    REQUIRE(!l1.l2_instruction(ExitKind::cpuid, iv::exit_reason::cpuid, 2).stop);
    REQUIRE(l1.reflected(iv::exit_reason::cpuid));
    const u64 primary = l1.vmread(iv::field::primary_controls);
    REQUIRE(completed(l1.vmwrite(iv::field::primary_controls, primary | iv::primary::use_tpr_shadow)));
    REQUIRE(completed(l1.vmwrite(iv::field::virtual_apic_page_address, kPage)));
    REQUIRE(completed(l1.vmwrite(iv::field::tpr_threshold, 3)));
    u8 vtpr = 0x20;  // class 2, below the threshold: VM entry refuses it
    REQUIRE(l1.host.write(kPage + 0x80, &vtpr, 1));
    REQUIRE(completed(l1.simple(iv::exit_reason::vmresume)));
    CHECK(l1.failed_valid());
    CHECK(l1.error() == 7);
    CHECK(!l1.hw.running_l2());
    vtpr = 0x30;
    REQUIRE(l1.host.write(kPage + 0x80, &vtpr, 1));
    l1.resume_l2();
    CHECK(l1.hw.l1_tpr_shadow);
    CHECK(l1.hw.tpr_shadow.page == kPage);
    CHECK(l1.hw.tpr_shadow.frame == l1.host.page(kPage).host);
    CHECK(l1.hw.tpr_shadow.threshold == 3);
    // Now the threshold is L1's, and so is its exit (a trap: L2's RIP is past the MOV).
    CHECK(!l1.l2_exit(below, iv::exit_reason::tpr_below_threshold).stop);
    CHECK(l1.reflected(iv::exit_reason::tpr_below_threshold));
    // A page that is not L1's memory cannot be given to L2: the domain stops.
    REQUIRE(completed(l1.vmwrite(iv::field::virtual_apic_page_address, FakeNestedHost::kL1Bytes)));
    ExitOutcome o = l1.simple(iv::exit_reason::vmresume);
    CHECK(o.stop);
    CHECK(o.detail == std::string("nested VMX: L1's virtual-APIC page is not in L1's memory"));
}

// L1's NMI (the PC's, nested_ops.hpp route_nmi) while L2 runs: with NMI exiting, a VM exit with
// the NMI in its interruption information that takes it, L1's NMIs blocked until its IRET;
// without, L2's.
TEST_CASE("nested_vmx.l1_nmi_exits_when_l1_asks") {
    RunningL2 l1;
    CHECK(l1.vcpu.ops->route_nmi(l1.vcpu, l1.state).action == nested::Action::not_nested);
    CHECK(l1.hw.running_l2());
    REQUIRE(!l1.l2_instruction(ExitKind::cpuid, iv::exit_reason::cpuid, 2).stop);
    REQUIRE(l1.reflected(iv::exit_reason::cpuid));
    CHECK(l1.vcpu.ops->route_nmi(l1.vcpu, l1.state).action == nested::Action::not_nested);  // L1 runs
    const nv::Capabilities& caps = nv::capabilities();
    REQUIRE(completed(l1.vmwrite(iv::field::pin_based_controls, caps.true_pin.must_be_one | iv::pin::nmi_exiting)));
    l1.resume_l2();
    // An event whose delivery L2's last exit interrupted is delivered again first: the NMI waits.
    l1.hw.vmcs[1][iv::field::idt_vectoring_info] = iv::intr_info::valid | iv::intr_info::type_hardware_exception | 6;
    CHECK(l1.vcpu.ops->route_nmi(l1.vcpu, l1.state).action == nested::Action::resume);
    CHECK(l1.hw.running_l2());
    l1.hw.vmcs[1][iv::field::idt_vectoring_info] = 0;
    l1.hw.vmcs[0][iv::field::guest_interruptibility] = 0;
    CHECK(l1.vcpu.ops->route_nmi(l1.vcpu, l1.state).action == nested::Action::complete);
    CHECK(l1.reflected(iv::exit_reason::exception_or_nmi));
    CHECK(l1.vmread(iv::field::exit_interruption_info) == (iv::intr_info::valid | iv::intr_info::type_nmi | 2));
    CHECK(l1.hw.vmcs[0][iv::field::guest_interruptibility] == iv::interruptibility::nmi);
}

// An INIT for the vCPU (the PC's, nested_ops.hpp init_signal), SDM 25.2 and 26.2: in L2 a VM exit
// with reason 3 that takes it (after an event whose delivery L2's last exit interrupted); in VMX
// root operation it is blocked, pending, until VMXOFF; outside VMX operation the vCPU takes it.
TEST_CASE("nested_vmx.init_exits_from_l2_and_waits_in_vmx_root_for_vmxoff") {
    RunningL2 l1;
    l1.hw.vmcs[1][iv::field::idt_vectoring_info] = iv::intr_info::valid | iv::intr_info::type_hardware_exception | 6;
    CHECK(l1.vcpu.ops->init_signal(l1.vcpu, l1.state).action == nested::Action::resume);
    CHECK(l1.hw.running_l2());
    CHECK(l1.hw.immediate_exits == 1);  // the exit comes right after that delivery
    l1.hw.vmcs[1][iv::field::idt_vectoring_info] = 0;
    CHECK(l1.vcpu.ops->init_signal(l1.vcpu, l1.state).action == nested::Action::complete);
    CHECK(l1.reflected(iv::exit_reason::init_signal));
    CHECK(l1.vmread(iv::field::exit_qualification) == 0);
    CHECK((l1.vmread(iv::field::exit_interruption_info) & iv::intr_info::valid) == 0);
    // L1 in VMX root operation: held, L1 runs on.
    CHECK(l1.vcpu.ops->init_signal(l1.vcpu, l1.state).action == nested::Action::resume);
    CHECK_FALSE(l1.hw.running_l2());
    REQUIRE(completed(l1.simple(iv::exit_reason::vmxoff)));
    CHECK(l1.vcpu.ops->init_signal(l1.vcpu, l1.state).action == nested::Action::not_nested);
}

TEST_CASE("nested_vmx.vmresume_writes_only_the_guest_fields_l1_changed") {
    RunningL2 l1;
    auto& v02 = l1.hw.vmcs[1];
    REQUIRE(!l1.l2_instruction(ExitKind::cpuid, iv::exit_reason::cpuid, 2).stop);
    REQUIRE(l1.reflected(iv::exit_reason::cpuid));
    // A value only vmcs02 holds shows whether an entry copied the field from vmcs12 again.
    v02[iv::field::guest_ds_selector] = 0x1230;
    REQUIRE(completed(l1.vmwrite(iv::field::guest_rsp, 0x5100)));
    l1.resume_l2();
    CHECK(v02[iv::field::guest_rsp] == 0x5100);
    CHECK(v02[iv::field::guest_ds_selector] == 0x1230);
    // The exit saves vmcs02's value into vmcs12.
    REQUIRE(!l1.l2_instruction(ExitKind::cpuid, iv::exit_reason::cpuid, 2).stop);
    REQUIRE(l1.reflected(iv::exit_reason::cpuid));
    CHECK(l1.vmread(iv::field::guest_ds_selector) == 0x1230);
    // After a VMPTRLD vmcs02 no longer stands for vmcs12: the next entry copies every field.
    v02[iv::field::guest_ds_selector] = 0x4320;
    REQUIRE(completed(l1.vmptrld(kVmcsB)));
    REQUIRE(completed(l1.vmptrld(kVmcsA)));
    l1.resume_l2();
    CHECK(v02[iv::field::guest_ds_selector] == 0x1230);
}

TEST_CASE("nested_vmx.vmresume_writes_the_controls_that_stay_put_only_when_l1_changed_them") {
    RunningL2 l1;
    auto& v02 = l1.hw.vmcs[1];
    const x86::vmx::L0Controls& l0 = l1.hw.controls;
    REQUIRE(!l1.l2_instruction(ExitKind::cpuid, iv::exit_reason::cpuid, 2).stop);
    REQUIRE(l1.reflected(iv::exit_reason::cpuid));
    // Values only vmcs02 holds show whether an entry wrote the field again.
    v02[iv::field::exception_bitmap] = 0x1234;
    v02[iv::field::pin_based_controls] = 0;
    REQUIRE(completed(l1.vmwrite(iv::field::guest_rip, 0x4100)));
    l1.resume_l2();
    CHECK(v02[iv::field::exception_bitmap] == 0x1234);
    CHECK((v02[iv::field::pin_based_controls] & l0.pin) == l0.pin);  // the backend's: every entry
    CHECK(v02[iv::field::guest_rip] == 0x4100);
    REQUIRE(!l1.l2_instruction(ExitKind::cpuid, iv::exit_reason::cpuid, 2).stop);
    REQUIRE(l1.reflected(iv::exit_reason::cpuid));
    REQUIRE(completed(l1.vmwrite(iv::field::exception_bitmap, 1u << 3)));
    l1.resume_l2();
    CHECK(v02[iv::field::exception_bitmap] == (l0.exception_bitmap | (1u << 3)));
    // L1's CR0 written: the read shadow, which takes L2's CR0 bits L1 does not own, again.
    REQUIRE(!l1.l2_instruction(ExitKind::cpuid, iv::exit_reason::cpuid, 2).stop);
    REQUIRE(l1.reflected(iv::exit_reason::cpuid));
    v02[iv::field::cr0_read_shadow] = 0;
    REQUIRE(completed(l1.vmwrite(iv::field::guest_cr0, kCr0 | x86_regs::kCr0Ts)));
    l1.resume_l2();
    CHECK(v02[iv::field::cr0_read_shadow] == (kCr0 | x86_regs::kCr0Ts));
}

// After a VM entry whose control and host-state checks passed, VMRESUME runs them all again only
// when L1 VMWROTE a control or host-state field it checks (or loaded another VMCS); else only
// those whose inputs change without such a VMWRITE: HOST_RIP, VTPR in L1's memory, and the
// checks keyed by L1's mode and the "IA-32e mode guest" a VM exit updates.
TEST_CASE("nested_vmx.vmresume_checks_again_what_changed_since_the_last_entry") {
    RunningL2 l1;
    auto exit_to_l1 = [&] {
        REQUIRE(!l1.l2_instruction(ExitKind::cpuid, iv::exit_reason::cpuid, 2).stop);
        REQUIRE(l1.reflected(iv::exit_reason::cpuid));
    };
    auto refused = [&](u64 error) {
        REQUIRE(completed(l1.simple(iv::exit_reason::vmresume)));
        CHECK(l1.failed_valid());
        CHECK(!l1.hw.running_l2());
        return l1.error() == error;
    };
    exit_to_l1();
    SECTION("a control field: every control check again") {
        REQUIRE(completed(l1.vmwrite(iv::field::cr3_target_count, 1)));
        CHECK(refused(7));
        REQUIRE(completed(l1.vmwrite(iv::field::cr3_target_count, 0)));
        l1.resume_l2();
    }
    SECTION("a host-state field: every host-state check again") {
        REQUIRE(completed(l1.vmwrite(iv::field::host_cr3, u64{1} << 40)));
        CHECK(refused(8));
        REQUIRE(completed(l1.vmwrite(iv::field::host_cr3, 0x1000)));
        l1.resume_l2();
    }
    SECTION("HOST_RIP, which L1s write before every entry, is checked every time") {
        REQUIRE(completed(l1.vmwrite(iv::field::host_rip, u64{1} << 47)));
        CHECK(refused(8));
        REQUIRE(completed(l1.vmwrite(iv::field::host_rip, 0x7000)));
        l1.resume_l2();
    }
    SECTION("VTPR, in L1's memory, is checked against the threshold every time") {
        constexpr u64 kPage = 0x40000;
        u8 vtpr = 0x30;
        REQUIRE(l1.host.write(kPage + 0x80, &vtpr, 1));
        const u64 primary = l1.vmread(iv::field::primary_controls);
        REQUIRE(completed(l1.vmwrite(iv::field::primary_controls, primary | iv::primary::use_tpr_shadow)));
        REQUIRE(completed(l1.vmwrite(iv::field::virtual_apic_page_address, kPage)));
        REQUIRE(completed(l1.vmwrite(iv::field::tpr_threshold, 3)));
        l1.resume_l2();
        exit_to_l1();
        vtpr = 0x20;  // class 2, below the threshold: no VMWRITE since the last entry
        REQUIRE(l1.host.write(kPage + 0x80, &vtpr, 1));
        CHECK(refused(7));
        vtpr = 0x30;
        REQUIRE(l1.host.write(kPage + 0x80, &vtpr, 1));
        l1.resume_l2();
    }
    SECTION("L1's mode: the host address-space size again") {
        // Not a state L1 reaches through the CPU (VMX operation pins CR0.PG, so EFER.LMA stays),
        // which the checks do not count on.
        l1.state.efer = x86_regs::kEferLme;
        l1.state.mode = CpuMode::protected32;
        CHECK(refused(8));
        l1.state.efer = x86_regs::kEferLme | x86_regs::kEferLma;
        l1.state.mode = CpuMode::long64;
        l1.resume_l2();
    }
    SECTION("a guest field alone: L2 resumes with it") {
        REQUIRE(completed(l1.vmwrite(iv::field::guest_rip, 0x4100)));
        l1.resume_l2();
        CHECK(l1.hw.vmcs[1][iv::field::guest_rip] == 0x4100);
    }
    SECTION("another VMCS, then this one again: every check again") {
        REQUIRE(completed(l1.vmptrld(kVmcsB)));
        nv::Vmcs12 a = l1.region(kVmcsA);
        nv::write_field(a, iv::field::host_cs_selector, 0);  // L1 changed the region meanwhile
        REQUIRE(l1.host.write(kVmcsA, &a, sizeof(a)));
        REQUIRE(completed(l1.vmptrld(kVmcsA)));
        CHECK(refused(8));
    }
}

// A 32-bit L1 (no IA-32e host) whose L2 is in IA-32e mode at its exit: the exit sets "IA-32e
// mode guest", which such an L1 may not enter with (SDM 26.2.4), whether or not it VMWROTE.
TEST_CASE("nested_vmx.vmresume_of_a_32_bit_l1_checks_the_ia32e_mode_an_exit_stored") {
    using namespace iv;
    const nv::Capabilities& caps = nv::capabilities();
    VmxL1 l1;
    l1.state.mode = CpuMode::protected32;
    l1.state.efer = 0;
    nv::Vmcs12 v = runnable_vmcs12();
    nv::write_field(v, field::exit_controls, caps.true_exit.must_be_one);
    nv::write_field(v, field::entry_controls, caps.true_entry.must_be_one);
    REQUIRE(l1.host.write(kVmcsA, &v, sizeof(v)));
    REQUIRE(completed(l1.vmxon()));
    REQUIRE(completed(l1.vmptrld(kVmcsA)));
    REQUIRE(completed(l1.simple(exit_reason::vmlaunch)));
    REQUIRE(l1.hw.running_l2());
    l1.hw.vmcs[1][field::guest_efer] = x86_regs::kEferLme | x86_regs::kEferLma;
    l1.hw.l2_exits(exit_reason::cpuid, 0, 2);
    VmExit exit{};
    exit.kind = ExitKind::cpuid;
    exit.instruction_length = 2;
    exit.vendor_code = exit_reason::cpuid;
    REQUIRE(!l1.run(exit).stop);
    REQUIRE(!l1.hw.running_l2());
    REQUIRE((l1.vmread(field::entry_controls) & entry_ctl::ia32e_mode_guest) != 0);
    REQUIRE(completed(l1.simple(exit_reason::vmresume)));
    CHECK(l1.failed_valid());
    CHECK(l1.error() == 8);
}

// What recheck_controls and recheck_host_state look at, each failing alone.
TEST_CASE("nested_vmx.entry_rechecks_each_fail_alone") {
    using namespace iv;
    using nv::EntryCheck;
    constexpr u32 kBits = 39;
    const nv::Vmcs12 good = good_vmcs12();
    CHECK(nv::recheck_controls(good, kBits, 0xFF) == EntryCheck::ok);
    CHECK(nv::recheck_host_state(good) == EntryCheck::ok);
    nv::Vmcs12 v = good;
    // A #GP with its error code, valid in protected mode only: guest CR0.PE decides.
    nv::write_field(v, field::entry_interruption_info,
                    intr_info::valid | intr_info::type_hardware_exception | intr_info::error_code_valid | 13);
    nv::write_field(v, field::guest_cr0, kCr0);
    CHECK(nv::recheck_controls(v, kBits, 0xFF) == EntryCheck::ok);
    nv::write_field(v, field::guest_cr0, 0);
    CHECK(nv::recheck_controls(v, kBits, 0xFF) == EntryCheck::entry_event_injection);
    v = good;
    nv::write_field(v, field::primary_controls, nv::read_field(v, field::primary_controls) | primary::use_tpr_shadow);
    nv::write_field(v, field::virtual_apic_page_address, 0x40000);
    nv::write_field(v, field::tpr_threshold, 3);
    CHECK(nv::recheck_controls(v, kBits, 0x30) == EntryCheck::ok);
    CHECK(nv::recheck_controls(v, kBits, 0x2F) == EntryCheck::tpr_threshold_above_vtpr);
    v = good;
    nv::write_field(v, field::host_rip, u64{1} << 47);
    CHECK(nv::recheck_host_state(v) == EntryCheck::host_rip);
    // Which VMWRITEs make the next entry check everything again: controls and host state but
    // HOST_RSP (no check) and HOST_RIP (checked every time).
    CHECK(nv::changes_entry_checks(field::primary_controls));
    CHECK(nv::changes_entry_checks(field::entry_interruption_info));
    CHECK(nv::changes_entry_checks(field::vpid));
    CHECK(nv::changes_entry_checks(field::host_cr3));
    CHECK(nv::changes_entry_checks(field::host_tr_selector));
    CHECK_FALSE(nv::changes_entry_checks(field::host_rsp));
    CHECK_FALSE(nv::changes_entry_checks(field::host_rip));
    CHECK_FALSE(nv::changes_entry_checks(field::guest_rip));
    CHECK_FALSE(nv::changes_entry_checks(field::guest_cr0));
    CHECK_FALSE(nv::changes_entry_checks(field::exit_reason));
}

TEST_CASE("nested_vmx.guest_fields_vmcs02_keeps_after_an_exit_reach_vmcs12_when_needed") {
    using iv::field::guest_ds_selector, iv::field::guest_gs_base, iv::field::guest_tr_limit;
    // L2's state in vmcs02 at its exit, in fields a VM exit leaves in vmcs02 for later.
    auto exit_with = [](RunningL2& l1, u64 ds) {
        l1.hw.vmcs[1][guest_ds_selector] = ds;
        l1.hw.vmcs[1][guest_gs_base] = 0xFFFF800000001000;
        l1.hw.vmcs[1][guest_tr_limit] = 0x67;
        REQUIRE(!l1.l2_instruction(ExitKind::cpuid, iv::exit_reason::cpuid, 2).stop);
        REQUIRE(l1.reflected(iv::exit_reason::cpuid));
    };
    SECTION("VMREAD") {
        RunningL2 l1;
        exit_with(l1, 0x28);
        CHECK(l1.vmread(guest_ds_selector) == 0x28);
        CHECK(l1.vmread(guest_gs_base) == 0xFFFF800000001000);
    }
    SECTION("a VMWRITE of one keeps L1's value and vmcs02's others") {
        RunningL2 l1;
        exit_with(l1, 0x28);
        REQUIRE(completed(l1.vmwrite(guest_gs_base, 0x5000)));
        CHECK(l1.vmread(guest_gs_base) == 0x5000);
        CHECK(l1.vmread(guest_tr_limit) == 0x67);
        l1.resume_l2();
        CHECK(l1.hw.vmcs[1][guest_gs_base] == 0x5000);
    }
    SECTION("VMCLEAR writes them back") {
        RunningL2 l1;
        exit_with(l1, 0x28);
        REQUIRE(completed(l1.vmclear(kVmcsA)));
        nv::Vmcs12 region = l1.region(kVmcsA);
        CHECK(nv::read_field(region, guest_ds_selector) == 0x28);
        CHECK(nv::read_field(region, guest_gs_base) == 0xFFFF800000001000);
    }
    SECTION("a VMPTRLD of another region writes them back, and the first is whole again") {
        RunningL2 l1;
        exit_with(l1, 0x28);
        REQUIRE(completed(l1.vmptrld(kVmcsB)));
        CHECK(nv::read_field(l1.region(kVmcsA), guest_ds_selector) == 0x28);
        REQUIRE(completed(l1.vmptrld(kVmcsA)));
        l1.hw.vmcs[1][guest_ds_selector] = 0;  // the next entry copies vmcs12 whole
        l1.resume_l2();
        CHECK(l1.hw.vmcs[1][guest_ds_selector] == 0x28);
    }
    SECTION("a hardware entry failure, then an entry that copies vmcs12 whole") {
        RunningL2 l1;
        exit_with(l1, 0x28);
        l1.resume_l2();
        VmExit failed{};
        failed.kind = ExitKind::invalid_state;
        REQUIRE(!l1.l2_exit(failed, 0x80000021).stop);
        CHECK(l1.vmread(guest_ds_selector) == 0x28);
    }
    SECTION("VMXOFF writes them back") {
        RunningL2 l1;
        exit_with(l1, 0x30);
        REQUIRE(completed(l1.simple(iv::exit_reason::vmxoff)));
        CHECK(nv::read_field(l1.region(kVmcsA), guest_ds_selector) == 0x30);
    }
}

TEST_CASE("nested_vmx.hardware_entry_failure_reaches_l1_and_vmlaunch_stays_clear") {
    RunningL2 l1;
    VmExit failed{};
    failed.kind = ExitKind::invalid_state;
    CHECK(!l1.l2_exit(failed, 0x80000021).stop);
    CHECK(l1.reflected(0x80000021));
    CHECK(completed(l1.simple(iv::exit_reason::vmresume)));
    CHECK(l1.error() == 5);  // the VMLAUNCH did not launch
}

TEST_CASE("nested_vmx.shadow_ept_maps_through_l1s_ept_and_reflects_its_refusals") {
    RunningL2 l1(true);
    // L1's EPT at 0x30000: L2-physical 0x40000000 -> L1 0x50000 (read / write), 0x40001000 absent,
    // 0x40002000 write-only (malformed).
    constexpr u64 kRwx = 7, kWb = 6 << 3;
    l1.host.put(0x30000, 0x31000 | kRwx);
    l1.host.put(0x31000 + 8 * 1, 0x32000 | kRwx);
    l1.host.put(0x32000, 0x33000 | kRwx);
    l1.host.put(0x33000, 0x50000 | 3 | kWb);
    l1.host.put(0x33000 + 16, 0x51000 | 2 | kWb);
    auto& v02 = l1.hw.vmcs[1];
    u64 shadow_eptp = v02[iv::field::ept_pointer];
    CHECK(shadow_eptp != l1.hw.controls.l1_eptp);
    CHECK((shadow_eptp & 0x3F) == 0x1E);
    VmExit fault{};
    fault.kind = ExitKind::nested_page_fault;
    fault.npf.guest_physical = 0x40000000;
    CHECK(!l1.l2_exit(fault, iv::exit_reason::ept_violation, 0x182).stop);  // a write, linear valid
    CHECK(l1.hw.running_l2());                                              // fixed up by L0
    // The shadow's leaf is L0's host frame of L1 0x50000, read / write, no execute.
    const u64* root = static_cast<const u64*>(l1.host.pointer(shadow_eptp & ~0xFFFull));
    const u64* pdpt = static_cast<const u64*>(l1.host.pointer(root[0] & ~0xFFFull));
    const u64* pd = static_cast<const u64*>(l1.host.pointer(pdpt[1] & ~0xFFFull));
    const u64* pt = static_cast<const u64*>(l1.host.pointer(pd[0] & ~0xFFFull));
    CHECK((pt[0] & ~0xFFFull) == l1.host.page(0x50000).host);
    CHECK((pt[0] & 7) == 3);
    // A fetch there: a violation with L1's rights (read, write) in bits 5:3.
    CHECK(!l1.l2_exit(fault, iv::exit_reason::ept_violation, 0x184).stop);
    CHECK(l1.reflected(iv::exit_reason::ept_violation));
    CHECK(l1.vmread(iv::field::exit_qualification) == (0x184 | (3 << 3)));
    CHECK(l1.vmread(iv::field::guest_physical_address) == 0x40000000);
    l1.resume_l2();
    fault.npf.guest_physical = 0x40001000;
    CHECK(!l1.l2_exit(fault, iv::exit_reason::ept_violation, 0x181).stop);
    CHECK(l1.reflected(iv::exit_reason::ept_violation));
    CHECK(l1.vmread(iv::field::exit_qualification) == 0x181);
    l1.resume_l2();
    fault.npf.guest_physical = 0x40002000;
    CHECK(!l1.l2_exit(fault, iv::exit_reason::ept_violation, 0x181).stop);
    CHECK(l1.reflected(iv::exit_reason::ept_misconfiguration));
    CHECK(l1.vmread(iv::field::guest_physical_address) == 0x40002000);
    // Outside L1's memory: the domain is stopped, nothing mapped.
    l1.host.put(0x33000 + 24, (u64{1} << 30) | 3 | kWb);
    l1.resume_l2();
    fault.npf.guest_physical = 0x40003000;
    ExitOutcome o = l1.l2_exit(fault, iv::exit_reason::ept_violation, 0x181);
    CHECK(o.stop);
    REQUIRE(o.detail != nullptr);
    CHECK(std::string(o.detail) == "nested VMX: L1's EPT sends L2 outside L1's memory");
}

namespace {

// vmcs12 at kVmcsA changed by `change` before VMLAUNCH (L1 in VMX operation, vmcs A current).
struct LaunchingL1 : VmxL1 {
    nv::Vmcs12 v = runnable_vmcs12();
    LaunchingL1() { hw.vmcs[0][iv::field::guest_efer] = x86_regs::kEferLme | x86_regs::kEferLma; }
    ExitOutcome launch() {
        v.revision = nv::kVmcs12Revision;
        REQUIRE(host.write(kVmcsA, &v, sizeof(v)));
        REQUIRE(completed(vmxon()));
        REQUIRE(completed(vmptrld(kVmcsA)));
        return simple(iv::exit_reason::vmlaunch);
    }
    void set(u32 field, u64 value) { nv::write_field(v, field, value); }
    u64 peek(u64 gpa) {
        u64 value = 0;
        REQUIRE(host.read(gpa, &value, sizeof(value)));
        return value;
    }
    // A list of MSR entries at `gpa`: index, reserved, value.
    void put_entry(u64 gpa, u32 i, u32 index, u64 value, u32 reserved = 0) {
        host.put(gpa + u64{16} * i, index | (u64{reserved} << 32));
        host.put(gpa + u64{16} * i + 8, value);
    }
    bool at_host_rip_with(u64 reason) {
        return !hw.running_l2() && state.rip == 0x7000 && vmread(iv::field::exit_reason) == reason;
    }
    // L2's CPUID exits (the CPU's fields in vmcs02), always L1's.
    ExitOutcome l2_cpuid() {
        VmExit cpuid{};
        cpuid.kind = ExitKind::cpuid;
        cpuid.instruction_length = 2;
        cpuid.vendor_code = iv::exit_reason::cpuid;
        hw.l2_exits(iv::exit_reason::cpuid, 0, 2);
        return run(cpuid);
    }
};

constexpr u64 kEntryList = 0x30000;
constexpr u64 kStoreList = 0x31000;
constexpr u64 kLoadList = 0x32000;
constexpr u32 kMsrLoadingFailure = iv::exit_reason::msr_loading | iv::exit_reason::entry_failure;

}  // namespace

TEST_CASE("nested_vmx.preemption_timer_counts_for_l2_and_expires_into_l1") {
    using namespace iv;
    LaunchingL1 l1;
    l1.set(field::pin_based_controls, nv::capabilities().true_pin.must_be_one | pin::preemption_timer);
    l1.set(field::exit_controls, nv::capabilities().true_exit.must_be_one | exit_ctl::host_address_space_size |
                                     exit_ctl::save_preemption_timer);
    l1.set(field::preemption_timer_value, 100);
    REQUIRE(completed(l1.launch()));
    REQUIRE(l1.hw.running_l2());
    u32 rate = static_cast<u32>(nv::capabilities().misc & misc::preemption_timer_rate_mask);
    CHECK(l1.hw.timer_armed);
    CHECK(l1.hw.timer_ticks == (u64{100} << rate));
    // An exit before expiry saves what is left, rounded up to a whole count.
    l1.hw.timer_left = (u64{40} << rate) - 1;
    CHECK(!l1.l2_cpuid().stop);
    CHECK(l1.at_host_rip_with(exit_reason::cpuid));
    CHECK(l1.vmread(field::preemption_timer_value) == 40);
    // VMRESUME counts on from the saved value; the timer's exit (the backend's ExitKind::unknown,
    // reason 52) is L1's, with 0 saved.
    REQUIRE(completed(l1.simple(exit_reason::vmresume)));
    CHECK(l1.hw.timer_ticks == (u64{40} << rate));
    l1.hw.timer_left = 0;
    VmExit expired{};
    expired.kind = ExitKind::unknown;
    expired.vendor_code = exit_reason::preemption_timer;
    l1.hw.l2_exits(exit_reason::preemption_timer);
    CHECK(!l1.run(expired).stop);
    CHECK(l1.at_host_rip_with(exit_reason::preemption_timer));
    CHECK(l1.vmread(field::preemption_timer_value) == 0);
    // Without the timer control nothing is armed, and a reason-52 exit is not L1's to take.
    REQUIRE(completed(l1.vmwrite(field::exit_controls,
                                 nv::capabilities().true_exit.must_be_one | exit_ctl::host_address_space_size)));
    REQUIRE(completed(l1.vmwrite(field::pin_based_controls, nv::capabilities().true_pin.must_be_one)));
    REQUIRE(completed(l1.simple(exit_reason::vmresume)));
    CHECK(l1.hw.running_l2());
    CHECK(!l1.hw.timer_armed);
    l1.hw.l2_exits(exit_reason::preemption_timer);
    CHECK(l1.run(expired).stop);
}

TEST_CASE("nested_vmx.entry_msr_load_list_loads_l2s_msrs") {
    using namespace iv;
    LaunchingL1 l1;
    l1.set(field::entry_msr_load_count, 2);
    l1.set(field::entry_msr_load_address, kEntryList);
    l1.put_entry(kEntryList, 0, x86_regs::kMsrLstar, 0xFFFF800000001000);
    l1.put_entry(kEntryList, 1, x86_regs::kMsrSysenterEsp, 0x5000);
    REQUIRE(completed(l1.launch()));
    CHECK(l1.hw.running_l2());
    CHECK(l1.hw.msrs[x86_regs::kMsrLstar] == 0xFFFF800000001000);
    CHECK(l1.hw.msrs[x86_regs::kMsrSysenterEsp] == 0x5000);
    CHECK(l1.hw.msr_level == x86::vmx::Level::l2);
}

TEST_CASE("nested_vmx.entry_msr_load_failures_are_entry_failures_with_the_entry_number") {
    using namespace iv;
    struct Case {
        const char* what;
        u32 index;
        u32 reserved;
    };
    const Case cases[] = {
        {"FS base", x86_regs::kMsrFsBase, 0},
        {"GS base", x86_regs::kMsrGsBase, 0},
        {"an x2APIC register", 0x808, 0},
        {"SMBASE", x86_regs::kMsrSmbase, 0},
        {"SMM_MONITOR_CTL", x86_regs::kMsrSmmMonitorCtl, 0},
        {"reserved bits set", x86_regs::kMsrStar, 1},
        {"an MSR L1's WRMSR could not write", 0x10, 0},
    };
    for (const Case& c : cases) {
        INFO(c.what);
        LaunchingL1 l1;
        l1.set(field::entry_msr_load_count, 3);
        l1.set(field::entry_msr_load_address, kEntryList);
        l1.put_entry(kEntryList, 0, x86_regs::kMsrLstar, 0x1234);
        l1.put_entry(kEntryList, 1, c.index, 0x77, c.reserved);
        l1.put_entry(kEntryList, 2, x86_regs::kMsrStar, 0x99);
        REQUIRE(completed(l1.launch()));
        CHECK(l1.at_host_rip_with(kMsrLoadingFailure));
        CHECK(l1.vmread(field::exit_qualification) == 2);
        CHECK(l1.hw.msrs[x86_regs::kMsrLstar] == 0x1234);  // the entries before it stay loaded
        CHECK(l1.hw.msrs[x86_regs::kMsrStar] == 0);
        CHECK(completed(l1.simple(exit_reason::vmresume)));
        CHECK(l1.error() == 5);  // the failed VMLAUNCH did not launch
    }
    SECTION("a list beyond L1's memory fails at its first entry") {
        LaunchingL1 l1;
        l1.set(field::entry_msr_load_count, 1);
        l1.set(field::entry_msr_load_address, FakeNestedHost::kL1Bytes);
        REQUIRE(completed(l1.launch()));
        CHECK(l1.at_host_rip_with(kMsrLoadingFailure));
        CHECK(l1.vmread(field::exit_qualification) == 1);
    }
    SECTION("a list longer than IA32_VMX_MISC recommends fails after the last entry it allows") {
        LaunchingL1 l1;
        u32 limit = nv::msr_list_limit();
        CHECK(limit == 512);
        for (u32 i = 0; i < limit; ++i) l1.put_entry(kEntryList, i, x86_regs::kMsrStar, i);
        l1.set(field::entry_msr_load_count, limit + 1);
        l1.set(field::entry_msr_load_address, kEntryList);
        REQUIRE(completed(l1.launch()));
        CHECK(l1.at_host_rip_with(kMsrLoadingFailure));
        CHECK(l1.vmread(field::exit_qualification) == limit + 1);
    }
}

TEST_CASE("nested_vmx.exit_msr_lists_store_l2s_and_load_l1s") {
    using namespace iv;
    LaunchingL1 l1;
    l1.set(field::exit_msr_store_count, 1);
    l1.set(field::exit_msr_store_address, kStoreList);
    l1.set(field::exit_msr_load_count, 1);
    l1.set(field::exit_msr_load_address, kLoadList);
    l1.put_entry(kStoreList, 0, x86_regs::kMsrLstar, 0);
    l1.put_entry(kLoadList, 0, x86_regs::kMsrLstar, 0xFFFF800000002000);
    REQUIRE(completed(l1.launch()));
    l1.hw.msrs[x86_regs::kMsrLstar] = 0x4444;  // L2 set it
    CHECK(!l1.l2_cpuid().stop);
    CHECK(l1.at_host_rip_with(exit_reason::cpuid));
    CHECK(l1.peek(kStoreList + 8) == 0x4444);
    CHECK(l1.hw.msrs[x86_regs::kMsrLstar] == 0xFFFF800000002000);
    CHECK(l1.hw.msr_level == x86::vmx::Level::l1);
    SECTION("a store entry that cannot be stored is a VMX abort: the domain stops") {
        l1.put_entry(kStoreList, 0, x86_regs::kMsrSmbase, 0);
        REQUIRE(completed(l1.simple(exit_reason::vmresume)));
        ExitOutcome o = l1.l2_cpuid();
        CHECK(o.stop);
        REQUIRE(o.detail != nullptr);
        CHECK(std::string(o.detail) == "nested VMX: VMX abort: L1's VM-exit MSR-store list could not be stored");
    }
    SECTION("a load entry that cannot be loaded is a VMX abort: the domain stops") {
        l1.put_entry(kLoadList, 0, x86_regs::kMsrFsBase, 0);
        REQUIRE(completed(l1.simple(exit_reason::vmresume)));
        ExitOutcome o = l1.l2_cpuid();
        CHECK(o.stop);
        REQUIRE(o.detail != nullptr);
        CHECK(std::string(o.detail) == "nested VMX: VMX abort: L1's VM-exit MSR-load list could not be loaded");
    }
}

TEST_CASE("nested_vmx.msr_lists_load_and_store_efer_as_its_wrmsr_would") {
    using namespace iv;
    using x86_regs::kEferLma;
    using x86_regs::kEferLme;
    using x86_regs::kEferNxe;
    using x86_regs::kEferSce;
    LaunchingL1 l1;
    l1.set(field::entry_msr_load_count, 1);
    l1.set(field::entry_msr_load_address, kEntryList);
    l1.put_entry(kEntryList, 0, x86_regs::kMsrEfer, kEferLme | kEferNxe | kEferSce);  // LMA is the CPU's
    l1.set(field::exit_msr_store_count, 1);
    l1.set(field::exit_msr_store_address, kStoreList);
    l1.put_entry(kStoreList, 0, x86_regs::kMsrEfer, 0);
    l1.set(field::exit_msr_load_count, 1);
    l1.set(field::exit_msr_load_address, kLoadList);
    l1.put_entry(kLoadList, 0, x86_regs::kMsrEfer, kEferLme | kEferSce);  // L1 without NXE
    REQUIRE(completed(l1.launch()));
    REQUIRE(l1.hw.running_l2());
    CHECK(l1.hw.vmcs[1][field::guest_efer] == (kEferLme | kEferLma | kEferNxe | kEferSce));
    CHECK(l1.state.efer == (kEferLme | kEferLma | kEferNxe | kEferSce));  // L2's, as the kernel runs it
    REQUIRE(!l1.l2_cpuid().stop);
    CHECK(l1.at_host_rip_with(exit_reason::cpuid));
    CHECK(l1.peek(kStoreList + 8) == (kEferLme | kEferLma | kEferNxe | kEferSce));
    CHECK(l1.state.efer == (kEferLme | kEferLma | kEferSce));  // L1's, which its next entry loads
    SECTION("LME cleared under paging fails the entry, as L2's WRMSR would #GP") {
        l1.put_entry(kEntryList, 0, x86_regs::kMsrEfer, kEferNxe);
        REQUIRE(completed(l1.simple(exit_reason::vmresume)));
        CHECK(l1.at_host_rip_with(kMsrLoadingFailure));
        CHECK(l1.vmread(field::exit_qualification) == 1);
    }
    SECTION("a bit not offered (SVME) fails the entry") {
        l1.put_entry(kEntryList, 0, x86_regs::kMsrEfer, kEferLme | (u64{1} << 12));
        REQUIRE(completed(l1.simple(exit_reason::vmresume)));
        CHECK(l1.at_host_rip_with(kMsrLoadingFailure));
        CHECK(l1.vmread(field::exit_qualification) == 1);
    }
}

TEST_CASE("nested_vmx.msr_lists_reach_the_msrs_a_device_of_the_domain_serves") {
    // MTRR_DEF_TYPE is a device's (a PC domain's MSR file), not the vCPU's: the lists load and
    // store it through the kernel's Host for this vCPU, as its WRMSR / RDMSR would reach it.
    using namespace iv;
    constexpr u32 kDeviceMsr = x86_regs::kMsrMtrrDefType;
    LaunchingL1 l1;
    l1.host.device_msrs[kDeviceMsr] = 0x806;  // L1's
    l1.host.device_msr_reserved = ~u64{0xCFF};
    l1.set(field::entry_msr_load_count, 1);
    l1.set(field::entry_msr_load_address, kEntryList);
    l1.put_entry(kEntryList, 0, kDeviceMsr, 0xC00);  // L2's
    l1.set(field::exit_msr_store_count, 1);
    l1.set(field::exit_msr_store_address, kStoreList);
    l1.put_entry(kStoreList, 0, kDeviceMsr, 0);
    l1.set(field::exit_msr_load_count, 1);
    l1.set(field::exit_msr_load_address, kLoadList);
    l1.put_entry(kLoadList, 0, kDeviceMsr, 0x806);
    REQUIRE(completed(l1.launch()));
    REQUIRE(l1.hw.running_l2());
    CHECK(l1.host.device_msrs[kDeviceMsr] == 0xC00);
    CHECK(l1.host.device_msr_vcpu == &l1.vcpu);
    l1.host.device_msrs[kDeviceMsr] = 0xC06;  // L2's WRMSR, which L1 let through
    REQUIRE(!l1.l2_cpuid().stop);
    CHECK(l1.at_host_rip_with(exit_reason::cpuid));
    CHECK(l1.peek(kStoreList + 8) == 0xC06);
    CHECK(l1.host.device_msrs[kDeviceMsr] == 0x806);
    SECTION("a value the device refuses fails the entry at that entry") {
        REQUIRE(completed(l1.vmwrite(field::entry_msr_load_count, 2)));
        l1.put_entry(kEntryList, 1, kDeviceMsr, 0x1000);  // bit 12: reserved
        REQUIRE(completed(l1.simple(exit_reason::vmresume)));
        CHECK(l1.at_host_rip_with(kMsrLoadingFailure));
        CHECK(l1.vmread(field::exit_qualification) == 2);
    }
    SECTION("an MSR no device serves and the vCPU does not own fails the entry") {
        l1.put_entry(kEntryList, 0, 0x4000'0000, 0);
        REQUIRE(completed(l1.simple(exit_reason::vmresume)));
        CHECK(l1.at_host_rip_with(kMsrLoadingFailure));
        CHECK(l1.vmread(field::exit_qualification) == 1);
    }
    SECTION("a store of an MSR no device serves is a VMX abort") {
        l1.put_entry(kStoreList, 0, 0x4000'0000, 0);
        REQUIRE(completed(l1.simple(exit_reason::vmresume)));
        ExitOutcome o = l1.l2_cpuid();
        CHECK(o.stop);
        REQUIRE(o.detail != nullptr);
        CHECK(std::string(o.detail) == "nested VMX: VMX abort: L1's VM-exit MSR-store list could not be stored");
    }
}

TEST_CASE("nested_vmx.vmcs_link_pointer_is_all_ones_or_a_region_with_our_revision") {
    // SDM 26.3.1.5: all ones, or a page-aligned region inside MAXPHYADDR, not the current VMCS,
    // holding our revision with the shadow-VMCS indicator clear ("VMCS shadowing" is not offered).
    // Anything else fails the entry: a VM exit into L1 with reason 0x80000021, qualification 4.
    constexpr u64 kLinkRegion = 0x13000;
    struct Case {
        u64 pointer;
        u32 revision;  // at kLinkRegion
        bool enters;
    };
    const Case cases[] = {
        {~u64{0}, 0, true},
        {kLinkRegion, nv::kVmcs12Revision, true},
        {kLinkRegion, nv::kVmcs12Revision | 0x80000000, false},
        {kLinkRegion, nv::kVmcs12Revision + 1, false},
        {kLinkRegion + 8, nv::kVmcs12Revision, false},
        {u64{1} << 39, nv::kVmcs12Revision, false},              // beyond MAXPHYADDR
        {kVmcsA, nv::kVmcs12Revision, false},                    // the current VMCS
        {FakeNestedHost::kL1Bytes, nv::kVmcs12Revision, false},  // not L1's memory: reads all ones
    };
    for (const Case& c : cases) {
        CAPTURE(c.pointer, c.revision);
        VmxL1 l1;
        nv::Vmcs12 v = runnable_vmcs12(false);
        nv::write_field(v, iv::field::vmcs_link_pointer, c.pointer);
        REQUIRE(l1.host.write(kVmcsA, &v, sizeof(v)));
        l1.put_revision(kLinkRegion, c.revision);
        REQUIRE(completed(l1.vmxon()));
        REQUIRE(completed(l1.vmptrld(kVmcsA)));
        CHECK(!l1.simple(iv::exit_reason::vmlaunch).stop);
        CHECK(l1.hw.running_l2() == c.enters);
        if (c.enters) continue;
        CHECK(l1.vmread(iv::field::exit_reason) == 0x80000021);
        CHECK(l1.vmread(iv::field::exit_qualification) == 4);
    }
}

TEST_CASE("nested_vmx.guest_cr4_with_a_feature_l0_does_not_offer_is_invalid_guest_state") {
    RunningL2 l1;
    l1.l2_instruction(ExitKind::hypercall, iv::exit_reason::vmcall, 3);
    REQUIRE(l1.reflected(iv::exit_reason::vmcall));
    // PKE is in the table's FIXED1, but this L0 does not offer it: L2 may not have it.
    l1.hw.controls.cr4_mask |= x86_regs::kCr4Pke;
    l1.vmwrite(iv::field::guest_cr4, kCr4 | x86_regs::kCr4Pke);
    CHECK(!l1.simple(iv::exit_reason::vmresume).stop);
    CHECK(!l1.hw.running_l2());
    CHECK(l1.vmread(iv::field::exit_reason) == 0x80000021);
    l1.hw.controls.cr4_mask &= ~x86_regs::kCr4Pke;  // offered: the same entry runs L2
    CHECK(!l1.simple(iv::exit_reason::vmresume).stop);
    CHECK(l1.hw.running_l2());
}

TEST_CASE("nested_vmx.l2_changing_a_cr_bit_only_l0_owns_gets_gp") {
    // MOV to CR4 from RAX (qualification: CR 4, access 0, register 0) clearing VMXE, which L1
    // leaves to L2 (its CR4 mask is 0) and L0 owns: #GP(0) in L2, nothing changed.
    constexpr u64 kMovToCr4FromRax = 4;
    RunningL2 l1;
    l1.state.rax() = kCr4 & ~x86_regs::kCr4Vmxe;
    u64 rip = l1.state.rip;
    VmExit mov{};
    mov.kind = ExitKind::unknown;
    mov.instruction_length = 3;
    ExitOutcome o = l1.l2_exit(mov, iv::exit_reason::cr_access, kMovToCr4FromRax);
    CHECK(!o.stop);
    CHECK(l1.hw.running_l2());
    CHECK(l1.hw.injected_vector == 13);
    CHECK(l1.hw.injected_error == 0);
    CHECK(l1.state.rip == rip);
    // CR0.NE likewise, now with #GP in L1's exception bitmap: the exception is L1's exit.
    constexpr u64 kMovToCr0FromRax = 0;
    l1.hw.injected_vector = -1;
    l1.l2_instruction(ExitKind::hypercall, iv::exit_reason::vmcall, 3);
    REQUIRE(l1.reflected(iv::exit_reason::vmcall));
    l1.vmwrite(iv::field::exception_bitmap, (1u << 6) | (1u << 13));
    l1.resume_l2();
    rip = l1.state.rip;
    l1.state.rax() = kCr0 & ~x86_regs::kCr0Ne;
    o = l1.l2_exit(mov, iv::exit_reason::cr_access, kMovToCr0FromRax);
    CHECK(!o.stop);
    CHECK(l1.hw.injected_vector == -1);
    CHECK(l1.reflected(iv::exit_reason::exception_or_nmi));
    CHECK(l1.vmread(iv::field::exit_interruption_info) == 0x80000b0d);
    CHECK(l1.vmread(iv::field::exit_interruption_error_code) == 0);
    CHECK(l1.vmread(iv::field::guest_rip) == rip);
}

TEST_CASE("nested_vmx.pae_l2_without_l1s_ept_gets_its_pdptes_from_l1s_memory") {
    VmxL1 l1;
    nv::Vmcs12 v = runnable_vmcs12(false);
    // 32-bit PAE paging: CR0.PG and CR4.PAE without "IA-32e mode guest".
    nv::write_field(v, iv::field::entry_controls, nv::capabilities().true_entry.must_be_one);
    nv::write_field(v, iv::field::guest_cr3, 0x2040);
    REQUIRE(l1.host.write(kVmcsA, &v, sizeof(v)));
    u64 pdptes[4] = {0x3001, 0, 0x5001, 0x6001};
    REQUIRE(l1.host.write(0x2040, pdptes, sizeof(pdptes)));
    l1.hw.vmcs[0][iv::field::guest_efer] = x86_regs::kEferLme | x86_regs::kEferLma;
    REQUIRE(completed(l1.vmxon()));
    REQUIRE(completed(l1.vmptrld(kVmcsA)));
    REQUIRE(completed(l1.simple(iv::exit_reason::vmlaunch)));
    REQUIRE(l1.hw.running_l2());
    // vmcs02 runs under L0's EPT, where the CPU takes the PDPTEs from the fields: L1's memory's.
    CHECK(l1.hw.vmcs[1][iv::field::guest_pdpte0] == 0x3001);
    CHECK(l1.hw.vmcs[1][iv::field::guest_pdpte1] == 0);
    CHECK(l1.hw.vmcs[1][iv::field::guest_pdpte2] == 0x5001);
    CHECK(l1.hw.vmcs[1][iv::field::guest_pdpte3] == 0x6001);
    // A present PDPTE with a reserved bit (bit 1): the entry fails, qualification 2, L2 not run.
    VmExit vmcall{};
    vmcall.kind = ExitKind::hypercall;
    vmcall.instruction_length = 3;
    vmcall.vendor_code = iv::exit_reason::vmcall;
    l1.hw.l2_exits(iv::exit_reason::vmcall, 0, 3);
    REQUIRE(!l1.run(vmcall).stop);
    pdptes[1] = 0x4003;
    REQUIRE(l1.host.write(0x2040, pdptes, sizeof(pdptes)));
    CHECK(!l1.simple(iv::exit_reason::vmresume).stop);
    CHECK(!l1.hw.running_l2());
    CHECK(l1.vmread(iv::field::exit_reason) == 0x80000021);
    CHECK(l1.vmread(iv::field::exit_qualification) == 2);
    // Not present, the same bit is nothing: L2 runs.
    pdptes[1] = 0x4002;
    REQUIRE(l1.host.write(0x2040, pdptes, sizeof(pdptes)));
    CHECK(!l1.simple(iv::exit_reason::vmresume).stop);
    CHECK(l1.hw.running_l2());
    CHECK(l1.hw.vmcs[1][iv::field::guest_pdpte1] == 0x4002);
}

TEST_CASE("nested_vmx.pae_l2_under_l1s_ept_gets_the_pdptes_l1_wrote") {
    VmxL1 l1;
    nv::Vmcs12 v = runnable_vmcs12(true);
    nv::write_field(v, iv::field::entry_controls, nv::capabilities().true_entry.must_be_one);
    nv::write_field(v, iv::field::guest_pdpte0, 0x7001);
    REQUIRE(l1.host.write(kVmcsA, &v, sizeof(v)));
    u64 in_memory = 0x3001;
    REQUIRE(l1.host.write(0x2000, &in_memory, sizeof(in_memory)));
    l1.hw.vmcs[0][iv::field::guest_efer] = x86_regs::kEferLme | x86_regs::kEferLma;
    REQUIRE(completed(l1.vmxon()));
    REQUIRE(completed(l1.vmptrld(kVmcsA)));
    REQUIRE(completed(l1.simple(iv::exit_reason::vmlaunch)));
    REQUIRE(l1.hw.running_l2());
    CHECK(l1.hw.vmcs[1][iv::field::guest_pdpte0] == 0x7001);
}
