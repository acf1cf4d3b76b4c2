// The kernel as the appliance's toolstack: it builds each domain of the boot manifest with the
// same hypercalls a toolstack domain would make (through the capability dispatch, from its own
// CSpace), then binds a Vm to it. Every step's failure is a BuildFault, a value the appliance
// logs once as one sentence; a failed domain is skipped and the others still run.
#pragma once

#include "nestor/boot_info.hpp"
#include "nestor/cap/system.hpp"
#include "nestor/manifest_reader.hpp"
#include "nestor/virt/guest_loader.hpp"
#include "nestor/virt/vm.hpp"

namespace nestor::virt {

struct BuildFault {
    enum class Kind : u8 {
        refused,          // the sanitiser refused the configuration (code: cap::Error)
        one_vcpu_only,    // the manifest asks for more vCPUs than the appliance starts (code: how many)
        hypercall,        // a toolstack hypercall failed (what: the step, code: the status)
        backend,          // the backend refused (what: the step, code: VirtError)
        kernel_ports,     // the manifest grants ports the kernel owns [first, last]
        no_module,        // no boot module has the name `what`
        bad_image,        // the image `what` could not be loaded (code: LoadError)
        nested_set_up,    // the nested component could not set up the domain's state
        no_pc_platform,   // the manifest asks for a PC, and this build has PC_PLATFORM off
        pc,               // the PC platform could not be attached (code: PcError)
        pc_reset,         // (booting again) the PC could not be reset (code: PcError)
        memory_clear,     // (booting again) its memory could not be cleared
        no_memory,        // (the toolstack itself) not enough memory for the domains (code: MiB)
        runtime_refused,  // (the toolstack itself) the capability runtime refused to boot (code: status)
    };
    Kind kind;
    const char* what = nullptr;
    u64 code = 0;
    u16 first = 0;
    u16 last = 0;
};

// Logs the fault as one sentence about domain `name` ("appliance: domain NAME: ...").
void log_build_fault(const char* name, const BuildFault& fault);

class Toolstack {
public:
    // Takes the boot untyped for the manifest's domains and boots the capability runtime with
    // the toolstack domain, which owns all memory, I/O ports and IRQs and never runs.
    Status<BuildFault> bootstrap(const manifest::Manifest& m, cap::System& system);

    // Builds domain `index` of the manifest into `vm` (on `ops`, which created nothing yet).
    Status<BuildFault> build(Vm& vm, u32 index, const manifest::ManifestDomain& m, const BootInfo& boot,
                             const VirtOps& ops);
    // Boots domain `vm`, built from `m`, again after a reset of its machine (vm_restart.hpp; its
    // vCPUs powered off): its memory cleared and loaded from its images exactly as build() did,
    // vCPU 0 at the entry, its devices and nested state as new. The capabilities it holds and the
    // memory they map are the same: nothing is retyped.
    Status<BuildFault> boot_again(Vm& vm, const manifest::ManifestDomain& m, const BootInfo& boot);
    // After every domain is built: a SIGNAL capability to each domain `vm` may signal.
    Status<BuildFault> give_signals(Vm& vm, const manifest::ManifestDomain& m, Vm* const* vms);

private:
    struct Slots {
        u64 domain = 0;        // the toolstack's capability to the domain
        u64 cspace = 0;        // ... to the domain's CSpace root
        u64 notification = 0;  // ... to the domain's notification
    };

    u64 call(u64 number, u64 a0 = 0, u64 a1 = 0, u64 a2 = 0, u64 a3 = 0, u64 a4 = 0, u64 a5 = 0);
    Status<BuildFault> step(u64 status, const char* what) const;
    u64 take_slot() { return next_slot_++; }
    cap::KernelObject* object_in(u64 slot);

    Status<BuildFault> create_domain(Vm& vm, const cap::DomainConfig& config, Slots& slots);
    Status<BuildFault> give_memory(const Slots& slots, RamLayout layout);
    Status<BuildFault> give_ram_range(const Slots& slots, u64 base, u64 bytes);
    Status<BuildFault> give_notification(Vm& vm, Slots& slots);
    Status<BuildFault> give_ioports(const Slots& slots, const manifest::ManifestDomain& m);
    Result<LoadedGuest, BuildFault> load_image(Vm& vm, const manifest::ManifestDomain& m, const BootInfo& boot);
    Status<BuildFault> start_vcpu(Vm& vm, const LoadedGuest& loaded, bool nested, bool pc);
    Status<BuildFault> set_up_nested(Vm& vm, const manifest::ManifestDomain& m);
    Status<BuildFault> give_pc(Vm& vm, const manifest::ManifestDomain& m);

    cap::System* system_ = nullptr;
    cap::Domain* self_ = nullptr;
    u64 next_slot_ = 0;
    Slots slots_[NESTOR_MANIFEST_MAX_DOMAINS];
};

}  // namespace nestor::virt
