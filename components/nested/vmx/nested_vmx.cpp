// Nested VMX: what an L1 hypervisor on Intel sees of VMX. For now it can discover VMX (CPUID)
// and find IA32_FEATURE_CONTROL locked with VMX allowed; the VMX instructions and the capability
// MSRs are issue 7's work, and until then they stop the domain with a report that says so, never
// a silent #UD. Built only with INTEL_VMX=ON.
#include "nested_ept.hpp"
#include "nestor/arch/vmx_vmcs.hpp"

namespace nestor::nested {
namespace vmx {
namespace {

constexpr u64 kFeatureControlLock = u64{1} << 0;
constexpr u64 kFeatureControlVmxOutsideSmx = u64{1} << 2;
constexpr u32 kMsrFeatureControl = intel_vmx::vmx_msr::feature_control;
constexpr u32 kMsrVmxFirst = intel_vmx::vmx_msr::vmx_basic;
constexpr u32 kMsrVmxLast = intel_vmx::vmx_msr::vmx_vmfunc;
constexpr u32 kCpuid1EcxVmx = 1u << 5;

// VMX exit reasons of the VMX instructions (the backend's VmExit::vendor_code).
constexpr u64 kExitVmfunc = 59;

Availability availability(const CpuFeatures& cpu) {
    if (!cpu.vmx) return {false, "the CPU has no VMX"};
    if (!cpu.ept) return {false, "the CPU has no EPT, which nested VMX needs"};
    if (!cpu.unrestricted_guest) return {false, "the CPU has no unrestricted guest, which nested VMX needs"};
    return {true, ""};
}

void vcpu_reset(NestedVcpu& vcpu) { core(vcpu).vmx = VmxVcpu{false}; }

const char* not_implemented(u64 reason) {
    switch (reason) {
    case 19: return "nested VMX: VMCLEAR is not implemented yet";
    case 20: return "nested VMX: VMLAUNCH is not implemented yet";
    case 21: return "nested VMX: VMPTRLD is not implemented yet";
    case 22: return "nested VMX: VMPTRST is not implemented yet";
    case 23: return "nested VMX: VMREAD is not implemented yet";
    case 24: return "nested VMX: VMRESUME is not implemented yet";
    case 25: return "nested VMX: VMWRITE is not implemented yet";
    case 26: return "nested VMX: VMXOFF is not implemented yet";
    case 27: return "nested VMX: VMXON is not implemented yet";
    case 50: return "nested VMX: INVEPT is not implemented yet";
    case 53: return "nested VMX: INVVPID is not implemented yet";
    default: return "nested VMX: an unknown VMX instruction exit";
    }
}

Decision virtualization_instruction(NestedVcpu&, const virt::VmExit& exit, virt::VcpuState& state) {
    // As on the CPU: VMX instructions #UD outside protected mode; VMFUNC #UDs unless L1 enabled
    // it for an L2, which cannot run yet.
    if (state.mode == virt::CpuMode::real16 || exit.vendor_code == kExitVmfunc) return inject_ud();
    return stop(not_implemented(exit.vendor_code));
}

bool is_capability_msr(u32 index) { return index >= kMsrVmxFirst && index <= kMsrVmxLast; }

Decision msr_read(NestedVcpu&, u32 index, const virt::VcpuState&) {
    // Locked by "firmware" with VMX allowed outside SMX, as an L1 expects before VMXON.
    if (index == kMsrFeatureControl) return complete(kFeatureControlLock | kFeatureControlVmxOutsideSmx);
    if (is_capability_msr(index)) return stop("nested VMX: the VMX capability MSRs are not implemented yet");
    return not_nested();
}

// FEATURE_CONTROL is locked and the capability MSRs are read-only: writes #GP, as on the CPU.
Decision msr_write(NestedVcpu&, u32 index, u64, const virt::VcpuState&) {
    if (index == kMsrFeatureControl || is_capability_msr(index)) return inject_gp();
    return not_nested();
}

void cpuid(const NestedVcpu&, u32 leaf, u32, virt::CpuidValues& guest) {
    if (leaf == 1) guest.ecx |= kCpuid1EcxVmx;
}

// No L2 runs before VMLAUNCH is implemented, so nothing can be reflected yet.
Decision reflect_exit(NestedVcpu&, const virt::VmExit&, virt::VcpuState&) { ASSERT_UNREACHABLE(); }
Decision exception_for_l2(NestedVcpu&, u8, bool, u32, virt::VcpuState&) { ASSERT_UNREACHABLE(); }

// Nothing of L1's state holds interrupts back outside guest mode (there is no VMX guest mode yet).
Decision route_interrupt(NestedVcpu&, virt::VcpuState&) { return not_nested(); }

constexpr VendorPart kPart = {
    .name = "vmx",
    .availability = availability,
    .vcpu_reset = vcpu_reset,
    .vcpu_destroy = nullptr,
    .virtualization_instruction = virtualization_instruction,
    .msr_read = msr_read,
    .msr_write = msr_write,
    .cpuid = cpuid,
    .reflect_exit = reflect_exit,
    .exception_for_l2 = exception_for_l2,
    .route_interrupt = route_interrupt,
    .nested_page_fault = ept::nested_page_fault,
};

}  // namespace
}  // namespace vmx

const VendorPart* vmx_part() { return &vmx::kPart; }

}  // namespace nestor::nested
