// The nested component's host services for one VM (nested_host.hpp).
#include "nestor/virt/nested_host.hpp"

#include "nestor/abi/caps.h"
#include "nestor/platform.hpp"
#include "nestor/virt/vm.hpp"
#include "nestor/virt/vm_environment.hpp"

namespace nestor::virt {

bool VmNestedHost::read(u64 gpa, void* out, usize bytes) { return memory_ && memory_->read(gpa, out, bytes); }

bool VmNestedHost::write(u64 gpa, const void* in, usize bytes) { return memory_ && memory_->write(gpa, in, bytes); }

nested::GuestPage VmNestedHost::page(u64 gpa) {
    const cap::Mapping* m = memory_ ? memory_->mapping_at(gpa, NESTOR_RIGHT_MEMORY_READ) : nullptr;
    if (!m) return nested::GuestPage{false, 0, false, false};
    return nested::GuestPage{true, align_down(m->hpa + (gpa - m->gpa), kPageSize),
                             (m->rights & NESTOR_RIGHT_MEMORY_WRITE) != 0, (m->rights & NESTOR_RIGHT_MEMORY_EXEC) != 0};
}

u8* VmNestedHost::window(u64 gpa, usize bytes, bool writable) {
    if (!memory_) return nullptr;
    return memory_->window(gpa, bytes, writable ? NESTOR_RIGHT_MEMORY_WRITE : NESTOR_RIGHT_MEMORY_READ);
}

bool VmNestedHost::set_bits(u64 gpa, u64 bits) {
    if (!is_aligned(gpa, sizeof(u64))) return false;
    u8* word = window(gpa, sizeof(u64), true);
    if (!word) return false;
    __atomic_fetch_or(reinterpret_cast<u64*>(word), bits, __ATOMIC_SEQ_CST);
    return true;
}

void* VmNestedHost::allocate(usize bytes, paddr& physical) {
    if (bytes == 0 || !is_aligned(bytes, kPageSize) || !platform::allocate_physical(bytes, physical)) return nullptr;
    held_bytes_ += bytes;
    return platform::physical_to_virtual(physical);  // allocate_physical cleared it
}

void VmNestedHost::release(paddr physical, usize bytes) {
    if (!physical) return;
    platform::free_physical(physical, bytes);
    held_bytes_ -= bytes;
}

void* VmNestedHost::pointer(paddr physical) { return platform::physical_to_virtual(physical); }

namespace {

Vcpu* vcpu_of(Vm* vm, const nested::NestedVcpu& nested) {
    if (!vm) return nullptr;
    for (u32 i = 0; i < vm->vcpu_count; ++i)
        if (&vm->vcpus[i].nested == &nested) return &vm->vcpus[i];
    return nullptr;
}

}  // namespace

// As the exit handler's device_msr: the device that claims the MSR on the bus, with the vCPU's
// environment. Only an access the device completes counts; a fault or a stop refuses it. The
// component calls it while the kernel works for that vCPU (its exit, its entry work, an INIT for
// it), after the PC selected the vCPU whose local devices answer.
bool VmNestedHost::device_msr_read(nested::NestedVcpu& vcpu, u32 index, u64& value) {
    Vcpu* v = vcpu_of(vm_, vcpu);
    const BusRange<u32>* range = v ? vm_->devices.bus.msr_range(index) : nullptr;
    if (!range) return false;
    VmEnvironment env(*vm_, *v);
    u64 read = ~u64{0};
    if (range->device->msr_read(index, read, env).action != DeviceOutcome::Action::complete) return false;
    value = read;
    return true;
}

bool VmNestedHost::device_msr_write(nested::NestedVcpu& vcpu, u32 index, u64 value) {
    Vcpu* v = vcpu_of(vm_, vcpu);
    const BusRange<u32>* range = v ? vm_->devices.bus.msr_range(index) : nullptr;
    if (!range) return false;
    VmEnvironment env(*vm_, *v);
    return range->device->msr_write(index, value, env).action == DeviceOutcome::Action::complete;
}

}  // namespace nestor::virt
