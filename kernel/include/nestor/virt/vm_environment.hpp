// What the exit handler needs from outside the guest (ExitEnvironment), for a Vm: the backend's
// CPUID and extended-state controls, the VM's console and ports, and its hypercalls (the
// capability dispatch for a domain, only the null call for a built-in guest).
#pragma once

#include "nestor/cap/hypercall.hpp"
#include "nestor/log.hpp"
#include "nestor/platform.hpp"
#include "nestor/virt/vm.hpp"

namespace nestor::virt {

class VmEnvironment final : public ExitEnvironment {
public:
    // The environment of vCPU `vcpu` of `vm`.
    VmEnvironment(Vm& vm, Vcpu& vcpu) : vm_(vm), vcpu_(vcpu) {}
    explicit VmEnvironment(Vm& vm) : VmEnvironment(vm, vm.vcpus[0]) {}
    CpuidValues host_cpuid(u32 leaf, u32 subleaf) override { return vm_.ops->host_cpuid(leaf, subleaf); }
    void console_line(const char* text, usize length) override { log::console_text(vm_.name, text, length, true); }
    void console_part(const char* text, usize length) override { log::console_text(vm_.name, text, length, false); }
    ExitOutcome hypercall(VcpuState& state) override;
    nested::NestedVcpu* nested_vcpu() override { return vcpu_.nested_state(); }
    bool port_held(u16 port, u8 size) override;
    u32 port_read(u16 port, u8 size) override { return platform::port_read(port, size); }
    void port_write(u16 port, u8 size, u32 value) override { platform::port_write(port, size, value); }
    GuestXsaveControls guest_xsave_controls() override { return vm_.ops->xsave_controls(vcpu_.handle); }
    void set_guest_xcr0(u64 xcr0) override { vm_.ops->set_xcr0(vcpu_.handle, xcr0); }
    void unknown_msr(u32 index, bool write) override {
        UnknownMsrLog::Report report = vm_.unknown_msrs.note(index);
        if (report == UnknownMsrLog::Report::this_msr)
            log::warn("{} {}: {} of unknown MSR {:#x}: #GP", vm_.label, vm_.name, write ? "write" : "read", index);
        else if (report == UnknownMsrLog::Report::further_msrs)
            log::warn("{} {}: further unknown MSRs go unreported", vm_.label, vm_.name);
    }
    Result<MmioAccess, MmioDecodeError> decode_mmio(const VcpuState& state) override {
        return decode_mmio_at_rip(*vm_.ops, vcpu_.handle, state);
    }

private:
    ExitOutcome dispatch_hypercall(VcpuState& state);
    ExitOutcome platform_call(const cap::HypercallArgs& in, cap::HypercallResult& out);
    u64 console_write(u64 gpa, u64 length);
    Vm& vm_;
    Vcpu& vcpu_;
};

}  // namespace nestor::virt
