// The virtualization backend as one constant table of operations, in the style of Xen's
// hvm_function_table: the kernel selects the table once at boot by CPU vendor and then calls
// only through it. A backend's hardware structures (VMCB, VMCS, nested page tables, permission
// maps) stay behind an opaque vCPU handle.
#pragma once

#include "nestor/lib/result.hpp"
#include "nestor/platform.hpp"
#include "nestor/virt/exit.hpp"
#include "nestor/virt/vcpu_state.hpp"

namespace nestor::virt {

enum class VirtError : u8 {
    unsupported,           // the CPU or the build lacks this backend, or a needed feature (NPT/EPT)
    disabled_by_firmware,  // SVM locked off (VM_CR.SVMDIS) / VMX locked off (FEATURE_CONTROL)
    out_of_asids,
    bad_guest,            // the guest description is inconsistent (bad mode, unaligned mapping, ...)
    overlapping_mapping,  // a guest-physical page is already mapped
    out_of_memory,
};

const char* virt_error_name(VirtError error);

// One piece of a VM's guest-physical memory: what its nested page tables (NPT / EPT) map. The
// kernel builds the list from the memory capabilities a domain holds; nothing else is mapped.
// Read access is implied. Guest RAM is normally writable and executable: what is code inside
// it is the guest's business.
struct GuestMapping {
    u64 guest_physical;   // 4 KiB aligned
    paddr host_physical;  // 4 KiB aligned
    u64 size;             // a multiple of 4 KiB
    bool writable;
    bool executable;
};

// How a vCPU starts. The backend derives every segment and control register from this:
//  - real16: CS:IP = real_mode_segment:rip, with 64 KiB segments as after a reset;
//  - protected32: the multiboot machine state: CR0.PE = 1, paging off, flat 4 GiB 32-bit
//    code and data segments, interrupts off;
//  - long64: flat 64-bit code, paging on with `cr3` (identity tables the loader built),
//    CR4.PAE, EFER.LME/LMA, interrupts off.
struct InitialMode {
    CpuMode mode;  // real16, protected32 or long64
    u64 cr3;       // long64 only
    // The domain may use the CPU's virtualization extensions (nested virtualization): the backend
    // then lets it set CR4.VMXE, which every other guest gets #GP for.
    bool nested = false;
    // Nested virtualization: where the backend stores its hardware context for the nested
    // component (SVM: nestor/x86/svm/nested_hardware.hpp, a second VMCB to run an L2 on and the
    // operations that switch between it and the vCPU's own). Opaque to
    // the kernel, which only hands it to the component (NestedVcpu::hardware). Left untouched by a
    // backend that cannot run an L2; nullptr: not wanted.
    void** nested_hardware = nullptr;
    // real16: CS's selector (its base is selector << 4), where a started application processor
    // begins (the SIPI's vector << 8).
    u16 real_mode_segment = 0;
    // The kernel keeps the guest's task priority (a local APIC's TPR: VcpuState::cr8 and
    // cr8_threshold). Without it a backend may leave both alone on every exit and entry: the
    // guest's CR8 is then its own, and VcpuState::cr8 says nothing.
    bool task_priority = false;
};

// The backend's VM and vCPU, opaque to the kernel. Each backend has types of its own and
// converts these handles to them at its table; the two types here are declared, never defined,
// so that no two backends linked into one image define one name differently.
struct OpaqueVm;
struct OpaqueVcpu;
using VmHandle = OpaqueVm*;
using VcpuHandle = OpaqueVcpu*;

struct CpuidValues {
    u32 eax, ebx, ecx, edx;
};

// What a guest has turned on of its extended state: its CR4 (as it sees it) and its XCR0.
struct GuestXsaveControls {
    u64 cr4;
    u64 xcr0;
};

// Bytes of a guest's code (VirtOps::guest_code): `available` of them readable at `bytes` (0: none).
struct GuestCode {
    const u8* bytes;
    usize available;
};

struct VirtOps {
    const char* name;  // "svm", "vmx": for messages
    CpuVendor vendor;  // whose virtualization extensions it drives: AMD's SVM, Intel's VMX
    // Whether this CPU and this build can run guests with this backend.
    bool (*supported)();
    // Turns virtualization on for the calling CPU (EFER.SVME + host save area / VMXON).
    Status<VirtError> (*enable)();
    void (*disable)();

    // A VM: an address space (nested page tables, ASID / VPID) with no memory yet.
    Result<VmHandle, VirtError> (*create_vm)();
    // Adds `mapping` to the VM's nested page tables; overlapping an existing mapping is refused.
    Status<VirtError> (*map)(VmHandle vm, const GuestMapping& mapping);
    // Removes guest-physical [gpa, gpa + size) from the nested page tables and makes every vCPU
    // of the VM forget stale translations before it runs again. Pages not mapped are skipped.
    Status<VirtError> (*unmap)(VmHandle vm, u64 guest_physical, u64 size);
    // Frees the nested page tables. Every vCPU of the VM must be destroyed first.
    void (*destroy_vm)(VmHandle vm);

    // A vCPU of `vm` in `initial` mode; `state` gets the architectural values the backend chose
    // (RFLAGS, CR0, EFER, mode); the kernel then sets RIP, RSP and the GPRs it wants.
    Result<VcpuHandle, VirtError> (*create_vcpu)(VmHandle vm, const InitialMode& initial, VcpuState& state);
    // Enters the guest with `state` and returns at the next exit, `state` then holding the
    // guest's registers. RIP changes the kernel made in `state` (to step over an instruction) take
    // effect on the next run. A run also ends, with ExitKind::preemption, when `time_slice`
    // timestamp ticks have passed (0 = no limit), so a guest that never exits cannot keep the CPU.
    // The slice spans a vCPU's runs, so neither can a guest that exits often: it starts at a run
    // after the vCPU's last slice ended in preemption or after another vCPU ran, and a run whose
    // slice is already over ends at once with ExitKind::preemption, the guest running no instruction.
    VmExit (*run)(VcpuHandle vcpu, VcpuState& state, u64 time_slice);
    // Queues an exception for delivery at the next entry. The error code is dropped where the
    // architecture pushes none (real mode).
    void (*inject_exception)(VcpuHandle vcpu, u8 vector, bool has_error_code, u32 error_code);
    // Queues external interrupt `vector` for the next entry if the vCPU can take one now (IF set,
    // no interrupt shadow on the instruction at state.rip, no other event queued); false if not,
    // and the caller tries again after a later exit.
    bool (*inject_interrupt)(VcpuHandle vcpu, const VcpuState& state, u8 vector);
    // Asks for (on) or stops asking for (off) a run that ends with ExitKind::interrupt_window as
    // soon as the vCPU can take an external interrupt: where inject_interrupt refused, the caller
    // asks, and injects at that exit. Such an exit runs no instruction. The request stays until
    // turned off: with the window open, every run ends at once.
    void (*request_interrupt_window)(VcpuHandle vcpu, bool on);
    // Queues an NMI for the next entry if the vCPU can take one now; false while it blocks NMIs
    // (from an NMI's delivery until the IRET that ends its handler, or in the shadow of STI / MOV
    // SS on the instruction at state.rip) or another event is queued.
    bool (*inject_nmi)(VcpuHandle vcpu, const VcpuState& state);
    // As request_interrupt_window, for NMIs: a run ends with ExitKind::nmi_window once inject_nmi
    // would succeed.
    void (*request_nmi_window)(VcpuHandle vcpu, bool on);
    // The vCPU's TSC offset: from its next run on, RDTSC and RDTSCP in the guest read the host's
    // TSC + `offset` (wrapping). The caller keeps a domain's TSC from going backwards across its
    // vCPUs: every vCPU of a domain has the same offset, changed for all of them while none runs
    // (docs/architecture.md).
    void (*set_tsc_offset)(VcpuHandle vcpu, u64 offset);
    // Ends the vCPU's time slice: its next run starts a new one, of the time_slice that run
    // passes. For a caller that wants a shorter slice than the one running (a guest timer due
    // sooner), and after the CPU idled (which used the timer a slice runs on).
    void (*new_slice)(VcpuHandle vcpu);
    // Frees everything create_vcpu allocated.
    void (*destroy_vcpu)(VcpuHandle vcpu);

    // The real CPU's CPUID, the input of the guest's CPUID policy.
    CpuidValues (*host_cpuid)(u32 leaf, u32 subleaf);

    // The guest's CR4 and XCR0 (the CPUID leaves that report them; xsave_policy.hpp).
    GuestXsaveControls (*xsave_controls)(VcpuHandle vcpu);
    // Makes `xcr0` the vCPU's XCR0 (an XSETBV the kernel checked against the offer): the backend
    // loads it, with the rest of the vCPU's extended state, whenever the vCPU runs.
    void (*set_xcr0)(VcpuHandle vcpu, u64 xcr0);

    // Up to `size` bytes of the guest's code at CS:RIP (`state` as the last exit left it), through
    // the guest's own paging and the VM's nested tables: in place when they lie in the code page
    // the vCPU has cached (an MMIO access's instruction is decoded at every such exit: a copy
    // would be a fair part of its cost), else copied into `scratch`. An instruction the kernel
    // emulates is decoded from these.
    GuestCode (*guest_code)(VcpuHandle vcpu, const VcpuState& state, u8* scratch, usize size);
};

// The backends linked into this image. A backend that is absent returns nullptr.
const VirtOps* svm_backend();
const VirtOps* vmx_backend();

// The table for this CPU, chosen once (first call) by CPU vendor; nullptr if the CPU has no
// usable backend.
const VirtOps* select_virt_ops();

}  // namespace nestor::virt
