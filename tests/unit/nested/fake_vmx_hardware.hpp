// A fake VMX backend for the nested VMX component (x86::vmx::NestedHardware): vmcs01 and vmcs02 as
// maps of fields, L1's paging as identity (or nothing), injected events and MSRs recorded. Shared
// by the unit tests (test_nested_vmx.cpp) and the fuzzer (tests/fuzz/nested_vmx_fuzz.cpp).
#pragma once

#include <map>

#include "nestor/arch/vmx_vmcs.hpp"
#include "nestor/arch/x86_regs.hpp"
#include "nestor/virt/vcpu_state.hpp"
#include "nestor/x86/vmx/nested_hardware.hpp"

namespace nested_test {

using namespace nestor;
namespace iv = nestor::intel_vmx;

constexpr u64 kCr0 = 0x80000031;  // PG, NE, ET, PE
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
    u32 injected_error = 0;
    u64 injected_cr2 = 0;
    u64 unmapped_from = ~u64{0};  // L1's paging maps nothing at or above this linear address
    u64 pinned_cr0 = 0, pinned_cr4 = 0;

    x86::vmx::InstructionExit instruction_exit() override { return exit; }
    x86::vmx::GuestSegment segment(u32 index) override { return segments[index]; }
    u64 cr4() override { return l1_cr4; }
    u64 interruptibility() override { return blocking; }
    x86::LinearTranslation translate(u64 linear, u64, bool write) override {
        if (linear >= unmapped_from) return {x86::LinearFault::page_fault, 0, write ? x86::kPageFaultWrite : 0u};
        if (!paging_maps) return {x86::LinearFault::not_memory, 0, 0};
        return {x86::LinearFault::none, linear, 0};
    }
    void inject_exception(u8 vector, u32 error) override {
        injected_vector = vector;
        injected_error = error;
    }
    void inject_page_fault(u64 linear, u32 error) override {
        inject_exception(14, error);
        injected_cr2 = linear;
    }
    u32 physical_address_bits() override { return 39; }
    void pin_control_bits(u64 cr0, u64 cr4) override {
        pinned_cr0 = cr0;
        pinned_cr4 = cr4;
    }

    // Running L2: two VMCSs as maps of fields, the kernel's state loaded from the one that runs.
    x86::vmx::L0Controls controls{};
    std::map<u32, u64> vmcs[2];
    u8 l0_msr_bitmap[4096] = {};
    u8 merged_msr_bitmap[4096] = {};
    x86::vmx::L1ControlState l1_control{};
    u64 generation = 0;
    int flushes = 0;
    FakeVmxHardware() {
        controls.pin = iv::pin::external_interrupt_exiting | iv::pin::nmi_exiting | iv::pin::virtual_nmis;
        controls.primary = iv::primary::hlt_exiting | iv::primary::use_io_bitmaps | iv::primary::use_msr_bitmaps |
                           iv::primary::activate_secondary;
        controls.secondary = iv::secondary::enable_ept | iv::secondary::enable_vpid |
                             iv::secondary::unrestricted_guest | iv::secondary::enable_rdtscp;
        controls.exit = iv::exit_ctl::host_address_space_size | iv::exit_ctl::save_efer | iv::exit_ctl::load_efer;
        controls.entry = iv::entry_ctl::load_efer;
        controls.exception_bitmap = (1u << 1) | (1u << 17) | (1u << 18);
        controls.cr0_fixed0 = x86_regs::kCr0Pe | x86_regs::kCr0Ne | x86_regs::kCr0Pg;
        controls.cr4_fixed0 = x86_regs::kCr4Vmxe;
        controls.cr0_mask = x86_regs::kCr0Ne;
        controls.cr4_mask = x86_regs::kCr4Vmxe;
        controls.l1_eptp = 0xAAA01E;
        controls.empty_eptp = 0xBBB01E;
        controls.io_bitmap_a = 0x1000;
        controls.io_bitmap_b = 0x2000;
        controls.l0_msr_bitmap = l0_msr_bitmap;
        controls.merged_msr_bitmap = merged_msr_bitmap;
        controls.merged_msr_bitmap_pa = 0x3000;
        controls.l2_vpid = 7;
        controls.load_efer = controls.save_efer = true;
    }
    std::map<u32, u64>& of(x86::vmx::Level level) { return vmcs[level == x86::vmx::Level::l2 ? 1 : 0]; }
    const x86::vmx::L0Controls& l0_controls() override { return controls; }
    u64 read(x86::vmx::Level level, u32 field) override { return of(level)[field]; }
    void write(x86::vmx::Level level, u32 field, u64 value) override { of(level)[field] = value; }
    void read_fields(x86::vmx::Level level, const u32* fields, u64* values, usize count) override {
        for (usize i = 0; i < count; ++i) values[i] = of(level)[fields[i]];
    }
    void write_fields(x86::vmx::Level level, const u32* fields, const u64* values, usize count) override {
        for (usize i = 0; i < count; ++i) of(level)[fields[i]] = values[i];
    }
    bool write_ok() override { return true; }
    void load(x86::vmx::Level level, virt::VcpuState& state) {
        auto& v = of(level);
        state.rip = v[iv::field::guest_rip];
        state.reg(virt::Gpr::rsp) = v[iv::field::guest_rsp];
        state.rflags = v[iv::field::guest_rflags];
        state.efer = v[iv::field::guest_efer];
        state.cr0 = v[iv::field::guest_cr0];
    }
    // The TPR shadow of the last entry of L2 (L1's, when `l1_tpr_shadow`).
    bool l1_tpr_shadow = false;
    x86::vmx::L2TprShadow tpr_shadow{};
    void enter_l2(virt::VcpuState& state, bool flush, const x86::vmx::L2TprShadow* shadow) override {
        running_l2_ = true;
        if (flush) ++flushes;
        l1_tpr_shadow = shadow != nullptr;
        tpr_shadow = shadow ? *shadow : x86::vmx::L2TprShadow{};
        load(x86::vmx::Level::l2, state);
    }
    void enter_l1(const x86::vmx::L1ControlState& control, virt::VcpuState& state) override {
        running_l2_ = false;
        timer_armed = false;
        l1_control = control;
        vmcs[0][iv::field::guest_cr0] = control.cr0;
        vmcs[0][iv::field::guest_efer] = control.efer;
        load(x86::vmx::Level::l1, state);
    }
    void reset_to_l1() override {
        running_l2_ = false;
        timer_armed = false;
    }
    void write_state(const virt::VcpuState& state) override {
        auto& v = of(running_l2_ ? x86::vmx::Level::l2 : x86::vmx::Level::l1);
        v[iv::field::guest_rip] = state.rip;
        v[iv::field::guest_rsp] = state.reg(virt::Gpr::rsp);
        v[iv::field::guest_rflags] = state.rflags;
    }
    void use_l2_eptp(u64 eptp) override {
        vmcs[1][iv::field::ept_pointer] = eptp;
        ++flushes;
    }
    u64 mapping_generation() override { return generation; }
    // L1's preemption timer as armed for L2 (0: disarmed), and the ticks the test says are left.
    bool timer_armed = false;
    u64 timer_ticks = 0;
    u64 timer_left = 0;
    void arm_l2_timer(u64 ticks) override {
        timer_armed = true;
        timer_ticks = timer_left = ticks;
    }
    void disarm_l2_timer() override { timer_armed = false; }
    u64 l2_timer_left() override { return timer_armed ? timer_left : 0; }
    int immediate_exits = 0;  // requested since the test began
    void request_immediate_exit() override { ++immediate_exits; }
    // The MSRs L1 could write with WRMSR (a few the vCPU owns), shared by both levels, and the
    // level of the last access.
    std::map<u32, u64> msrs{{x86_regs::kMsrLstar, 0}, {x86_regs::kMsrStar, 0}, {x86_regs::kMsrSysenterEsp, 0}};
    x86::vmx::Level msr_level = x86::vmx::Level::l1;
    bool write_msr(x86::vmx::Level level, u32 index, u64 value) override {
        if (!msrs.contains(index)) return false;
        msrs[index] = value;
        msr_level = level;
        return true;
    }
    bool read_msr(x86::vmx::Level level, u32 index, u64& value) override {
        if (!msrs.contains(index)) return false;
        value = msrs[index];
        msr_level = level;
        return true;
    }
    // The CPU's exit of L2: reason and qualification into vmcs02.
    void l2_exits(u32 reason, u64 qualification = 0, u32 length = 0) {
        vmcs[1][iv::field::exit_reason] = reason;
        vmcs[1][iv::field::exit_qualification] = qualification;
        vmcs[1][iv::field::exit_instruction_length] = length;
    }
};

}  // namespace nested_test
