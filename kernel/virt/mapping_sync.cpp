// A VM's nested page tables follow its domain's mapping table (mapping_sync.hpp).
#include "nestor/virt/mapping_sync.hpp"

#include "nestor/abi/caps.h"
#include "nestor/log.hpp"

namespace nestor::virt {

Vm* MappingSync::vm_of(const cap::Domain& domain) const {
    for (u32 i = 0; i < count_; ++i)
        if (vms_[i]->domain == &domain) return vms_[i];
    return nullptr;
}

void MappingSync::mapped(cap::Domain& domain, const cap::Mapping& m) {
    Vm* vm = vm_of(domain);
    if (!vm || !vm->handle) return;
    GuestMapping mapping{m.gpa, m.hpa, m.size, (m.rights & NESTOR_RIGHT_MEMORY_WRITE) != 0,
                         (m.rights & NESTOR_RIGHT_MEMORY_EXEC) != 0};
    // A failure leaves the range unmapped: the guest's access then stops it with a report.
    if (auto done = vm->ops->map(vm->handle, mapping); !done)
        log::warn("appliance: {}: mapping guest-physical {:#x}: {}", vm->name, m.gpa, virt_error_name(done.error()));
}

void MappingSync::unmapped(cap::Domain& domain, const cap::Mapping& m) {
    Vm* vm = vm_of(domain);
    if (!vm || !vm->handle) return;
    if (auto done = vm->ops->unmap(vm->handle, m.gpa, m.size); !done)
        PANIC("a revoked mapping could not be removed from the nested page tables");
}

void MappingSync::destroyed(cap::Domain& domain) {
    Vm* vm = vm_of(domain);
    if (!vm) return;
    log::info("appliance: domain {} destroyed", vm->name);
    vm->running = false;
    for (u32 i = 0; i < vm->vcpu_count; ++i) {
        if (vm->vcpus[i].capability) vm->vcpus[i].capability->set_running(false);
        vm->vcpus[i].capability = nullptr;
    }
    vm->domain = nullptr;
    vm->memory = GuestMemory{};
}

}  // namespace nestor::virt
