// The appliance: the boot manifest read, its domains built by the toolstack, their VMs run by
// the scheduler, and how they ended summed up.
#include "nestor/virt/appliance.hpp"

#include "nestor/cap/system.hpp"
#include "nestor/lib/format.hpp"
#include "nestor/log.hpp"
#include "nestor/manifest_reader.hpp"
#include "nestor/virt/boot_modules.hpp"
#include "nestor/virt/mapping_sync.hpp"
#include "nestor/virt/platform_caps.hpp"
#include "nestor/virt/scheduler.hpp"
#include "nestor/virt/toolstack.hpp"
#include "nestor/virt/vm_restart.hpp"

namespace nestor::virt {
namespace {

constexpr u32 kMaxDomains = NESTOR_MANIFEST_MAX_DOMAINS;
constexpr u32 kFailureStatus = 1;

// Everything the appliance owns: one per boot, static, so nothing is allocated for it. The VMs
// are built in zeroed storage when the manifest is read: as static objects their vtable pointers
// would put all of them, mostly zeros, into the image's initialised data.
struct Appliance {
    Toolstack toolstack;
    alignas(Vm) u8 storage[sizeof(Vm) * kMaxDomains];
    Vm* order[kMaxDomains];
    u32 count;
    // What the domains were built from, kept for booting one again after a reset.
    const manifest::Manifest* manifest;
    const BootInfo* boot;
};

constinit Appliance appliance{};
constinit MappingSync mapping_sync;

Result<manifest::Manifest, bool> read_boot_manifest(const BootInfo& boot) {
    const BootModule* module = find_module(boot, "manifest");
    if (!module) return fail(false);
    auto read = manifest::read_manifest(module_bytes(*module), module_size(*module));
    if (!read) {
        const manifest::ManifestFault& f = read.error();
        if (f.domain == manifest::ManifestFault::kNoDomain)
            log::error("appliance: the manifest is refused: {}", manifest::manifest_error_name(f.error));
        else
            log::error("appliance: the manifest is refused: domain record {}: {}", f.domain,
                       manifest::manifest_error_name(f.error));
        return fail(false);
    }
    return read.value();
}

// A domain with on_reset = "restart" after a reset (vm_restart.hpp): built again from its manifest
// record and the boot modules, by the toolstack that built it.
bool boot_again(Vm& vm) {
    auto done = appliance.toolstack.boot_again(vm, appliance.manifest->domain(vm.index), *appliance.boot);
    if (!done) log_build_fault(vm.name, done.error());
    return done.ok();
}

// Builds every domain; a refused or failed one is reported and skipped, so the others still run.
u32 build_domains(const manifest::Manifest& m, const BootInfo& boot, const VirtOps& ops) {
    u32 built = 0;
    for (u32 i = 0; i < appliance.count; ++i) {
        Vm& vm = *appliance.order[i];
        if (auto done = appliance.toolstack.build(vm, i, m.domain(i), boot, ops); !done) {
            log_build_fault(vm.name, done.error());
            vm.release();
            continue;
        }
        if (m.domain(i).on_reset() == NESTOR_MANIFEST_ON_RESET_RESTART) {
            vm.boot_again = boot_again;
            log::info("appliance: domain {} restarts when it resets (at most {} times)", vm.name, kMaxRestarts);
        }
        vm.start();
        ++built;
    }
    for (u32 i = 0; i < appliance.count; ++i) {
        Vm& vm = *appliance.order[i];
        if (!vm.running) continue;
        if (auto given = appliance.toolstack.give_signals(vm, m.domain(i), appliance.order); !given) {
            log_build_fault(vm.name, given.error());
            stop_vm(vm, ExitOutcome{.stop = true, .status = kFailureStatus});
        }
    }
    return built;
}

// One line of a domain's exits by kind ("io 120, hlt 3"): where its exits went, for the
// benchmarks and for finding what a change made more of.
void log_exits_by_kind(const Vm& vm, const ExitCounts& exits) {
    char line[512];
    BufferSink sink(line, sizeof line);
    for (usize kind = 0; kind < kExitKinds; ++kind)
        if (exits.by_kind[kind])
            format(sink, "{}{} {}", sink.length() ? ", " : "", exit_kind_name(static_cast<ExitKind>(kind)),
                   exits.by_kind[kind]);
    log::info("appliance: domain {} exits by kind: {}", vm.name, line);
}

u32 summarize(u32 built) {
    u32 failed = appliance.count - built;
    for (u32 i = 0; i < appliance.count; ++i) {
        const Vm& vm = *appliance.order[i];
        if (vm.handle && vm.outcome.stop && vm.outcome.status != 0) ++failed;
        ExitCounts exits = vm.exits();
        if (exits.preemptions) log::info("appliance: domain {} was preempted {} times", vm.name, exits.preemptions);
        if (exits.total()) log_exits_by_kind(vm, exits);
    }
    log::info("appliance: {} of {} domains built, {} failed or refused", built, appliance.count, failed);
    return failed == 0 ? 0 : kFailureStatus;
}

}  // namespace

bool has_appliance(const BootInfo& boot) { return find_module(boot, "manifest") != nullptr; }

u32 run_appliance(const BootInfo& boot, const ApplianceOptions& options) {
    auto manifest = read_boot_manifest(boot);
    if (!manifest) return kFailureStatus;
    const VirtOps* ops = select_virt_ops();
    if (!ops) {
        log::error("appliance: this CPU offers no usable virtualization backend");
        return kFailureStatus;
    }
    if (auto enabled = ops->enable(); !enabled) {
        log::error("appliance: enabling {}: {}", ops->name, virt_error_name(enabled.error()));
        return kFailureStatus;
    }
    appliance.count = manifest->domain_count();
    appliance.manifest = &*manifest;
    appliance.boot = &boot;
    for (u32 i = 0; i < appliance.count; ++i) appliance.order[i] = new (&appliance.storage[i * sizeof(Vm)]) Vm{};
    mapping_sync.follow(appliance.order, appliance.count);

    static cap::DirectMapMemory kernel_memory;
    static cap::System system(kernel_memory, platform_caps());
    system.set_observer(&mapping_sync);
    if (auto booted = appliance.toolstack.bootstrap(*manifest, system); !booted) {
        log_build_fault("", booted.error());
        return kFailureStatus;
    }
    u32 built = build_domains(*manifest, boot, *ops);
    run_vms(appliance.order, appliance.count, RunOptions{options.time_slice, options.watchdog, false});
    return summarize(built);
}

}  // namespace nestor::virt
