// Shared by the nested tests: a CPU description, a fake environment that can give the handler a
// nested vCPU, and exits built by hand.
#pragma once

#include "nestor/virt/cpuid_policy.hpp"
#include "nestor/virt/exit_handler.hpp"
#include "nestor/virt/platform_caps.hpp"
#include "nestor/virt/vm_devices.hpp"

namespace nested_test {

using namespace nestor;
using namespace nestor::virt;

inline CpuFeatures amd_cpu(bool npt = true) {
    CpuFeatures cpu{};
    cpu.vendor = CpuVendor::amd;
    cpu.svm = true;
    cpu.npt = npt;
    cpu.svm_asids = 16;
    return cpu;
}

inline CpuFeatures intel_cpu(bool ept = true, bool unrestricted = true) {
    CpuFeatures cpu{};
    cpu.vendor = CpuVendor::intel;
    cpu.vmx = true;
    cpu.ept = ept;
    cpu.vpid = true;
    cpu.unrestricted_guest = unrestricted;
    return cpu;
}

// A backend table with only its name and vendor: what the nested support and the platform
// capabilities judge a backend by. The names differ from the real ones, as the vendor decides.
inline VirtOps backend_of(CpuVendor vendor, const char* name) {
    VirtOps ops{};
    ops.name = name;
    ops.vendor = vendor;
    return ops;
}
inline const VirtOps kSvmOps = backend_of(CpuVendor::amd, "fake-amd");
inline const VirtOps kVmxOps = backend_of(CpuVendor::intel, "fake-intel");

class Environment final : public ExitEnvironment {
public:
    CpuidValues host_cpuid(u32 leaf, u32) override {
        if (leaf == 1) return {0x00800F12, 0, 0x00000001, 0};
        if (leaf == 0x80000001) return {0, 0, 0x00000004, 0};  // SVM
        if (leaf == 0x8000000A) return {1, 16, 0, 0x1};        // NP
        return {0x11, 0x22, 0x33, 0x44};
    }
    void console_line(const char*, usize) override {}
    ExitOutcome hypercall(VcpuState&) override { return {}; }
    nested::NestedVcpu* nested_vcpu() override { return nested; }

    nested::NestedVcpu* nested = nullptr;
};

struct Guest {
    Environment env;
    VmDevices devices;
    VcpuState state{};
    Guest() {
        (void)devices.attach();  // the same devices as every VM's, on a bus that was empty
        state.rip = 0x1000;
        state.mode = CpuMode::protected32;
    }
    ExitOutcome run(const VmExit& exit) { return handle_exit(exit, state, devices.bus, env); }
    CpuidValues cpuid(u32 leaf) {
        state.rax() = leaf;
        state.rcx() = 0;
        VmExit exit{};
        exit.kind = ExitKind::cpuid;
        exit.instruction_length = 2;
        run(exit);
        return {static_cast<u32>(state.rax()), static_cast<u32>(state.rbx()), static_cast<u32>(state.rcx()),
                static_cast<u32>(state.rdx())};
    }
};

inline VmExit instruction(u64 vendor_code, u8 length = 3) {
    VmExit exit{};
    exit.kind = ExitKind::virtualization_instruction;
    exit.instruction_length = length;
    exit.vendor_code = vendor_code;
    return exit;
}

inline VmExit msr_read(u32 index) {
    VmExit exit{};
    exit.kind = ExitKind::msr_read;
    exit.instruction_length = 2;
    exit.msr = MsrExit{index, 0};
    return exit;
}

inline VmExit msr_write(u32 index, u64 value) {
    VmExit exit{};
    exit.kind = ExitKind::msr_write;
    exit.instruction_length = 2;
    exit.msr = MsrExit{index, value};
    return exit;
}

using x86_regs::kEferSvme;

// Every MSR of the virtualization interface.
inline constexpr u32 kVirtualizationMsrs[] = {0x3A,  0x480, 0x481, 0x482, 0x483, 0x484,      0x485,
                                              0x486, 0x487, 0x488, 0x489, 0x48A, 0x48B,      0x48C,
                                              0x48D, 0x48E, 0x48F, 0x490, 0x491, 0xC0010114, 0xC0010117};

}  // namespace nested_test
