// The null nested component, linked when NESTED_VIRT=OFF. Only the predicate is reachable: it
// says no for every CPU, so the sanitiser refuses NESTOR_DOMAIN_FLAG_NESTED_VIRT, physcaps lacks
// the bit and CPUID shows no SVM/VMX. Every other hook is called only for a nested domain, which
// cannot exist in this build: reaching one is a kernel bug, and it panics (ASSERT_UNREACHABLE)
// rather than guess. What a guest without nested virtualization gets for VMRUN or a VMX
// instruction (#UD) or a virtualization MSR (#GP) is the kernel's own rule, not this stub's.
#include "nestor/nested/nested_ops.hpp"

namespace nestor::nested {
namespace null_stub {
namespace {

Availability availability(const CpuFeatures&) { return {false, "built without NESTED_VIRT"}; }

Status<Error> domain_initialise(NestedDomain&, const CpuFeatures&, u64) { ASSERT_UNREACHABLE(); }
void domain_teardown(NestedDomain&) { ASSERT_UNREACHABLE(); }
Status<Error> vcpu_initialise(NestedVcpu&, NestedDomain&) { ASSERT_UNREACHABLE(); }
void vcpu_destroy(NestedVcpu&) { ASSERT_UNREACHABLE(); }
void vcpu_reset(NestedVcpu&) { ASSERT_UNREACHABLE(); }
Decision virtualization_instruction(NestedVcpu&, const virt::VmExit&, virt::VcpuState&) { ASSERT_UNREACHABLE(); }
Decision msr_read(NestedVcpu&, u32, const virt::VcpuState&) { ASSERT_UNREACHABLE(); }
Decision msr_write(NestedVcpu&, u32, u64, const virt::VcpuState&) { ASSERT_UNREACHABLE(); }
void cpuid(const NestedVcpu&, u32, u32, virt::CpuidValues&) { ASSERT_UNREACHABLE(); }
bool in_guest_mode(const NestedVcpu&) { ASSERT_UNREACHABLE(); }
Decision reflect_exit(NestedVcpu&, const virt::VmExit&, virt::VcpuState&) { ASSERT_UNREACHABLE(); }
Decision exception_for_l2(NestedVcpu&, u8, bool, u32, virt::VcpuState&) { ASSERT_UNREACHABLE(); }
Decision route_interrupt(NestedVcpu&, virt::VcpuState&, u8) { ASSERT_UNREACHABLE(); }
Decision route_nmi(NestedVcpu&, virt::VcpuState&) { ASSERT_UNREACHABLE(); }
Decision init_signal(NestedVcpu&, virt::VcpuState&) { ASSERT_UNREACHABLE(); }
Decision nested_page_fault(NestedVcpu&, const virt::NestedPageFaultExit&) { ASSERT_UNREACHABLE(); }

}  // namespace
}  // namespace null_stub

constexpr NestedOps nested_ops = {
    .name = "null",
    .availability = null_stub::availability,
    .domain_initialise = null_stub::domain_initialise,
    .domain_teardown = null_stub::domain_teardown,
    .vcpu_initialise = null_stub::vcpu_initialise,
    .vcpu_destroy = null_stub::vcpu_destroy,
    .vcpu_reset = null_stub::vcpu_reset,
    .virtualization_instruction = null_stub::virtualization_instruction,
    .msr_read = null_stub::msr_read,
    .msr_write = null_stub::msr_write,
    .cpuid = null_stub::cpuid,
    .in_guest_mode = null_stub::in_guest_mode,
    .reflect_exit = null_stub::reflect_exit,
    .exception_for_l2 = null_stub::exception_for_l2,
    .route_interrupt = null_stub::route_interrupt,
    .route_nmi = null_stub::route_nmi,
    .init_signal = null_stub::init_signal,
    .nested_page_fault = null_stub::nested_page_fault,
};

}  // namespace nestor::nested
