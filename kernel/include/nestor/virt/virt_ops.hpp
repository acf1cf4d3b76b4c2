// The virtualization backend as one constant table of operations, in the style of Xen's
// hvm_function_table: the kernel selects the table once at boot by CPU vendor and then calls
// only through it. A backend's hardware structures (VMCB, VMCS, nested page tables, permission
// maps) stay behind an opaque vCPU handle.
#pragma once

#include "nestor/lib/result.hpp"
#include "nestor/virt/exit.hpp"
#include "nestor/virt/vcpu_state.hpp"

namespace nestor::virt {

enum class VirtError : u8 {
    unsupported,        // the CPU or the build lacks this backend, or a needed feature (NPT/EPT)
    disabled_by_firmware,  // SVM locked off (VM_CR.SVMDIS) / VMX locked off (FEATURE_CONTROL)
    out_of_asids,
    bad_guest,          // the guest description is inconsistent (code outside memory, ...)
    out_of_memory,
};

const char* virt_error_name(VirtError error);

// A guest to create: `memory_bytes` of RAM from guest-physical 0, with `code` copied to
// `code_gpa` (those pages executable and read-only, the rest read-write and not executable).
// The vCPU starts at `state` (RIP, RSP, RFLAGS, GPRs) in `mode`, with flat segments of base 0.
struct GuestSpec {
    const char* name;
    u64 memory_bytes;
    const u8* code;
    usize code_size;
    u64 code_gpa;
    CpuMode mode;  // only real16 so far
};

// The backend's vCPU, opaque to the kernel.
struct BackendVcpu;
using VcpuHandle = BackendVcpu*;

struct CpuidValues {
    u32 eax, ebx, ecx, edx;
};

struct VirtOps {
    const char* name;  // "svm", "vmx"
    // Whether this CPU and this build can run guests with this backend.
    bool (*supported)();
    // Turns virtualization on for the calling CPU (EFER.SVME + host save area / VMXON).
    Status<VirtError> (*enable)();
    void (*disable)();
    // Builds a vCPU with its memory and nested page tables; `initial` gets the architectural
    // state the backend chose for `spec.mode` (control registers, mode).
    Result<VcpuHandle, VirtError> (*create_vcpu)(const GuestSpec& spec, VcpuState& initial);
    // Enters the guest with `state` and returns at the next exit, `state` then holding the
    // guest's registers. RIP changes the kernel made in `state` (to step over an instruction) take
    // effect on the next run.
    VmExit (*run)(VcpuHandle vcpu, VcpuState& state);
    // Queues an exception for delivery at the next entry. The error code is dropped where the
    // architecture pushes none (real mode).
    void (*inject_exception)(VcpuHandle vcpu, u8 vector, bool has_error_code, u32 error_code);
    // Frees everything create_vcpu allocated.
    void (*destroy_vcpu)(VcpuHandle vcpu);
    // The real CPU's CPUID, the input of the guest's CPUID policy.
    CpuidValues (*host_cpuid)(u32 leaf, u32 subleaf);
};

// The backends linked into this image. A backend that is absent returns nullptr.
const VirtOps* svm_backend();
const VirtOps* vmx_backend();

// The table for this CPU, chosen once (first call) by CPU vendor; nullptr if the CPU has no
// usable backend.
const VirtOps* select_virt_ops();

}  // namespace nestor::virt
