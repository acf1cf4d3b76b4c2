// The kernel's running guest (vm.hpp).
#include "nestor/virt/vm.hpp"

#include "nestor/virt/platform_caps.hpp"

namespace nestor::virt {

void Vm::set_up(const char* vm_name, const char* vm_label, const VirtOps& backend, bool pc_console) {
    name = vm_name;
    label = vm_label;
    ops = &backend;
    for (u32 i = 0; i < kMaxVcpusPerVm; ++i) {
        vcpus[i].vm = this;
        vcpus[i].index = i;
    }
    // Fixed ranges on an empty bus: nothing can be refused.
    auto attached = devices.attach(!pc_console);
    ASSERT(attached);
}

void Vm::bind(cap::Domain& bound, u32 count) {
    ASSERT(count >= 1 && count <= kMaxVcpusPerVm);
    domain = &bound;
    memory = GuestMemory(&bound);
    nested_host.attach(memory, *this);
    vcpu_count = count;
    for (u32 i = 0; i < count; ++i) {
        vcpus[i].vm = this;
        vcpus[i].index = i;
        vcpus[i].capability = &bound.vcpu(i);
    }
}

Status<VirtError> Vm::create_vcpu(const InitialMode& initial, u32 index) {
    Vcpu& v = vcpus[index];
    v.vm = this;
    v.index = index;
    auto created = ops->create_vcpu(handle, initial, v.state());
    if (!created) return fail(created.error());
    v.handle = *created;
    return {};
}

// An application processor of a domain whose nested state is set up (Toolstack::set_up_nested)
// nests as its first vCPU does: the backend's nested hardware and the component's vCPU state.
Status<VirtError> Vm::create_application_processor(const InitialMode& initial, u32 index) {
    if constexpr (NESTOR_OPT_NESTED_VIRT == 0) return create_vcpu(initial, index);
    if (!nested.ops) return create_vcpu(initial, index);
    Vcpu& v = vcpus[index];
    InitialMode nesting = initial;
    nesting.nested = true;
    nesting.nested_hardware = &v.nested.hardware;
    NESTOR_TRY_STATUS(create_vcpu(nesting, index));
    v.nested.host = &nested_host;
    if (!nested_vcpu_initialise(v.nested, nested)) {
        release_vcpu(v);
        return fail(VirtError::out_of_memory);
    }
    return {};
}

void Vm::start() {
    running = true;
    for (u32 i = 0; i < vcpu_count; ++i)
        if (vcpus[i].capability) vcpus[i].capability->set_running(true);
}

void Vm::stop(const ExitOutcome& how, const VmExit& last) {
    outcome = how;
    last_exit = last;
    running = false;
    for (u32 i = 0; i < vcpu_count; ++i)
        if (vcpus[i].capability) vcpus[i].capability->set_running(false);
    release();
}

void Vm::release_vcpu(Vcpu& v) {
    // The nested state first: it may refer to the backend's vCPU (NestedVcpu::hardware).
    nested_vcpu_destroy(v.nested);
    if (v.handle) ops->destroy_vcpu(v.handle);
    v.handle = nullptr;
}

void Vm::release_vcpus() {
    for (u32 i = 0; i < vcpu_count; ++i) release_vcpu(vcpus[i]);
    nested_domain_teardown(nested);
}

void Vm::reset_vcpu(Vcpu& v) {
    v.state() = VcpuState{};
    v.nested = nested::NestedVcpu{};
    v.cpuid_memo.clear();
    v.waiting = false;
    v.interrupt_due = false;
    v.awaiting_startup = false;
    v.exits.slices_without_exit = 0;
}

void Vm::release() {
    release_vcpus();
    if (pc) pc_ops->detach(*this);
}

void Vm::power_off() {
    release_vcpus();
    nested = nested::NestedDomain{};
    for (u32 i = 0; i < vcpu_count; ++i) reset_vcpu(vcpus[i]);
}

}  // namespace nestor::virt
