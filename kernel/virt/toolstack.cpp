// The kernel as the appliance's toolstack (toolstack.hpp): domains built with hypercalls.
#include "nestor/virt/toolstack.hpp"

#include "nestor/abi/abi.h"
#include "nestor/cap/cnode.hpp"
#include "nestor/cap/hypercall.hpp"
#include "nestor/cap/operations.hpp"
#include "nestor/log.hpp"
#include "nestor/platform.hpp"
#include "nestor/virt/boot_modules.hpp"
#include "nestor/virt/linux_loader.hpp"
#include "nestor/virt/platform_caps.hpp"

namespace nestor::virt {
namespace {

// Room in the boot untyped for what is not guest RAM: every domain's kernel objects, CSpace and
// notification, and the toolstack's own CSpace.
constexpr u64 kKernelObjectsPerDomain = 256 * 1024;
constexpr u64 kToolstackBytes = 1024 * 1024;
constexpr u32 kToolstackCSpaceBits = 9;
constexpr u64 kMaxRegionBits = 30;  // the largest memory region the runtime carves

u64 untyped_bytes(const manifest::Manifest& m) {
    u64 total = kToolstackBytes;
    for (u32 i = 0; i < m.domain_count(); ++i) total += m.domain(i).memory_bytes() + kKernelObjectsPerDomain;
    return total;
}

// Guest RAM as the loader writes it: through the VM's guest-memory accessor.
class VmRam final : public GuestRam {
public:
    VmRam(const GuestMemory& memory, RamLayout layout) : memory_(memory), layout_(layout) {}
    u64 size() const override { return layout_.below_4g; }
    u64 high_size() const override { return layout_.above_4g; }
    bool write(u64 gpa, const void* data, usize length) override { return memory_.write(gpa, data, length); }
    bool fill(u64 gpa, u8 value, usize length) override { return memory_.fill(gpa, value, length); }

private:
    const GuestMemory& memory_;
    RamLayout layout_;
};

RamLayout layout_of(const manifest::ManifestDomain& m) {
    return ram_layout(m.memory_bytes(), m.platform() == NESTOR_MANIFEST_PLATFORM_PC);
}

BuildFault backend_fault(const char* what, VirtError error) {
    return BuildFault{.kind = BuildFault::Kind::backend, .what = what, .code = static_cast<u64>(error)};
}

// The TSC rate a Linux guest is told on its command line (its TSC runs at the host's rate), as
// measured at boot: on AMD no CPUID leaf gives Linux the rate and it would calibrate against
// exiting PIT and PM timer reads; on Intel CPUID 0x15/0x16 may not be the TSC's (Bochs' claim
// 3.5 GHz for a 100 MHz TSC).
u64 linux_tsc_khz(const Vm&) { return platform::timestamp_khz(); }

}  // namespace

const char* pc_error_name(PcError error) {
    switch (error) {
    case PcError::no_room: return "every PC of this boot is in use";
    case PcError::too_many_vcpus: return "more vCPUs than a PC has local APICs";
    case PcError::bus_full: return "no room on its device bus";
    case PcError::tables_dont_fit: return "its ACPI or SMBIOS tables do not fit";
    }
    return "?";
}

void log_build_fault(const char* name, const BuildFault& f) {
    using Kind = BuildFault::Kind;
    switch (f.kind) {
    case Kind::refused: log_domain_refusal(name, static_cast<cap::Error>(f.code)); return;
    case Kind::one_vcpu_only:
        log::error(
            "appliance: domain {} refused: it asks for {} vCPUs, more than this appliance starts ({} on the PC "
            "platform, 1 otherwise)",
            name, f.code, kMaxVcpusPerVm);
        return;
    case Kind::no_pc_platform:
        log::error("appliance: domain {} refused: it asks for platform \"pc\", and this build has PC_PLATFORM=OFF",
                   name);
        return;
    case Kind::pc:
        log::error("appliance: domain {}: its PC could not be built: {}", name,
                   pc_error_name(static_cast<PcError>(f.code)));
        return;
    case Kind::pc_reset:
        log::error("appliance: domain {}: its PC could not be reset: {}", name,
                   pc_error_name(static_cast<PcError>(f.code)));
        return;
    case Kind::memory_clear: log::error("appliance: domain {}: its memory could not be cleared", name); return;
    case Kind::hypercall:
        log::error("appliance: domain {}: {} failed: {}", name, f.what, cap::status_name(f.code));
        return;
    case Kind::backend:
        log::error("appliance: domain {}: {}: {}", name, f.what, virt_error_name(static_cast<VirtError>(f.code)));
        return;
    case Kind::kernel_ports:
        log::error("appliance: domain {}: ports {:#x}-{:#x} belong to the kernel", name, f.first, f.last);
        return;
    case Kind::no_module: log::error("appliance: domain {}: no boot module named \"{}\"", name, f.what); return;
    case Kind::bad_image:
        log::error("appliance: domain {}: image \"{}\": {}", name, f.what,
                   load_error_name(static_cast<LoadError>(f.code)));
        return;
    case Kind::nested_set_up: log::error("appliance: domain {}: setting up nested virtualization failed", name); return;
    case Kind::no_memory: log::error("appliance: not enough memory for the domains ({} MiB)", f.code); return;
    case Kind::runtime_refused:
        log::error("appliance: the capability runtime refused to boot: {}", cap::status_name(f.code));
        return;
    }
}

Status<BuildFault> Toolstack::bootstrap(const manifest::Manifest& m, cap::System& system) {
    u64 bytes = untyped_bytes(m);
    paddr base = 0;
    // Not cleared here: a MEMORY retype clears each domain's memory, the one pass it needs.
    if (!platform::allocate_physical_uncleared(bytes, base))
        return fail(BuildFault{.kind = BuildFault::Kind::no_memory, .code = bytes >> 20});
    cap::DomainConfig config{1, kPageSize, 0, NESTOR_CPUID_POLICY_DEFAULT, kToolstackCSpaceBits};
    auto booted = cap::bootstrap(system, base, bytes, config);
    if (!booted)
        return fail(BuildFault{.kind = BuildFault::Kind::runtime_refused, .code = static_cast<u64>(booted.error())});
    system_ = &system;
    self_ = booted.value();
    next_slot_ = cap::kBootFirstFreeSlot;
    return {};
}

u64 Toolstack::call(u64 number, u64 a0, u64 a1, u64 a2, u64 a3, u64 a4, u64 a5) {
    cap::HypercallArgs in{number, {a0, a1, a2, a3, a4, a5}};
    cap::HypercallResult out;
    cap::dispatch(*self_, in, out);
    return out.status;
}

Status<BuildFault> Toolstack::step(u64 status, const char* what) const {
    if (status == NESTOR_E_OK) return {};
    return fail(BuildFault{.kind = BuildFault::Kind::hypercall, .what = what, .code = status});
}

cap::KernelObject* Toolstack::object_in(u64 slot) {
    return static_cast<cap::CNode&>(*self_->cspace_root().cap.object).slot(slot).cap.object;
}

Status<BuildFault> Toolstack::build(Vm& vm, u32 index, const manifest::ManifestDomain& m, const BootInfo& boot,
                                    const VirtOps& ops) {
    bool pc = m.platform() == NESTOR_MANIFEST_PLATFORM_PC;
    vm.set_up(m.name(), "appliance: domain", ops, pc);
    vm.index = index;
    cap::DomainConfig config{m.vcpus(), m.memory_bytes(), m.flags(), m.cpuid_policy(), NESTOR_GUEST_CSPACE_BITS};
    if (auto sane = cap::sanitise_domain_config(config, system_->platform()); !sane)
        return fail(BuildFault{.kind = BuildFault::Kind::refused, .code = static_cast<u64>(sane.error())});
    // The capability runtime holds a domain's every vCPU; the appliance starts more than the first
    // only on a PC, whose guest starts them with INIT-SIPI-SIPI (each with its own nested state in
    // a domain with nested virtualization). Any other domain built for more would run with fewer
    // CPUs than its manifest promised, so it is refused instead.
    if (config.vcpus > (pc ? kMaxVcpusPerVm : 1))
        return fail(BuildFault{.kind = BuildFault::Kind::one_vcpu_only, .code = config.vcpus});
    auto handle = ops.create_vm();
    if (!handle) return fail(backend_fault("creating its VM", handle.error()));
    vm.handle = *handle;
    bool nested = (m.flags() & NESTOR_DOMAIN_FLAG_NESTED_VIRT) != 0;
    Slots& slots = slots_[index];
    NESTOR_TRY_STATUS(create_domain(vm, config, slots));
    NESTOR_TRY_STATUS(give_memory(slots, layout_of(m)));
    NESTOR_TRY_STATUS(give_notification(vm, slots));
    NESTOR_TRY_STATUS(give_ioports(slots, m));
    auto loaded = load_image(vm, m, boot);
    if (!loaded) return fail(loaded.error());
    NESTOR_TRY_STATUS(start_vcpu(vm, *loaded, nested, pc));
    NESTOR_TRY_STATUS(set_up_nested(vm, m));
    if (pc) NESTOR_TRY_STATUS(give_pc(vm, m));
    vm.console_input = m.console() == NESTOR_MANIFEST_CONSOLE_INPUT;
    log::info("appliance: domain {}: {} MiB, {} entry {:#x}, {} on {}", vm.name, m.memory_bytes() >> 20,
              boot_protocol_name(loaded->protocol), loaded->entry,
              nested ? "nested virtualization" : "no nested virtualization", ops.name);
    if (vm.console_input) log::info("appliance: domain {} takes the console's input (its serial port COM1)", vm.name);
    return {};
}

Status<BuildFault> Toolstack::boot_again(Vm& vm, const manifest::ManifestDomain& m, const BootInfo& boot) {
    bool nested = (m.flags() & NESTOR_DOMAIN_FLAG_NESTED_VIRT) != 0;
    // Nothing of the boot before may survive: every byte it wrote is cleared before the images
    // are loaded again (the loader writes only what the image and its boot information hold).
    const RamLayout layout = layout_of(m);
    if (!vm.memory.fill(0, 0, layout.below_4g) || !vm.memory.fill(kHighRamBase, 0, layout.above_4g))
        return fail(BuildFault{.kind = BuildFault::Kind::memory_clear});
    // A signal may have set a vector for interrupts: the guest booted again has set none.
    if (vm.notification) vm.notification->set_vector(0);
    // Fixed ranges on an empty bus: nothing can be refused.
    auto attached = vm.devices.reset(vm.pc == nullptr);
    ASSERT(attached);
    auto loaded = load_image(vm, m, boot);
    if (!loaded) return fail(loaded.error());
    NESTOR_TRY_STATUS(start_vcpu(vm, *loaded, nested, vm.pc != nullptr));
    NESTOR_TRY_STATUS(set_up_nested(vm, m));
    if (vm.pc) {
        if (auto reset = vm.pc_ops->reset(vm); !reset)
            return fail(BuildFault{.kind = BuildFault::Kind::pc_reset, .code = static_cast<u64>(reset.error())});
    }
    return {};
}

Status<BuildFault> Toolstack::give_pc(Vm& vm, const manifest::ManifestDomain& m) {
    const PcOps* pc = pc_platform();
    if (!pc) return fail(BuildFault{.kind = BuildFault::Kind::no_pc_platform});
    if (auto attached = pc->attach(vm, m.vcpus(), m.memory_bytes()); !attached)
        return fail(BuildFault{.kind = BuildFault::Kind::pc, .code = static_cast<u64>(attached.error())});
    return {};
}

Status<BuildFault> Toolstack::create_domain(Vm& vm, const cap::DomainConfig& config, Slots& slots) {
    slots.domain = take_slot();
    u64 packed = NESTOR_DOMAIN_CREATE_PACK(config.vcpus, config.cspace_bits, config.cpuid_policy, config.flags);
    NESTOR_TRY_STATUS(step(call(NESTOR_HC_DOMAIN_CREATE, cap::kBootSlotUntyped, NESTOR_CSPACE_ROOT, slots.domain,
                                packed, config.memory_bytes),
                           "creating the domain"));
    auto& domain = static_cast<cap::Domain&>(*object_in(slots.domain));
    vm.bind(domain, config.vcpus);
    vm.physcaps = cap::physcaps_answer(domain);
    return {};
}

// Guest RAM as its layout says: from guest-physical 0, and a PC's rest from 4 GiB. Each range is
// one memory region per power of two, largest first, so every region starts on a multiple of its
// size (both ranges start on a multiple of the largest).
Status<BuildFault> Toolstack::give_memory(const Slots& slots, RamLayout layout) {
    NESTOR_TRY_STATUS(give_ram_range(slots, 0, layout.below_4g));
    return give_ram_range(slots, kHighRamBase, layout.above_4g);
}

Status<BuildFault> Toolstack::give_ram_range(const Slots& slots, u64 base, u64 bytes) {
    static_assert(kHighRamBase % (u64{1} << kMaxRegionBits) == 0 && kPcLowRamEnd % (u64{1} << kMaxRegionBits) == 0,
                  "RAM ranges start and a PC's low one ends on the largest region");
    u64 offset = 0;
    for (u64 bits = kMaxRegionBits; bits >= 12 && offset < bytes; --bits) {
        while (bytes - offset >= (u64{1} << bits)) {
            u64 region = take_slot();
            NESTOR_TRY_STATUS(step(call(NESTOR_HC_UNTYPED_RETYPE, cap::kBootSlotUntyped, NESTOR_CAP_MEMORY, bits,
                                        NESTOR_CSPACE_ROOT, region),
                                   "carving guest memory"));
            NESTOR_TRY_STATUS(
                step(call(NESTOR_HC_DOMAIN_MAP, slots.domain, region, base + offset, NESTOR_RIGHTS_VALID_MEMORY),
                     "mapping guest memory"));
            offset += u64{1} << bits;
        }
    }
    return {};
}

Status<BuildFault> Toolstack::give_notification(Vm& vm, Slots& slots) {
    slots.notification = take_slot();
    slots.cspace = take_slot();
    NESTOR_TRY_STATUS(step(call(NESTOR_HC_UNTYPED_RETYPE, cap::kBootSlotUntyped, NESTOR_CAP_NOTIFICATION, 0,
                                NESTOR_CSPACE_ROOT, slots.notification),
                           "creating its notification"));
    NESTOR_TRY_STATUS(
        step(call(NESTOR_HC_DOMAIN_CSPACE, slots.domain, NESTOR_CSPACE_ROOT, slots.cspace), "reaching its CSpace"));
    NESTOR_TRY_STATUS(step(call(NESTOR_HC_CAP_MINT, NESTOR_CSPACE_ROOT, slots.notification, slots.cspace,
                                NESTOR_GUEST_SLOT_NOTIFICATION, NESTOR_RIGHT_NOTIFICATION_WAIT, 0),
                           "granting its notification"));
    vm.notification = static_cast<cap::Notification*>(object_in(slots.notification));
    return {};
}

// Each range is issued from the toolstack's capability to every port, then minted into the
// guest with USE only: a guest may use its ports but not issue them further.
Status<BuildFault> Toolstack::give_ioports(const Slots& slots, const manifest::ManifestDomain& m) {
    for (u32 i = 0; i < m.ioport_range_count(); ++i) {
        manifest::IoPortRange r = m.ioport_range(i);
        // The manifest tool refuses these too; a packed manifest is not trusted to have been checked.
        if (nestor_manifest_ports_are_kernel_owned(r.first, r.last))
            return fail(BuildFault{.kind = BuildFault::Kind::kernel_ports, .first = r.first, .last = r.last});
        u64 issued = take_slot();
        NESTOR_TRY_STATUS(step(call(NESTOR_HC_IOPORT_ISSUE, cap::kBootSlotIoPorts, r.first, u64{r.last} - r.first + 1u,
                                    NESTOR_CSPACE_ROOT, issued),
                               "issuing I/O ports"));
        NESTOR_TRY_STATUS(step(call(NESTOR_HC_CAP_MINT, NESTOR_CSPACE_ROOT, issued, slots.cspace,
                                    NESTOR_GUEST_SLOT_IOPORT_BASE + i, NESTOR_RIGHT_IOPORT_USE, 0),
                               "granting I/O ports"));
    }
    return {};
}

Status<BuildFault> Toolstack::give_signals(Vm& vm, const manifest::ManifestDomain& m, Vm* const* vms) {
    const Slots& slots = slots_[vm.index];
    for (u32 i = 0; i < m.signal_count(); ++i) {
        u32 target = m.signal_target(i);
        if (!vms[target]->domain) {
            log::warn("appliance: domain {} may not signal {}: that domain was not built", vm.name, vms[target]->name);
            continue;
        }
        NESTOR_TRY_STATUS(
            step(call(NESTOR_HC_CAP_MINT, NESTOR_CSPACE_ROOT, slots_[target].notification, slots.cspace,
                      NESTOR_GUEST_SLOT_SIGNAL_BASE + i, NESTOR_RIGHT_NOTIFICATION_SIGNAL, u64{1} << vm.index),
                 "granting a signal"));
    }
    return {};
}

Result<LoadedGuest, BuildFault> Toolstack::load_image(Vm& vm, const manifest::ManifestDomain& m, const BootInfo& boot) {
    const BootModule* image = find_module(boot, m.image());
    if (!image) return fail(BuildFault{.kind = BuildFault::Kind::no_module, .what = m.image()});
    GuestModule modules[NESTOR_MANIFEST_MAX_MODULES];
    for (u32 i = 0; i < m.module_count(); ++i) {
        manifest::ManifestModule extra = m.module(i);
        const BootModule* found = find_module(boot, extra.image);
        if (!found) return fail(BuildFault{.kind = BuildFault::Kind::no_module, .what = extra.image});
        modules[i] = GuestModule{module_bytes(*found), module_size(*found), extra.cmdline};
    }
    VmRam ram(vm.memory, layout_of(m));
    const u8* bytes = module_bytes(*image);
    usize size = module_size(*image);
    // A bzImage is told by its setup header; a Linux kernel's modules are its initrd.
    auto loaded = is_bzimage(bytes, size)
                      ? load_linux_guest(bytes, size, m.cmdline(), modules, m.module_count(), ram, linux_tsc_khz(vm))
                      : load_multiboot_guest(bytes, size, m.cmdline(), modules, m.module_count(), ram);
    if (!loaded)
        return fail(BuildFault{
            .kind = BuildFault::Kind::bad_image, .what = m.image(), .code = static_cast<u64>(loaded.error())});
    return *loaded;
}

Status<BuildFault> Toolstack::start_vcpu(Vm& vm, const LoadedGuest& loaded, bool nested, bool pc) {
    InitialMode initial{loaded.mode, loaded.cr3, nested, nested ? &vm.vcpus[0].nested.hardware : nullptr};
    initial.task_priority = pc;  // a PC's local APIC holds the guest's TPR
    if (auto created = vm.create_vcpu(initial); !created)
        return fail(backend_fault("creating its vCPU", created.error()));
    VcpuState& state = vm.vcpus[0].state();
    state.rip = loaded.entry;
    switch (loaded.protocol) {
    case BootProtocol::multiboot:
        state.rax() = kMultibootBootMagic;
        state.rbx() = loaded.info_gpa;
        break;
    case BootProtocol::elf64:
        state.reg(Gpr::rsp) = loaded.stack_top;
        state.reg(Gpr::rdi) = loaded.info_gpa;
        break;
    case BootProtocol::linux_bzimage:
        state.reg(Gpr::rsp) = loaded.stack_top;
        state.reg(Gpr::rsi) = loaded.info_gpa;
        break;
    }
    return {};
}

// A domain the sanitiser accepted with nested_virt gets the nested component's state.
Status<BuildFault> Toolstack::set_up_nested(Vm& vm, const manifest::ManifestDomain& m) {
    // With NESTED_VIRT=OFF the sanitiser refused the flag already (the null component's
    // availability): the set-up is not in the image.
    if constexpr (NESTOR_OPT_NESTED_VIRT == 0) return {};
    if (!(m.flags() & NESTOR_DOMAIN_FLAG_NESTED_VIRT)) return {};
    vm.vcpus[0].nested.host = &vm.nested_host;
    // Its structures (host save area, VMCS) must lie in the RAM from 0, never in a PC's hole.
    if (!nested_domain_initialise(vm.nested, platform::cpu_features(), layout_of(m).below_4g) ||
        !nested_vcpu_initialise(vm.vcpus[0].nested, vm.nested) ||
        !vm.devices.attach_nested_memory(vm.nested_host.held_bytes()))
        return fail(BuildFault{.kind = BuildFault::Kind::nested_set_up});
    return {};
}

}  // namespace nestor::virt
