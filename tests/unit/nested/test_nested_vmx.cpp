// Nested VMX (components/nested/vmx): the capability MSRs, the vmcs12 layout, the memory
// operands and every VMX instruction's checks, each failure case alone, driven through the
// kernel's exit handler with a fake kernel Host (1 MiB of L1 RAM) and a fake VMX backend.
#include <catch2/catch.hpp>
#include <cstring>
#include <set>
#include <string>

#include "../../../components/nested/vmx/vmcs12.hpp"
#include "../../../components/nested/vmx/vmx_capabilities.hpp"
#include "../../../components/nested/vmx/vmx_entry_checks.hpp"
#include "../../../components/nested/vmx/vmx_operand.hpp"
#include "fake_nested_host.hpp"
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
constexpr u64 kCr0 = 0x80000031;   // PG, NE, ET, PE
constexpr u64 kCr4 = x86_regs::kCr4Pae | x86_regs::kCr4Vmxe;
constexpr u32 kFlat64Code = 0xA09B, kFlatData = 0xC093;
constexpr u32 kDs = 3;

// A memory operand [RAX + displacement] through DS, 64-bit addressing, field/type register RCX.
constexpr u32 info_memory(u32 segment = kDs, u32 address_size = 2, u32 reg2 = 1) {
    return (address_size << 7) | (segment << 15) | (1u << 22) | (0u << 23) | (reg2 << 28);
}
// VMREAD / VMWRITE with a register operand (reg1) and the field in reg2.
constexpr u32 info_register(u32 reg1, u32 reg2) { return (reg1 << 3) | (1u << 10) | (reg2 << 28); }

class FakeVmxHardware final : public x86::vmx::NestedHardware {
public:
    x86::vmx::InstructionExit exit{0, info_memory()};
    x86::vmx::GuestSegment segments[6] = {{0, 0xFFFFFFFF, kFlatData}, {0, 0xFFFFFFFF, kFlat64Code},
                                          {0, 0xFFFFFFFF, kFlatData}, {0, 0xFFFFFFFF, kFlatData},
                                          {0, 0xFFFFFFFF, kFlatData}, {0, 0xFFFFFFFF, kFlatData}};
    u64 l1_cr4 = kCr4;
    u64 blocking = 0;
    bool paging_maps = true;  // identity, else nothing
    int injected_vector = -1;

    x86::vmx::InstructionExit instruction_exit() override { return exit; }
    x86::vmx::GuestSegment segment(u32 index) override { return segments[index]; }
    u64 cr4() override { return l1_cr4; }
    u64 interruptibility() override { return blocking; }
    bool translate(u64 linear, u64, u64& gpa) override {
        gpa = linear;
        return paging_maps;
    }
    void inject_exception(u8 vector, u32) override { injected_vector = vector; }
    u32 physical_address_bits() override { return 39; }
};

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
    CHECK(nv::highest_field_index() == 0x17);  // the preemption timer value, 0x482E
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

TEST_CASE("nested_vmx.operand_not_mapped_stops_the_domain") {
    VmxL1 l1;
    l1.hw.paging_maps = false;
    ExitOutcome o = l1.vmxon();
    CHECK(o.stop);
    REQUIRE(o.detail != nullptr);
    CHECK(std::string(o.detail).find("not mapped by L1's page tables") != std::string::npos);
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

TEST_CASE("nested_vmx.vmlaunch_entry_check_errors_and_the_report") {
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
    ExitOutcome o = l1.simple(iv::exit_reason::vmlaunch);
    CHECK(o.stop);
    REQUIRE(o.detail != nullptr);
    CHECK(std::string(o.detail) == "nested VMX: running L2 is not implemented yet");
}

TEST_CASE("nested_vmx.entry_checks_each_fail_alone") {
    using namespace iv;
    using nv::EntryCheck;
    constexpr u32 kBits = 39;
    nv::Vmcs12 good = good_vmcs12();
    REQUIRE(nv::check_controls(good, kBits) == EntryCheck::ok);
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
        {EntryCheck::primary_controls, field::primary_controls, primary_ok | (1u << 21)},              // TPR shadow
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
        {EntryCheck::exit_controls, field::exit_controls, caps.true_exit.must_be_one | exit_ctl::acknowledge_interrupt},
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
        EntryCheck got = nv::check_controls(v, kBits);
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
