// Runs a built-in guest to completion: its memory and VM built here, then the same run loop and
// scheduler as the appliance's domains, with one VM.
#include "nestor/log.hpp"
#include "nestor/platform.hpp"
#include "nestor/virt/builtin_guest.hpp"
#include "nestor/virt/scheduler.hpp"

namespace nestor::virt {
namespace {

constexpr u32 kFailureStatus = 1;

struct BuiltinMemory {
    paddr base;
    u64 size;
};

// The guest's RAM, contiguous from guest-physical 0, with its code copied in.
bool load_builtin_guest(const BuiltinGuest& guest, BuiltinMemory& memory) {
    u64 code_end = 0;
    if (!is_aligned(guest.memory_bytes, kPageSize) || guest.code_size == 0 ||
        !checked_add(guest.code_gpa, guest.code_size, code_end) || code_end > guest.memory_bytes) {
        log::error("virt: built-in guest {} does not fit its memory", guest.name);
        return false;
    }
    if (!platform::allocate_physical(guest.memory_bytes, memory.base)) {
        log::error("virt: no memory for guest {} ({} KiB)", guest.name, guest.memory_bytes >> 10);
        return false;
    }
    memory.size = guest.memory_bytes;
    copy_bytes(static_cast<u8*>(platform::physical_to_virtual(memory.base)) + guest.code_gpa, guest.code,
               guest.code_size);
    return true;
}

// Code pages read-execute, the rest read-write: nothing the guest can write is executable.
Result<VmHandle, VirtError> create_builtin_vm(const VirtOps& ops, const BuiltinGuest& guest,
                                              const BuiltinMemory& memory) {
    auto vm = ops.create_vm();
    if (!vm) return vm;
    u64 code_start = align_down(guest.code_gpa, kPageSize);
    u64 code_end = align_up(guest.code_gpa + guest.code_size, kPageSize);
    const GuestMapping pieces[] = {
        {0, memory.base, code_start, true, false},
        {code_start, memory.base + code_start, code_end - code_start, false, true},
        {code_end, memory.base + code_end, memory.size - code_end, true, false},
    };
    for (const GuestMapping& piece : pieces) {
        if (piece.size == 0) continue;
        if (auto mapped = ops.map(*vm, piece); !mapped) {
            ops.destroy_vm(*vm);
            return fail(mapped.error());
        }
    }
    return vm;
}

}  // namespace

u32 run_builtin_guest(const char* name, u64 time_slice) {
    const BuiltinGuest* guest = find_builtin_guest(name);
    if (!guest) {
        log::error("virt: no built-in guest '{}' (smoke, npf, spin, cpuid-bench)", name);
        return kFailureStatus;
    }
    const VirtOps* ops = select_virt_ops();
    if (!ops) {
        log::error("virt: this CPU offers no usable virtualization backend");
        return kFailureStatus;
    }
    if (auto enabled = ops->enable(); !enabled) {
        log::error("virt: enabling {}: {}", ops->name, virt_error_name(enabled.error()));
        return kFailureStatus;
    }

    BuiltinMemory memory{};
    if (!load_builtin_guest(*guest, memory)) {
        ops->disable();
        return kFailureStatus;
    }
    // Zeroed storage, built here: a static Vm would sit in the image's initialised data.
    alignas(Vm) static u8 storage[sizeof(Vm)];
    Vm& vm = *new (storage) Vm{};
    vm.set_up(guest->name, "virt: guest", *ops);
    auto handle = create_builtin_vm(*ops, *guest, memory);
    if (!handle) {
        log::error("virt: creating guest {}: {}", name, virt_error_name(handle.error()));
        platform::free_physical(memory.base, memory.size);
        ops->disable();
        return kFailureStatus;
    }
    vm.handle = *handle;
    if (auto created = vm.create_vcpu(InitialMode{guest->mode, 0}); !created) {
        log::error("virt: creating guest {}: {}", name, virt_error_name(created.error()));
        ops->destroy_vm(vm.handle);
        platform::free_physical(memory.base, memory.size);
        ops->disable();
        return kFailureStatus;
    }
    VcpuState& state = vm.vcpus[0].state();
    state.rip = guest->entry;
    state.reg(Gpr::rsp) = guest->stack_top;
    log::info("virt: guest {} starts on {} ({} KiB, entry {:#x})", name, ops->name, guest->memory_bytes >> 10,
              guest->entry);

    Vm* const vms[] = {&vm};
    vm.start();
    run_vms(vms, 1, RunOptions{time_slice, kMaxPreemptions, true});
    if (vm.vcpus[0].exits.preemptions)
        log::info("virt: guest {} was preempted {} times", name, vm.vcpus[0].exits.preemptions);
    ops->destroy_vm(vm.handle);
    platform::free_physical(memory.base, memory.size);
    ops->disable();
    return vm.outcome.status;
}

}  // namespace nestor::virt
