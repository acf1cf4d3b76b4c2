#include "nestor/virt/devices/nested_memory_msr.hpp"

#include "nestor/virt/exit_handler.hpp"

namespace nestor::virt {

DeviceOutcome NestedMemoryMsr::msr_read(u32, u64& value, DeviceHost&) {
    value = held_bytes_ ? *held_bytes_ : 0;
    return {};
}

// Read-only, as a CPU's read-only MSRs: a write is #GP(0), and changes nothing.
DeviceOutcome NestedMemoryMsr::msr_write(u32, u64, DeviceHost&) { return DeviceOutcome::exception(kVectorGp, true, 0); }

}  // namespace nestor::virt
