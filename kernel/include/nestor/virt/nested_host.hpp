// The kernel's services for the nested component (nested::Host, nested_ops.hpp) for one VM: L1's
// memory through the VM's guest-memory accessor, L0 memory from the physical allocator, whose
// bytes it counts (the nested-memory port reports them: devices/nested_memory_port.hpp), and the
// MSRs the VM's devices serve, through its device bus.
#pragma once

#include "nestor/nested/nested_ops.hpp"
#include "nestor/virt/guest_memory.hpp"

namespace nestor::virt {

class Vm;

class VmNestedHost final : public nested::Host {
public:
    constexpr VmNestedHost() = default;
    void attach(const GuestMemory& memory, Vm& vm) {
        memory_ = &memory;
        vm_ = &vm;
    }

    bool read(u64 gpa, void* out, usize bytes) override;
    bool write(u64 gpa, const void* in, usize bytes) override;
    nested::GuestPage page(u64 gpa) override;
    u8* window(u64 gpa, usize bytes, bool writable) override;
    bool set_bits(u64 gpa, u64 bits) override;
    void* allocate(usize bytes, paddr& physical) override;
    void release(paddr physical, usize bytes) override;
    void* pointer(paddr physical) override;
    bool device_msr_read(nested::NestedVcpu& vcpu, u32 index, u64& value) override;
    bool device_msr_write(nested::NestedVcpu& vcpu, u32 index, u64 value) override;
    // The L0 memory the component holds now: allocated and not released.
    const u64& held_bytes() const { return held_bytes_; }

private:
    const GuestMemory* memory_ = nullptr;
    Vm* vm_ = nullptr;
    u64 held_bytes_ = 0;
};

}  // namespace nestor::virt
