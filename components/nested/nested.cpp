// The real nested-virtualization component: the exported table. It owns the life cycle of the
// nested domain and vCPU state and hands everything vendor-specific to the part serving the CPU:
// nested SVM on AMD, nested VMX on Intel (the same rule select_virt_ops() uses for the backend).
#include "nested_component.hpp"

#include "nestor/lib/placement_new.hpp"

namespace nestor::nested {
namespace table {
namespace {

const VendorPart* part_for(CpuVendor vendor) {
    switch (vendor) {
    case CpuVendor::amd: return svm_part();
    case CpuVendor::intel: return vmx_part();
    case CpuVendor::unknown: break;
    }
    return nullptr;
}

const char* missing_part_reason(CpuVendor vendor) {
    switch (vendor) {
    case CpuVendor::amd: return "nested SVM is not in this build (AMD_SVM=OFF)";
    case CpuVendor::intel: return "nested VMX is not in this build (INTEL_VMX=OFF)";
    case CpuVendor::unknown: break;
    }
    return "the CPU vendor is neither AMD nor Intel";
}

Availability availability(const CpuFeatures& cpu) {
    const VendorPart* part = part_for(cpu.vendor);
    if (!part) return {false, missing_part_reason(cpu.vendor)};
    return part->availability(cpu);
}

Status<Error> domain_initialise(NestedDomain& domain, const CpuFeatures& cpu, u64 memory_bytes) {
    if (!availability(cpu).available) return fail(Error::unavailable);
    new (domain.state) DomainCore{part_for(cpu.vendor), memory_bytes};
    return {};
}

// Nothing is held per domain yet (no nested page tables before L2 runs).
void domain_teardown(NestedDomain& domain) { core(domain) = DomainCore{}; }

Status<Error> vcpu_initialise(NestedVcpu& vcpu, NestedDomain& domain) {
    const DomainCore& d = core(domain);
    if (!d.part) return fail(Error::unavailable);
    VcpuCore* c = new (vcpu.state) VcpuCore{};
    c->part = d.part;
    c->memory_bytes = d.memory_bytes;
    d.part->vcpu_reset(vcpu);
    return {};
}

void vcpu_destroy(NestedVcpu& vcpu) {
    const VendorPart* part = core(vcpu).part;
    if (part && part->vcpu_destroy) part->vcpu_destroy(vcpu);
    core(vcpu) = VcpuCore{};
    vcpu.guest_exit = nullptr;
}

void vcpu_reset(NestedVcpu& vcpu) {
    core(vcpu).part->vcpu_reset(vcpu);
    vcpu.guest_exit = nullptr;
}

Decision virtualization_instruction(NestedVcpu& vcpu, const virt::VmExit& exit, virt::VcpuState& state) {
    return core(vcpu).part->virtualization_instruction(vcpu, exit, state);
}

Decision msr_read(NestedVcpu& vcpu, u32 index, const virt::VcpuState& state) {
    return core(vcpu).part->msr_read(vcpu, index, state);
}

Decision msr_write(NestedVcpu& vcpu, u32 index, u64 value, const virt::VcpuState& state) {
    return core(vcpu).part->msr_write(vcpu, index, value, state);
}

void cpuid(const NestedVcpu& vcpu, u32 leaf, u32 subleaf, virt::CpuidValues& guest) {
    core(vcpu).part->cpuid(vcpu, leaf, subleaf, guest);
}

bool in_guest_mode(const NestedVcpu& vcpu) { return nested::in_guest_mode(vcpu); }

Decision reflect_exit(NestedVcpu& vcpu, const virt::VmExit& exit, virt::VcpuState& state) {
    return core(vcpu).part->reflect_exit(vcpu, exit, state);
}

Decision exception_for_l2(NestedVcpu& vcpu, u8 vector, bool has_error_code, u32 error_code, virt::VcpuState& state) {
    return core(vcpu).part->exception_for_l2(vcpu, vector, has_error_code, error_code, state);
}

Decision route_interrupt(NestedVcpu& vcpu, virt::VcpuState& state, u8 vector) {
    return core(vcpu).part->route_interrupt(vcpu, state, vector);
}

Decision route_nmi(NestedVcpu& vcpu, virt::VcpuState& state) { return core(vcpu).part->route_nmi(vcpu, state); }

Decision init_signal(NestedVcpu& vcpu, virt::VcpuState& state) { return core(vcpu).part->init_signal(vcpu, state); }

Decision nested_page_fault(NestedVcpu& vcpu, const virt::NestedPageFaultExit& fault) {
    return core(vcpu).part->nested_page_fault(vcpu, fault);
}

}  // namespace
}  // namespace table

constexpr NestedOps nested_ops = {
    .name = "nested",
    .availability = table::availability,
    .domain_initialise = table::domain_initialise,
    .domain_teardown = table::domain_teardown,
    .vcpu_initialise = table::vcpu_initialise,
    .vcpu_destroy = table::vcpu_destroy,
    .vcpu_reset = table::vcpu_reset,
    .virtualization_instruction = table::virtualization_instruction,
    .msr_read = table::msr_read,
    .msr_write = table::msr_write,
    .cpuid = table::cpuid,
    .in_guest_mode = table::in_guest_mode,
    .reflect_exit = table::reflect_exit,
    .exception_for_l2 = table::exception_for_l2,
    .route_interrupt = table::route_interrupt,
    .route_nmi = table::route_nmi,
    .init_signal = table::init_signal,
    .nested_page_fault = table::nested_page_fault,
};

}  // namespace nestor::nested
