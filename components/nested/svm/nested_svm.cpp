// Nested SVM: what an L1 hypervisor on AMD sees of SVM. For now it can discover SVM (CPUID),
// turn on EFER.SVME, set up VM_HSAVE_PA and read VM_CR; running an L2 (VMRUN, VMLOAD, VMSAVE,
// STGI, CLGI, INVLPGA) is issue 7's work, and until then those instructions stop the domain with
// a report that says so, never a silent #UD. Built only with AMD_SVM=ON.
#include "../nested_component.hpp"

namespace nestor::nested {
namespace svm {
namespace {

constexpr u32 kMsrVmCr = 0xC0010114;
constexpr u32 kMsrVmHsavePa = 0xC0010117;
constexpr u64 kEferSvme = u64{1} << 12;
// VM_CR bits an L1 may set: DPD, R_INIT, DIS_A20M. LOCK and SVMDIS stay clear (SVM usable).
constexpr u64 kVmCrWritable = 0x7;
constexpr u64 kPageMask = 0xFFF;

// SVM exit codes of the intercepted instructions (the backend's VmExit::vendor_code).
constexpr u64 kExitInvlpga = 0x7A;
constexpr u64 kExitVmrun = 0x80;
constexpr u64 kExitVmload = 0x82;
constexpr u64 kExitVmsave = 0x83;
constexpr u64 kExitStgi = 0x84;
constexpr u64 kExitClgi = 0x85;
constexpr u64 kExitSkinit = 0x86;

// CPUID as an L1 sees it: SVM revision 1 with nested paging and NRIP save, which the
// component will offer (NRIPS is emulated: the kernel knows every exit's instruction length).
constexpr u32 kCpuidExt1EcxSvm = 1u << 2;
constexpr u32 kSvmRevision = 1;
constexpr u32 kL1Asids = 64;
constexpr u32 kSvmFeatureNp = 1u << 0;
constexpr u32 kSvmFeatureNrips = 1u << 3;

SvmVcpu& svm_of(NestedVcpu& vcpu) { return core(vcpu).svm; }
const SvmVcpu& svm_of(const NestedVcpu& vcpu) { return core(vcpu).svm; }

Availability availability(const CpuFeatures& cpu) {
    if (!cpu.svm) return {false, "the CPU has no SVM"};
    if (!cpu.npt) return {false, "the CPU has no nested paging (NPT), which nested SVM needs"};
    return {true, ""};
}

void vcpu_reset(NestedVcpu& vcpu) { svm_of(vcpu) = SvmVcpu{false, true, 0, 0}; }

// Why the domain stops, per instruction (static sentences: the log prints them as they are).
const char* not_implemented(u64 exit_code) {
    switch (exit_code) {
    case kExitVmrun: return "nested SVM: VMRUN is not implemented yet";
    case kExitVmload: return "nested SVM: VMLOAD is not implemented yet";
    case kExitVmsave: return "nested SVM: VMSAVE is not implemented yet";
    case kExitStgi: return "nested SVM: STGI is not implemented yet";
    case kExitClgi: return "nested SVM: CLGI is not implemented yet";
    case kExitInvlpga: return "nested SVM: INVLPGA is not implemented yet";
    default: return nullptr;
    }
}

Decision virtualization_instruction(NestedVcpu& vcpu, const virt::VmExit& exit, virt::VcpuState& state) {
    // As on the CPU: SVM instructions #UD unless EFER.SVME is set, and outside protected mode.
    // SKINIT is not offered in CPUID, so it always #UDs.
    if (!svm_of(vcpu).svme || state.mode == virt::CpuMode::real16 || exit.vendor_code == kExitSkinit)
        return inject_ud();
    if (const char* report = not_implemented(exit.vendor_code)) return stop(report);
    return stop("nested SVM: an unknown SVM instruction exit");
}

Decision msr_read(NestedVcpu& vcpu, u32 index, const virt::VcpuState& state) {
    switch (index) {
    case virt::kMsrEfer: return complete(state.efer | (svm_of(vcpu).svme ? kEferSvme : 0));
    case kMsrVmCr: return complete(svm_of(vcpu).vm_cr);
    case kMsrVmHsavePa: return complete(svm_of(vcpu).hsave_pa);
    default: return not_nested();
    }
}

// EFER.SVME is the component's; the rest of EFER is the kernel's, as for every guest. A write
// the kernel would refuse changes nothing, SVME included.
Decision write_efer(NestedVcpu& vcpu, u64 value) {
    if ((value & ~(virt::kEferGuestWritable | virt::kEferLma | kEferSvme)) != 0) return inject_gp();
    svm_of(vcpu).svme = (value & kEferSvme) != 0;
    return Decision{Action::forward, value & ~kEferSvme, nullptr};
}

// The host save area must be a page of the L1's own memory.
Decision write_hsave_pa(NestedVcpu& vcpu, u64 value) {
    if ((value & kPageMask) != 0 || value >= core(vcpu).memory_bytes ||
        core(vcpu).memory_bytes - value < kPageMask + 1)
        return inject_gp();
    svm_of(vcpu).hsave_pa = value;
    return complete();
}

Decision msr_write(NestedVcpu& vcpu, u32 index, u64 value, const virt::VcpuState&) {
    switch (index) {
    case virt::kMsrEfer: return write_efer(vcpu, value);
    case kMsrVmCr:
        if ((value & ~kVmCrWritable) != 0) return inject_gp();
        svm_of(vcpu).vm_cr = value;
        return complete();
    case kMsrVmHsavePa: return write_hsave_pa(vcpu, value);
    default: return not_nested();
    }
}

void cpuid(const NestedVcpu&, u32 leaf, u32, virt::CpuidValues& guest) {
    if (leaf == 0x80000001) guest.ecx |= kCpuidExt1EcxSvm;
    if (leaf == 0x8000000A) guest = {kSvmRevision, kL1Asids, 0, kSvmFeatureNp | kSvmFeatureNrips};
}

// No L2 runs before VMRUN is implemented, so nothing can be reflected yet.
Decision reflect_exit(NestedVcpu&, const virt::VmExit&, virt::VcpuState&) { ASSERT_UNREACHABLE(); }

bool interrupts_blocked(const NestedVcpu& vcpu) { return !svm_of(vcpu).gif; }

// Outside guest mode an NPT fault is the L1's own access: the kernel's rule applies.
Decision nested_page_fault(NestedVcpu& vcpu, const virt::NestedPageFaultExit&) {
    if (!core(vcpu).guest_mode) return not_nested();
    ASSERT_UNREACHABLE();  // no L2 runs before VMRUN is implemented
}

constexpr VendorPart kPart = {
    .name = "svm",
    .availability = availability,
    .vcpu_reset = vcpu_reset,
    .virtualization_instruction = virtualization_instruction,
    .msr_read = msr_read,
    .msr_write = msr_write,
    .cpuid = cpuid,
    .reflect_exit = reflect_exit,
    .interrupts_blocked = interrupts_blocked,
    .nested_page_fault = nested_page_fault,
};

}  // namespace
}  // namespace svm

const VendorPart* svm_part() { return &svm::kPart; }

}  // namespace nestor::nested
