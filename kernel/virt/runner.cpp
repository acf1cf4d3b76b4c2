// Runs a built-in guest to completion: select the backend, create the vCPU, loop on exits
// through the neutral exit handler, report how the guest ended.
#include "nestor/abi/errors.h"
#include "nestor/log.hpp"
#include "nestor/platform.hpp"
#include "nestor/virt/builtin_guest.hpp"
#include "nestor/virt/exit_handler.hpp"
#include "nestor/virt/virt_ops.hpp"

namespace nestor::virt {
namespace {

// A guest can never keep the kernel in its loop for ever through exits alone.
constexpr u64 kMaxExits = 10'000'000;
constexpr u32 kFailureStatus = 1;

const VirtOps* selected_ops = nullptr;
bool ops_selected = false;

class KernelEnvironment final : public ExitEnvironment {
public:
    KernelEnvironment(const VirtOps& ops, VcpuHandle vcpu, const char* guest) : ops_(ops), vcpu_(vcpu), guest_(guest) {}
    CpuidValues host_cpuid(u32 leaf, u32 subleaf) override { return ops_.host_cpuid(leaf, subleaf); }
    GuestXsaveControls guest_xsave_controls() override { return ops_.xsave_controls(vcpu_); }
    void set_guest_xcr0(u64 xcr0) override { ops_.set_xcr0(vcpu_, xcr0); }
    void console_line(const char* text, usize) override { log::info("[{}] {}", guest_, text); }
    // Built-in guests have no domain and no capabilities: only the null hypercall (0) exists.
    ExitOutcome hypercall(VcpuState& state, GuestConsole&) override {
        state.rax() = state.rax() == 0 ? NESTOR_E_OK : NESTOR_E_INVALID_HYPERCALL;
        return {};
    }

private:
    const VirtOps& ops_;
    VcpuHandle vcpu_;
    const char* guest_;
};

const char* access_name(MemoryAccess access) {
    switch (access) {
    case MemoryAccess::read: return "read";
    case MemoryAccess::write: return "write";
    case MemoryAccess::execute: return "execute";
    }
    return "?";
}

void report_stop(const char* name, const ExitOutcome& outcome, const VmExit& exit, const VcpuState& state, u64 exits) {
    if (outcome.reason == StopReason::exit_port || outcome.reason == StopReason::halted) {
        log::info("virt: guest {} exited with status {} ({}) after {} exits", name, outcome.status,
                  stop_reason_name(outcome.reason), exits);
        return;
    }
    log::error("virt: guest {} stopped: {} after {} exits (exit {} code {:#x} at rip {:#x})", name,
               stop_reason_name(outcome.reason), exits, exit_kind_name(exit.kind), exit.vendor_code, state.rip);
    if (exit.kind == ExitKind::nested_page_fault)
        log::error("virt: guest {}: {} of guest-physical {:#x}, {}", name, access_name(exit.npf.access),
                   exit.npf.guest_physical, exit.npf.present ? "not permitted" : "outside guest memory");
}

struct GuestMemory {
    paddr base;
    u64 size;
};

// The guest's RAM, contiguous from guest-physical 0, with its code copied in.
bool load_builtin_guest(const BuiltinGuest& guest, GuestMemory& memory) {
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
                                              const GuestMemory& memory) {
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

const char* virt_error_name(VirtError error) {
    switch (error) {
    case VirtError::unsupported: return "not supported on this CPU or build";
    case VirtError::disabled_by_firmware: return "disabled by firmware";
    case VirtError::out_of_asids: return "out of ASIDs";
    case VirtError::bad_guest: return "bad guest description";
    case VirtError::overlapping_mapping: return "guest-physical memory mapped twice";
    case VirtError::out_of_memory: return "out of memory";
    }
    return "?";
}

const VirtOps* select_virt_ops() {
    if (ops_selected) return selected_ops;
    ops_selected = true;
    switch (platform::cpu_features().vendor) {
    case CpuVendor::amd: selected_ops = svm_backend(); break;
    case CpuVendor::intel: selected_ops = vmx_backend(); break;
    case CpuVendor::unknown: break;
    }
    if (selected_ops && !selected_ops->supported()) selected_ops = nullptr;
    return selected_ops;
}

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

    GuestMemory memory{};
    if (!load_builtin_guest(*guest, memory)) {
        ops->disable();
        return kFailureStatus;
    }
    VcpuState state{};
    auto vm = create_builtin_vm(*ops, *guest, memory);
    if (!vm) {
        log::error("virt: creating guest {}: {}", name, virt_error_name(vm.error()));
        platform::free_physical(memory.base, memory.size);
        ops->disable();
        return kFailureStatus;
    }
    auto vcpu = ops->create_vcpu(*vm, InitialMode{guest->mode, 0}, state);
    if (!vcpu) {
        log::error("virt: creating guest {}: {}", name, virt_error_name(vcpu.error()));
        ops->destroy_vm(*vm);
        platform::free_physical(memory.base, memory.size);
        ops->disable();
        return kFailureStatus;
    }
    state.rip = guest->entry;
    state.reg(Gpr::rsp) = guest->stack_top;
    log::info("virt: guest {} starts on {} ({} KiB, entry {:#x})", name, ops->name, guest->memory_bytes >> 10,
              guest->entry);

    KernelEnvironment env(*ops, *vcpu, name);
    GuestConsole console{};
    ExitOutcome outcome;
    VmExit exit{};
    u64 exits = 0;
    u64 preemptions = 0;
    u64 preempted_in_a_row = 0;
    u64 started = platform::timestamp();
    for (;;) {
        if (exits == kMaxExits) {
            outcome = ExitOutcome{.stop = true, .reason = StopReason::exit_limit, .status = kFailureStatus};
            flush_console(console, env);
            break;
        }
        exit = ops->run(*vcpu, state, time_slice);
        ++exits;
        if (exit.kind == ExitKind::preemption) {
            ++preemptions;
            if (++preempted_in_a_row == kMaxPreemptions) {
                flush_console(console, env);
                outcome = ExitOutcome{.stop = true, .reason = StopReason::exit_limit, .status = kFailureStatus};
                log::error("virt: guest {} ran {} time slices without an exit of its own", name, kMaxPreemptions);
                break;
            }
        } else {
            preempted_in_a_row = 0;
        }
        if (log::threshold() >= log::Level::debug)
            log::debug("virt: exit {} (code {:#x}) at rip {:#x}, length {}", exit_kind_name(exit.kind),
                       exit.vendor_code, state.rip, exit.instruction_length);
        outcome = handle_exit(exit, state, console, env);
        // A built-in guest has nothing that could wake it: waiting is the end of it.
        if (outcome.wait) outcome = ExitOutcome{.stop = true, .reason = StopReason::halted};
        if (outcome.stop) break;
        if (outcome.inject) ops->inject_exception(*vcpu, outcome.vector, outcome.has_error_code, outcome.error_code);
    }
    u64 elapsed = platform::timestamp() - started;
    report_stop(name, outcome, exit, state, exits);
    log::debug("virt: guest {} ran for {} cycles", name, elapsed);
    if (preemptions) log::info("virt: guest {} was preempted {} times", name, preemptions);
    ops->destroy_vcpu(*vcpu);
    ops->destroy_vm(*vm);
    platform::free_physical(memory.base, memory.size);
    ops->disable();
    return outcome.status;
}

}  // namespace nestor::virt
