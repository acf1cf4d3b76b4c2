// The kernel's running guest (vm.hpp).
#include "nestor/virt/vm.hpp"

#include "nestor/virt/platform_caps.hpp"

namespace nestor::virt {

void Vm::set_up(const char* vm_name, const char* vm_label, const VirtOps& backend) {
    name = vm_name;
    label = vm_label;
    ops = &backend;
    vcpu.vm = this;
    // Fixed ranges on an empty bus: nothing can be refused.
    auto attached = devices.attach();
    ASSERT(attached);
}

void Vm::bind(cap::Domain& bound) {
    domain = &bound;
    memory = GuestMemory(&bound);
    nested_host.attach(memory);
    vcpu.vm = this;
    vcpu.capability = &bound.vcpu(0);
}

Status<VirtError> Vm::create_vcpu(const InitialMode& initial) {
    vcpu.vm = this;
    auto created = ops->create_vcpu(handle, initial, vcpu.state());
    if (!created) return fail(created.error());
    vcpu.handle = *created;
    return {};
}

void Vm::start() {
    running = true;
    if (vcpu.capability) vcpu.capability->set_running(true);
}

void Vm::stop(const ExitOutcome& outcome) {
    vcpu.outcome = outcome;
    running = false;
    if (vcpu.capability) vcpu.capability->set_running(false);
    release_vcpu();
}

void Vm::release_vcpu() {
    // The nested state first: it may refer to the backend's vCPU (NestedVcpu::hardware).
    nested_vcpu_destroy(vcpu.nested);
    nested_domain_teardown(nested);
    if (vcpu.handle) ops->destroy_vcpu(vcpu.handle);
    vcpu.handle = nullptr;
}

}  // namespace nestor::virt
