// Nested virtualization as one constant table of operations: the nhvm_* hooks of Xen's
// hvm_function_table, adapted to the vendor-neutral vCPU. Exactly one component defines
// `nested_ops`, and the build chooses which at link time: the real one (components/nested/,
// NESTED_VIRT=ON) or the null one (components/nested/null/, NESTED_VIRT=OFF). The kernel reaches
// nested code only through this table (but for one call, NestedVcpu::guest_exit below), and
// only for domains created with NESTOR_DOMAIN_FLAG_NESTED_VIRT, which the sanitiser accepts only
// when `availability` says yes. So in a NESTED_VIRT=OFF image every hook but `availability` is
// unreachable.
//
// VMCB/VMCS knowledge stays in the component: the kernel passes neutral exits (VmExit,
// VcpuState) and gets back a Decision it knows how to apply.
#pragma once

#include "nestor/lib/result.hpp"
#include "nestor/platform.hpp"
#include "nestor/virt/exit.hpp"
#include "nestor/virt/vcpu_state.hpp"
#include "nestor/virt/virt_ops.hpp"

namespace nestor::nested {

// Whether this build on this CPU can offer nested virtualization; `reason` says why not (for
// the banner and the log of a refused domain) and is "" when available.
struct Availability {
    bool available;
    const char* reason;
};

enum class Error : u8 {
    unavailable,  // the predicate says no (the sanitiser should have refused the domain)
};

// What the exit handler does with an exit the component has judged.
enum class Action : u8 {
    not_nested,  // not the component's business: the kernel applies its rule for every guest
    complete,    // emulated: step over the instruction (MSR reads: EDX:EAX = Decision::value)
    inject_ud,
    inject_gp,
    stop,  // stop the domain; Decision::report says why
    // MSR writes: the component took its part (EFER.SVME); the kernel applies its own rule to
    // the write of Decision::value (the rest), as for every guest.
    forward,
    // The component switched the vCPU between L1 and L2 itself (VMRUN, a #VMEXIT into L1, a
    // shadow page installed): it wrote the state the vCPU runs with next. Run it again as it is.
    resume,
};

// Sixteen bytes, so that it comes back in two registers from every hook (the reflected exit's
// own return among them): `action` says which member holds.
struct Decision {
    Action action = Action::not_nested;
    union {
        u64 value = 0;       // an MSR read's result (complete) or what is left to write (forward)
        const char* report;  // Action::stop: one sentence for the log
    };
};
static_assert(sizeof(Decision) == 16);

struct NestedOps;
struct NestedVcpu;

// One 4 KiB page of an L1's guest-physical memory as L0 maps it (the domain's mappings).
struct GuestPage {
    bool ram;  // false: not mapped (a hole or beyond the domain's memory)
    paddr host;
    bool writable;
    bool executable;
};

// What the kernel lends the component for one domain with nested virtualization: the domain's
// guest-physical memory through its mappings (where L1's VMCBs, permission maps and nested page
// tables live) and memory of L0's own (the component's per-vCPU state, shadow page tables).
// Every read copies; the component never keeps a pointer into L1's memory.
class Host {
public:
    // Copies [gpa, gpa + bytes) of the domain's readable memory; false if any byte is not.
    virtual bool read(u64 gpa, void* out, usize bytes) = 0;
    // Writes into the domain's writable memory; false (nothing written) if any byte is not.
    virtual bool write(u64 gpa, const void* in, usize bytes) = 0;
    virtual GuestPage page(u64 gpa) = 0;
    // L0's view of [gpa, gpa + bytes) when it is the domain's memory in one piece (writable when
    // `writable`), for an update of many fields at once (a #VMEXIT into a VMCB); nullptr if not.
    // It stays the domain's memory until the kernel unmaps it from the domain's VM, which the
    // backend tells the component (the SVM backend's mapping generation).
    virtual u8* window(u64 gpa, usize bytes, bool writable) = 0;
    // Atomically ORs `bits` into the aligned u64 at `gpa`; false if it is not writable memory.
    virtual bool set_bits(u64 gpa, u64 bits) = 0;
    // Zeroed, physically contiguous L0 memory of `bytes` (a multiple of 4 KiB); nullptr if none.
    virtual void* allocate(usize bytes, paddr& physical) = 0;
    virtual void release(paddr physical, usize bytes) = 0;
    virtual void* pointer(paddr physical) = 0;  // L0's view of memory allocate() returned
    // An MSR a device of the domain serves for `vcpu` (a PC domain's TSC, TSC deadline, APIC base,
    // MTRRs: docs/msrs.md), read or written as that vCPU's RDMSR / WRMSR would reach the device.
    // False: no device serves `index`, or the device refuses the access (the instruction would
    // fault). VMX's MSR lists load and store through it what the vCPU does not own itself.
    virtual bool device_msr_read(NestedVcpu& vcpu, u32 index, u64& value) = 0;
    virtual bool device_msr_write(NestedVcpu& vcpu, u32 index, u64 value) = 0;

protected:
    // Inlined into the kernel's implementation: an image without the component (NESTED_VIRT=OFF)
    // carries no nestor::nested symbol but the null table.
    [[gnu::always_inline]] constexpr Host() = default;
    ~Host() = default;
};

// Opaque per-domain and per-vCPU state of a domain with nested virtualization. The kernel keeps
// them with the domain and the vCPU but never looks inside `state`: it belongs to the component.
// `ops` is the linked table, set by the kernel when it initialises them (kernel/virt); null
// means "no nested virtualization", and the exit handler then calls no nested code at all.
inline constexpr usize kDomainStateBytes = 32;
inline constexpr usize kVcpuStateBytes = 64;

struct NestedDomain {
    const NestedOps* ops = nullptr;
    alignas(u64) u8 state[kDomainStateBytes] = {};
};

struct NestedVcpu {
    const NestedOps* ops = nullptr;
    Host* host = nullptr;  // the kernel's services for this vCPU's domain (set before it runs)
    // The backend's operations for the component (InitialMode::nested_hardware), opaque here.
    void* hardware = nullptr;
    // While the vCPU runs L1's guest (in_guest_mode): the component's judgement of its exits, as
    // NestedOps::reflect_exit; nullptr while it runs L1. Only the component sets it. The kernel's
    // run loop calls it directly, the one call into the component that does not go through the
    // table: through the table (in_guest_mode, then reflect_exit and its dispatch to the vendor
    // part) every exit of L2 costs 22 instructions more (the nested benchmark under icount: L0's
    // share of a reflected exit 421 instead of 399, an exit L0 handles for L2 569 instead of 547)
    // and every exit of L1 11 more (L0's share of a VMRUN 1243 instead of 1232). Called as the
    // exit is reported, before anything changes `state`: the component may take it to be what the
    // backend read from the exit (nested SVM writes it into no VMCB before a #VMEXIT).
    Decision (*guest_exit)(NestedVcpu& vcpu, const virt::VmExit& exit, virt::VcpuState& state) = nullptr;
    alignas(u64) u8 state[kVcpuStateBytes] = {};
};

struct NestedOps {
    const char* name;  // "null" or the vendor parts built in ("svm+vmx", "svm", "vmx")

    // The predicate (like Xen's hvm_nested_virt_supported()): can this build offer nested
    // virtualization on `cpu`? The kernel combines it with the backend (kernel/virt).
    Availability (*availability)(const CpuFeatures& cpu);

    // A domain: `memory_bytes` is its guest-physical size (where L1 structures may live).
    Status<Error> (*domain_initialise)(NestedDomain& domain, const CpuFeatures& cpu, u64 memory_bytes);
    // nhvm_domain_relinquish_resources: frees what the domain holds. Its vCPUs are destroyed first.
    void (*domain_teardown)(NestedDomain& domain);

    // nhvm_vcpu_initialise / destroy / reset. A vCPU starts (and resets to) the power-on state:
    // EFER.SVME clear, no VMXON, not in guest mode.
    Status<Error> (*vcpu_initialise)(NestedVcpu& vcpu, NestedDomain& domain);
    void (*vcpu_destroy)(NestedVcpu& vcpu);
    void (*vcpu_reset)(NestedVcpu& vcpu);

    // The guest executed VMRUN, VMLOAD, VMSAVE, STGI, CLGI, INVLPGA, SKINIT or a VMX instruction
    // (exit.vendor_code tells which). Never Action::not_nested.
    Decision (*virtualization_instruction)(NestedVcpu& vcpu, const virt::VmExit& exit, virt::VcpuState& state);
    // RDMSR / WRMSR of the virtualization interface (EFER.SVME, VM_CR, VM_HSAVE_PA, FEATURE_CONTROL,
    // the VMX capability MSRs); Action::not_nested for every other MSR.
    Decision (*msr_read)(NestedVcpu& vcpu, u32 index, const virt::VcpuState& state);
    Decision (*msr_write)(NestedVcpu& vcpu, u32 index, u64 value, const virt::VcpuState& state);
    // Adjusts the CPUID policy's answer `guest` (host-derived, SVM/VMX hidden) for an L1
    // hypervisor: shows the virtualization extension the component emulates.
    void (*cpuid)(const NestedVcpu& vcpu, u32 leaf, u32 subleaf, virt::CpuidValues& guest);

    // nhvm_vcpu_in_guestmode: the vCPU runs L1's guest (L2).
    bool (*in_guest_mode)(const NestedVcpu& vcpu);
    // nhvm_vcpu_vmexit_event: an exit taken while in guest mode (the kernel's exit path calls the
    // same judgement through NestedVcpu::guest_exit); the component decides whether L1
    // intercepts it (and emulates the #VMEXIT / VM exit into L1: Action::resume). Action::not_nested:
    // the exit is L0's (a physical interrupt, preemption, an access L1 lets L2 make): the kernel
    // applies its rule for the exit, in L1's terms, to the state L2 runs with.
    Decision (*reflect_exit)(NestedVcpu& vcpu, const virt::VmExit& exit, virt::VcpuState& state);
    // nhvm_vmcx_guest_intercepts_event: while L2 runs, the kernel's rule for an exit that was L0's
    // raised an exception for L2 (#GP for an MSR L1 lets through, #UD...). If L1 intercepts that
    // vector the exception is L1's: the component emulates the #VMEXIT (Action::resume);
    // Action::not_nested: inject it into L2. `state` is L2's, RIP on the faulting instruction.
    Decision (*exception_for_l2)(NestedVcpu& vcpu, u8 vector, bool has_error_code, u32 error_code,
                                 virt::VcpuState& state);
    // nhvm_intr_blocked, and what follows: a virtual interrupt of L1's, `vector`, is due.
    // Action::resume holds it back: L1's state masks it (GIF clear, IF clear while L2 runs), or
    // the component turned it into a #VMEXIT(INTR) into L1 (the state switched to L1, GIF now
    // clear). Action::complete: the component turned it into a VM exit into L1 that acknowledged
    // it (VMX's "acknowledge interrupt on exit": the vector is in the exit's information), so the
    // caller marks it taken, as the CPU's acknowledgement would. Action::not_nested: the kernel
    // injects it into what runs next (L1, or L2 when L1 lets L2 take L1's interrupts).
    // Action::stop: the #VMEXIT could not be written.
    Decision (*route_interrupt)(NestedVcpu& vcpu, virt::VcpuState& state, u8 vector);
    // The same for an NMI of L1's. Action::resume holds it back: GIF clear, or the component
    // turned it into a #VMEXIT(NMI) into L1, which leaves it pending (SVM: L1 takes it once it
    // sets GIF again). Action::complete: a VM exit into L1 took it (VMX's NMI exiting; L1's NMIs
    // are blocked until its IRET), so the caller marks it taken. Action::not_nested: the kernel
    // injects it into what runs next. Action::stop: the exit could not be written.
    Decision (*route_nmi)(NestedVcpu& vcpu, virt::VcpuState& state);
    // An INIT for the vCPU (its local APIC's; an application processor's) while the domain nests.
    // Action::not_nested: the vCPU takes it (the kernel resets it, which ends its nested state).
    // Action::resume: it stays pending: L1's state blocks it (VMX root operation, GIF clear), or
    // the component turned it into a #VMEXIT(INIT) into L1 that leaves it pending (SVM: GIF is
    // clear after it). The kernel asks again before each run. Action::complete: a VM exit into L1
    // took it (VMX's exit reason 3 while L2 runs): the caller drops it. Either VM exit switches
    // the vCPU to L1 (in_guest_mode turns false), which runs even if L2 had halted. Action::stop:
    // the exit could not be written.
    Decision (*init_signal)(NestedVcpu& vcpu, virt::VcpuState& state);
    // nestedhvm_hap_nested_page_fault: an NPT/EPT fault; Action::not_nested when it is L1's own
    // access (the kernel's rule for every guest applies).
    Decision (*nested_page_fault)(NestedVcpu& vcpu, const virt::NestedPageFaultExit& fault);
};

// Defined by the component the build links (real or null); constant-initialised.
extern const NestedOps nested_ops;

}  // namespace nestor::nested
