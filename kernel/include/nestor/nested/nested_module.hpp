// NESTED_VIRT=MODULE: the nested component as a boot module (docs/nested.md). The module exports
// one symbol, `nestor_nested_module`, a descriptor the kernel checks before it installs the
// module's table: the interface version and a fingerprint of the layout of everything the table
// passes between kernel and component, both compiled into each side from this header. A module
// built against another layout is refused instead of misreading the kernel's structures.
#pragma once

#include "nestor/nested/nested_ops.hpp"

namespace nestor::nested {

inline constexpr u32 kModuleMagic = 0x444f4d4e;  // "NMOD" as little-endian bytes
// Raised when a hook's meaning changes without its layout changing, and when the backend's side
// of the component's contract changes, which the kernel cannot fingerprint (it never includes
// platform headers): NestedVcpu::hardware, the SVM backend's NestedHardware (its operations and
// resources, nestor/x86/svm/nested_hardware.hpp) and the VMX backend's
// (nestor/x86/vmx/nested_hardware.hpp), is part of what this number stands for.
inline constexpr u32 kModuleInterfaceVersion = 13;
inline constexpr const char* kModuleEntrySymbol = "nestor_nested_module";

struct ModuleDescriptor {
    u32 magic;
    u32 interface_version;
    u64 layout_fingerprint;
    const NestedOps* ops;
};

namespace layout {

constexpr u64 mix(u64 hash, u64 value) {
    for (int i = 0; i < 8; ++i) hash = (hash ^ ((value >> (8 * i)) & 0xff)) * 0x100000001b3ull;  // FNV-1a
    return hash;
}

}  // namespace layout

// FNV-1a over the sizes and offsets of the table and of what its hooks take and return.
#define NESTOR_LAYOUT_FIELD(type, field) h = layout::mix(h, __builtin_offsetof(type, field))
constexpr u64 module_layout_fingerprint() {
    u64 h = 0xcbf29ce484222325ull;
    const u64 sizes[] = {sizeof(NestedOps),         sizeof(NestedDomain),
                         sizeof(NestedVcpu),        sizeof(Decision),
                         sizeof(Availability),      sizeof(GuestPage),
                         sizeof(virt::VmExit),      sizeof(virt::VcpuState),
                         sizeof(virt::CpuidValues), sizeof(virt::NestedPageFaultExit),
                         sizeof(CpuFeatures),       kDomainStateBytes,
                         kVcpuStateBytes,           sizeof(ModuleDescriptor)};
    for (u64 size : sizes) h = layout::mix(h, size);
    NESTOR_LAYOUT_FIELD(NestedOps, name);
    NESTOR_LAYOUT_FIELD(NestedOps, availability);
    NESTOR_LAYOUT_FIELD(NestedOps, domain_initialise);
    NESTOR_LAYOUT_FIELD(NestedOps, domain_teardown);
    NESTOR_LAYOUT_FIELD(NestedOps, vcpu_initialise);
    NESTOR_LAYOUT_FIELD(NestedOps, vcpu_destroy);
    NESTOR_LAYOUT_FIELD(NestedOps, vcpu_reset);
    NESTOR_LAYOUT_FIELD(NestedOps, virtualization_instruction);
    NESTOR_LAYOUT_FIELD(NestedOps, msr_read);
    NESTOR_LAYOUT_FIELD(NestedOps, msr_write);
    NESTOR_LAYOUT_FIELD(NestedOps, cpuid);
    NESTOR_LAYOUT_FIELD(NestedOps, in_guest_mode);
    NESTOR_LAYOUT_FIELD(NestedOps, reflect_exit);
    NESTOR_LAYOUT_FIELD(NestedOps, exception_for_l2);
    NESTOR_LAYOUT_FIELD(NestedOps, route_interrupt);
    NESTOR_LAYOUT_FIELD(NestedOps, route_nmi);
    NESTOR_LAYOUT_FIELD(NestedOps, init_signal);
    NESTOR_LAYOUT_FIELD(NestedOps, nested_page_fault);
    NESTOR_LAYOUT_FIELD(NestedVcpu, ops);
    NESTOR_LAYOUT_FIELD(NestedVcpu, host);
    NESTOR_LAYOUT_FIELD(NestedVcpu, hardware);
    NESTOR_LAYOUT_FIELD(NestedVcpu, guest_exit);
    NESTOR_LAYOUT_FIELD(NestedVcpu, state);
    NESTOR_LAYOUT_FIELD(NestedDomain, state);
    NESTOR_LAYOUT_FIELD(Decision, value);
    NESTOR_LAYOUT_FIELD(Decision, report);
    NESTOR_LAYOUT_FIELD(ModuleDescriptor, ops);
    return h;
}
#undef NESTOR_LAYOUT_FIELD

}  // namespace nestor::nested
