// Inside the real nested component: the vendor parts and the state the component keeps in the
// kernel's opaque NestedDomain / NestedVcpu storage. Nothing outside components/nested/ includes
// this header: the kernel sees only the table (nestor/nested/nested_ops.hpp).
#pragma once

#include "nestor/nested/nested_ops.hpp"
#include "shadow_tree.hpp"

namespace nestor::nested {

// One vendor's half of the component (nested SVM on AMD, nested VMX + nested EPT on Intel).
// The exported table owns the life cycle and dispatches the rest to the part serving the vCPU.
struct VendorPart {
    const char* name;  // "svm", "vmx"
    Availability (*availability)(const CpuFeatures& cpu);
    void (*vcpu_reset)(NestedVcpu& vcpu);
    void (*vcpu_destroy)(NestedVcpu& vcpu);  // frees what the part allocated (nullptr: nothing)
    Decision (*virtualization_instruction)(NestedVcpu& vcpu, const virt::VmExit& exit, virt::VcpuState& state);
    Decision (*msr_read)(NestedVcpu& vcpu, u32 index, const virt::VcpuState& state);
    Decision (*msr_write)(NestedVcpu& vcpu, u32 index, u64 value, const virt::VcpuState& state);
    void (*cpuid)(const NestedVcpu& vcpu, u32 leaf, u32 subleaf, virt::CpuidValues& guest);
    Decision (*reflect_exit)(NestedVcpu& vcpu, const virt::VmExit& exit, virt::VcpuState& state);
    Decision (*exception_for_l2)(NestedVcpu& vcpu, u8 vector, bool has_error_code, u32 error_code,
                                 virt::VcpuState& state);
    Decision (*route_interrupt)(NestedVcpu& vcpu, virt::VcpuState& state, u8 vector);
    Decision (*route_nmi)(NestedVcpu& vcpu, virt::VcpuState& state);
    Decision (*init_signal)(NestedVcpu& vcpu, virt::VcpuState& state);
    Decision (*nested_page_fault)(NestedVcpu& vcpu, const virt::NestedPageFaultExit& fault);
};

// The parts this build has: each comes from its vendor directory when the vendor's backend is
// built (AMD_SVM, INTEL_VMX) and from absent/ (nullptr) otherwise, chosen at link time.
const VendorPart* svm_part();
const VendorPart* vmx_part();

namespace svm {
struct VcpuBlock;  // nested_svm.cpp: the large per-vCPU state, in L0 memory of its own
}

// What an L1 hypervisor on SVM has set up (its virtual SVM MSRs).
struct SvmVcpu {
    bool svme;              // the L1's EFER.SVME: the real EFER.SVME is always set while a guest runs
    bool l2_svme;           // L2's EFER.SVME while L2 runs (set by VMRUN): L2's EFER is never L1's
    bool gif;               // the global interrupt flag (CLGI/STGI)
    u64 vm_cr;              // VM_CR as the L1 sees it
    u64 hsave_pa;           // VM_HSAVE_PA as the L1 wrote it
    svm::VcpuBlock* block;  // allocated at the first VMRUN (nullptr before)
    paddr block_pa;
};

namespace vmx {
struct Vmcs12;  // vmx/vmcs12.hpp: the current VMCS, cached in L0 memory
}

// What an L1 hypervisor on VMX has set up (vmx/vmx_instructions.hpp).
struct VmxVcpu {
    bool vmxon;            // in VMX operation (after VMXON, until VMXOFF)
    u64 vmxon_pointer;     // VMXON's operand
    u64 current_vmcs;      // the current-VMCS pointer; ~0 when none
    vmx::Vmcs12* cache;    // L0's copy of the current VMCS (allocated at the first VMXON)
    paddr cache_physical;  // 0 before then
};

struct DomainCore {
    const VendorPart* part;
    u64 memory_bytes;  // guest-physical size: L1 structures (host save area, VMCS) must lie below
};

struct VcpuCore {
    const VendorPart* part;
    u64 memory_bytes;
    union {
        SvmVcpu svm;
        VmxVcpu vmx;
    };
};
static_assert(sizeof(DomainCore) <= kDomainStateBytes, "NestedDomain storage too small");
static_assert(sizeof(VcpuCore) <= kVcpuStateBytes, "NestedVcpu storage too small");
static_assert(alignof(VcpuCore) <= alignof(u64) && alignof(DomainCore) <= alignof(u64));

// The component's state inside the kernel's storage (created by domain/vcpu_initialise).
inline DomainCore& core(NestedDomain& domain) {
    return *__builtin_launder(reinterpret_cast<DomainCore*>(domain.state));
}
inline VcpuCore& core(NestedVcpu& vcpu) { return *__builtin_launder(reinterpret_cast<VcpuCore*>(vcpu.state)); }
inline const VcpuCore& core(const NestedVcpu& vcpu) {
    return *__builtin_launder(reinterpret_cast<const VcpuCore*>(vcpu.state));
}

// Running L2 (SVM: after a successful VMRUN, until the #VMEXIT into L1): the part serving the
// vCPU has lent the kernel its handler for L2's exits (NestedVcpu::guest_exit).
inline bool in_guest_mode(const NestedVcpu& vcpu) { return vcpu.guest_exit != nullptr; }

// Shadow-table frames from the kernel's L0 memory for the domain.
class HostTableFrames final : public TableFrames {
public:
    explicit HostTableFrames(Host& host) : host_(host) {}
    bool allocate(paddr& frame) override { return host_.allocate(kPageSize, frame) != nullptr; }
    u64* table(paddr frame) override { return static_cast<u64*>(host_.pointer(frame)); }
    void free(paddr frame) override { host_.release(frame, kPageSize); }

private:
    Host& host_;
};

inline Decision complete(u64 value = 0) { return Decision{Action::complete, {value}}; }
inline Decision inject_ud() { return Decision{Action::inject_ud, {}}; }
inline Decision inject_gp() { return Decision{Action::inject_gp, {}}; }
inline Decision not_nested() { return Decision{}; }
inline Decision stop(const char* report) {
    Decision d{Action::stop, {}};
    d.report = report;
    return d;
}
inline Decision resume() { return Decision{Action::resume, {}}; }

}  // namespace nestor::nested
