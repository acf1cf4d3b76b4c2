// The nested-memory MSR, a read-only MSR of Nestor's own (in the range the CPU vendors leave to
// software, 0x40000000-0x4FFFFFFF, beside KVM's 0x4B564Dxx): RDMSR answers how many bytes of L0
// memory the kernel holds for the VM's nested virtualization now (the component's per-vCPU state
// and shadow nested page tables: nested::Host::allocate minus release); WRMSR raises #GP. Only a
// VM with nested virtualization has it, and it learns only its own figure. It is how a test in an
// L1 (tests/linux/kvm_client.cpp, through Linux's /dev/cpu/0/msr) sees that running and
// destroying its guests leaves no L0 memory behind.
#pragma once

#include "nestor/virt/device_bus.hpp"

namespace nestor::virt {

class NestedMemoryMsr final : public Device {
public:
    // The count to report (VmNestedHost::held_bytes()), kept by the VM it lives beside.
    void watch(const u64& held_bytes) { held_bytes_ = &held_bytes; }
    DeviceOutcome msr_read(u32 index, u64& value, DeviceHost& host) override;
    DeviceOutcome msr_write(u32 index, u64 value, DeviceHost& host) override;

private:
    const u64* held_bytes_ = nullptr;
};

}  // namespace nestor::virt
