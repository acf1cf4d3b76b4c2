#include <catch2/catch.hpp>

#include "nestor/x86/vmx/vmx_logic.hpp"

using namespace nestor;
using namespace nestor::x86::vmx;

namespace {
constexpr u64 msr_value(u32 allowed0, u32 allowed1) { return (u64{allowed1} << 32) | allowed0; }
}  // namespace

TEST_CASE("vmx_controls.required_bits_are_added") {
    // Pin-based default-1 bits 1, 2, 4 must be 1; bits 0, 3, 6 may be 1.
    u64 msr = msr_value(0x16, 0x5F);
    auto r = adjust_controls(pin::external_interrupt_exiting | pin::nmi_exiting, msr);
    REQUIRE(r.ok());
    CHECK(*r == (0x16u | 0x1u | 0x8u));
}

TEST_CASE("vmx_controls.wanted_bit_not_allowed_fails") {
    u64 msr = msr_value(0x16, 0x1F);  // no preemption timer (bit 6)
    auto r = adjust_controls(pin::external_interrupt_exiting | pin::preemption_timer, msr);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == ControlError::not_allowed);
}

TEST_CASE("vmx_controls.nothing_wanted_gives_the_defaults") {
    auto r = adjust_controls(0, msr_value(0x0401E172, 0xFFF9FFFE));
    REQUIRE(r.ok());
    CHECK(*r == 0x0401E172u);
}

TEST_CASE("vmx_controls.inconsistent_msr_fails") {
    auto r = adjust_controls(0, msr_value(0x3, 0x1));  // bit 1 required but not allowed
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == ControlError::inconsistent_msr);
}

TEST_CASE("vmx_controls.every_allowed_bit_can_be_wanted") {
    u64 msr = msr_value(0x00000010, 0xFFFFFFFF);
    for (u32 bit = 0; bit < 32; ++bit) {
        auto r = adjust_controls(1u << bit, msr);
        REQUIRE(r.ok());
        CHECK(*r == ((1u << bit) | 0x10u));
    }
}

TEST_CASE("vmx_controls.true_msrs_are_used_when_basic_bit_55_is_set") {
    const u64 basic_plain = 0x00DA040000000004ull & ~basic::true_controls;
    const u64 basic_true = basic_plain | basic::true_controls;
    CHECK(control_msr(basic_plain, vmx_msr::vmx_procbased_ctls, vmx_msr::vmx_true_procbased_ctls) ==
          vmx_msr::vmx_procbased_ctls);
    CHECK(control_msr(basic_true, vmx_msr::vmx_procbased_ctls, vmx_msr::vmx_true_procbased_ctls) ==
          vmx_msr::vmx_true_procbased_ctls);
    CHECK(control_msr(basic_true, vmx_msr::vmx_pinbased_ctls, vmx_msr::vmx_true_pinbased_ctls) == 0x48D);
    CHECK(control_msr(basic_true, vmx_msr::vmx_exit_ctls, vmx_msr::vmx_true_exit_ctls) == 0x48F);
    CHECK(control_msr(basic_true, vmx_msr::vmx_entry_ctls, vmx_msr::vmx_true_entry_ctls) == 0x490);
}

TEST_CASE("vmx_controls.true_msr_lets_default1_bits_be_cleared") {
    // Primary controls: the plain MSR forces CR3-load/store exiting (bits 15, 16); the TRUE_ MSR
    // does not. The same wanted value adjusts differently.
    const u32 wanted =
        primary::hlt_exiting | primary::use_io_bitmaps | primary::use_msr_bitmaps | primary::activate_secondary;
    auto plain = adjust_controls(wanted, msr_value(0x0401E172, 0xFFFFFFFE));
    auto true_ = adjust_controls(wanted, msr_value(0x04006172, 0xFFFFFFFE));
    REQUIRE(plain.ok());
    REQUIRE(true_.ok());
    CHECK((*plain & primary::cr3_load_exiting) != 0);
    CHECK((*true_ & primary::cr3_load_exiting) == 0);
    CHECK((*true_ & wanted) == wanted);
}

TEST_CASE("vmx_controls.controls_allowed_checks_the_high_half") {
    u64 msr = msr_value(0, secondary::enable_ept | secondary::unrestricted_guest);
    CHECK(controls_allowed(msr, secondary::enable_ept));
    CHECK(controls_allowed(msr, secondary::enable_ept | secondary::unrestricted_guest));
    CHECK_FALSE(controls_allowed(msr, secondary::enable_vpid));
    CHECK_FALSE(controls_allowed(msr, secondary::enable_ept | secondary::enable_vpid));
}

TEST_CASE("vmx_controls.guest_cr0_unrestricted_real_mode") {
    // Typical FIXED0 = PE | NE | PG, FIXED1 = all low bits.
    CrFixed fixed{0x80000021, 0xFFFFFFFF};
    GuestCr cr{};
    REQUIRE(guest_control_register(kCr0Et, fixed, kCr0Pe | kCr0Pg, cr));
    CHECK(cr.value == (kCr0Et | kCr0Ne));  // PE and PG exempt, NE forced
    CHECK(cr.mask == kCr0Ne);
    CHECK(cr.shadow == kCr0Et);  // the guest reads NE = 0
    // Without exemption PE and PG are forced too.
    REQUIRE(guest_control_register(kCr0Et, fixed, 0, cr));
    CHECK(cr.value == (kCr0Et | kCr0Ne | kCr0Pe | kCr0Pg));
}

TEST_CASE("vmx_controls.guest_cr4_hides_vmxe") {
    CrFixed fixed{kCr4Vmxe, 0x003727FF};
    GuestCr cr{};
    REQUIRE(guest_control_register(kCr4Pae, fixed, 0, cr));
    CHECK(cr.value == (kCr4Pae | kCr4Vmxe));
    CHECK(cr.mask == kCr4Vmxe);
    CHECK(cr.shadow == kCr4Pae);
    CHECK_FALSE(guest_control_register(u64{1} << 30, fixed, 0, cr));  // a bit FIXED1 forbids
}

TEST_CASE("vmx_controls.host_control_registers") {
    u64 out = 0;
    CHECK(host_control_register(0x80000011, CrFixed{0x80000021, 0xFFFFFFFF}, out));
    CHECK(out == 0x80000031);  // NE added (Bochs needs it before VMXON)
    CHECK_FALSE(host_control_register(u64{1} << 30, CrFixed{0, 0x3FFFFFFF}, out));
}
