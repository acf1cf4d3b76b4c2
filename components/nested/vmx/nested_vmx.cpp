// Nested VMX: what an L1 hypervisor on Intel sees of VMX. It discovers VMX (CPUID), finds
// IA32_FEATURE_CONTROL locked with VMX allowed, reads the capability MSRs (vmx_capabilities.hpp)
// and runs the VMX instructions (vmx_instructions.hpp) with their architectural checks against a
// vmcs12 cached in L0 memory (vmcs12.hpp). VMLAUNCH / VMRESUME that pass them run L2 (vmx_l2.hpp).
// Built only with INTEL_VMX=ON.
#include "nested_ept.hpp"
#include "nestor/arch/vmx_vmcs.hpp"
#include "vmx_capabilities.hpp"
#include "vmx_instructions.hpp"
#include "vmx_l2.hpp"

namespace nestor::nested {
namespace vmx {
namespace {

constexpr u32 kMsrFeatureControl = intel_vmx::vmx_msr::feature_control;
constexpr u32 kMsrVmxFirst = intel_vmx::vmx_msr::vmx_basic;
constexpr u32 kMsrVmxLast = intel_vmx::vmx_msr::vmx_vmfunc;
constexpr u32 kCpuid1EcxVmx = 1u << 5;
constexpr u8 kVectorSs = 12;
constexpr const char* kNoHardware = "nested VMX: the backend lent no VMX context for this vCPU";

Availability availability(const CpuFeatures& cpu) {
    if (!cpu.vmx) return {false, "the CPU has no VMX"};
    if (!cpu.ept) return {false, "the CPU has no EPT, which nested VMX needs"};
    if (!cpu.unrestricted_guest) return {false, "the CPU has no unrestricted guest, which nested VMX needs"};
    return {true, ""};
}

void vcpu_destroy(NestedVcpu& vcpu) {
    abandon_l2(vcpu);
    VmxVcpu& vmx = core(vcpu).vmx;
    if (vmx.vmxon && vcpu.hardware) static_cast<x86::vmx::NestedHardware*>(vcpu.hardware)->pin_control_bits(0, 0);
    if (vmx.cache && vcpu.host) leave_vmx_operation(vmx, *vcpu.host);
}

// Power-on: outside VMX operation, no current VMCS (the cache, if any, goes back to L0).
void vcpu_reset(NestedVcpu& vcpu) {
    vcpu_destroy(vcpu);
    core(vcpu).vmx = VmxVcpu{false, 0, kNoCurrentVmcs, nullptr, 0};
}

x86::vmx::NestedHardware* hardware_of(NestedVcpu& vcpu) {
    return static_cast<x86::vmx::NestedHardware*>(vcpu.hardware);
}

// Whether the VMX instruction of exit `reason` may have a memory operand, whose address its
// segment names: the others need only SS, for the CPL.
bool may_have_memory_operand(u64 reason) {
    return reason != intel_vmx::exit_reason::vmlaunch && reason != intel_vmx::exit_reason::vmresume &&
           reason != intel_vmx::exit_reason::vmxoff;
}

// L1's CPU at this exit, read once from the backend.
L1Cpu read_l1_cpu(x86::vmx::NestedHardware& hw, const virt::VcpuState& state, u64 reason) {
    L1Cpu cpu{};
    cpu.cr0 = state.cr0;
    cpu.cr4 = hw.cr4();
    cpu.efer = state.efer;
    cpu.rflags = state.rflags;
    cpu.mode = state.mode;
    cpu.interruptibility = hw.interruptibility();
    cpu.exit = hw.instruction_exit();
    if (may_have_memory_operand(reason))
        for (u32 i = 0; i < 6; ++i) cpu.segments[i] = hw.segment(i);
    else
        cpu.segments[kSegmentSs] = hw.segment(kSegmentSs);
    cpu.physical_address_bits = hw.physical_address_bits();
    return cpu;
}

Decision decide(NestedVcpu& vcpu, const Result& result, x86::vmx::NestedHardware& hw, virt::VcpuState& state) {
    switch (result.outcome) {
    case Outcome::enter_l2: return enter_l2(vcpu, hw, state, result.error != 0);
    case Outcome::succeed:
    case Outcome::fail_invalid:
    case Outcome::fail_valid: apply_flags(result, state); return complete();
    case Outcome::undefined_opcode: return inject_ud();
    case Outcome::general_protection: return inject_gp();
    case Outcome::stack_fault: hw.inject_exception(kVectorSs, 0); return resume();
    case Outcome::page_fault: hw.inject_page_fault(result.address, result.error); return resume();
    case Outcome::stop: break;
    }
    return stop(result.report);
}

Decision virtualization_instruction(NestedVcpu& vcpu, const virt::VmExit& exit, virt::VcpuState& state) {
    // As on the CPU: VMX instructions #UD outside protected mode; VMFUNC #UDs unless L1 enabled
    // it for an L2, and VM functions are not offered.
    if (state.mode == virt::CpuMode::real16 || exit.vendor_code == intel_vmx::exit_reason::vmfunc) return inject_ud();
    x86::vmx::NestedHardware* hw = hardware_of(vcpu);
    if (!hw || !vcpu.host) return stop(kNoHardware);
    L1Cpu cpu = read_l1_cpu(*hw, state, exit.vendor_code);
    InstructionContext context{core(vcpu).vmx, *vcpu.host, *hw, cpu, state};
    return decide(vcpu, execute(exit.vendor_code, context), *hw, state);
}

bool is_capability_msr(u32 index) { return index >= kMsrVmxFirst && index <= kMsrVmxLast; }

Decision msr_read(NestedVcpu& vcpu, u32 index, const virt::VcpuState&) {
    if (index == kMsrFeatureControl) return complete(feature_control());
    if (!is_capability_msr(index)) return not_nested();
    x86::vmx::NestedHardware* hw = hardware_of(vcpu);
    if (!hw) return stop(kNoHardware);
    u64 value = 0;
    return capability_msr(index, cr4_not_offered(hw->l0_controls()), value) ? complete(value) : inject_gp();
}

// FEATURE_CONTROL is locked and the capability MSRs are read-only: writes #GP, as on the CPU.
Decision msr_write(NestedVcpu&, u32 index, u64, const virt::VcpuState&) {
    if (index == kMsrFeatureControl || is_capability_msr(index)) return inject_gp();
    return not_nested();
}

void cpuid(const NestedVcpu&, u32 leaf, u32, virt::CpuidValues& guest) {
    if (leaf == 1) guest.ecx |= kCpuid1EcxVmx;
}

Decision reflect_exit(NestedVcpu& vcpu, const virt::VmExit& exit, virt::VcpuState& state) {
    if (!in_guest_mode(vcpu)) return not_nested();
    return l2_exit(vcpu, exit, state);
}

// Nothing of L1's state holds interrupts back outside guest mode (VMX has no GIF); in it, L1's
// external-interrupt exiting decides.
Decision route_interrupt(NestedVcpu& vcpu, virt::VcpuState& state, u8 vector) {
    if (!in_guest_mode(vcpu)) return not_nested();
    return l2_interrupt(vcpu, state, vector);
}

// Outside guest mode L1 takes its NMIs itself; in it, L1's NMI exiting decides.
Decision route_nmi(NestedVcpu& vcpu, virt::VcpuState& state) {
    if (!in_guest_mode(vcpu)) return not_nested();
    return l2_nmi(vcpu, state);
}

// SDM 25.2 and 26.2: INIT is blocked in VMX root operation (it waits for VMXOFF) and is a VM
// exit in VMX non-root operation; outside VMX operation the vCPU takes it.
Decision init_signal(NestedVcpu& vcpu, virt::VcpuState& state) {
    if (!core(vcpu).vmx.vmxon) return not_nested();
    if (!in_guest_mode(vcpu)) return resume();
    return l2_init(vcpu, state);
}

constexpr VendorPart kPart = {
    .name = "vmx",
    .availability = availability,
    .vcpu_reset = vcpu_reset,
    .vcpu_destroy = vcpu_destroy,
    .virtualization_instruction = virtualization_instruction,
    .msr_read = msr_read,
    .msr_write = msr_write,
    .cpuid = cpuid,
    .reflect_exit = reflect_exit,
    .exception_for_l2 = l2_exception,
    .route_interrupt = route_interrupt,
    .route_nmi = route_nmi,
    .init_signal = init_signal,
    .nested_page_fault = ept::nested_page_fault,
};

}  // namespace
}  // namespace vmx

const VendorPart* vmx_part() { return &vmx::kPart; }

}  // namespace nestor::nested
