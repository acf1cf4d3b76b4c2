// The appliance: domains from the boot manifest, built through the capability runtime and run
// round robin on the backend for this CPU.
#include "nestor/virt/appliance.hpp"

#include "nestor/abi/abi.h"
#include "nestor/cap/cnode.hpp"
#include "nestor/cap/domain.hpp"
#include "nestor/cap/hypercall.hpp"
#include "nestor/cap/notification.hpp"
#include "nestor/cap/operations.hpp"
#include "nestor/cap/system.hpp"
#include "nestor/log.hpp"
#include "nestor/manifest_reader.hpp"
#include "nestor/platform.hpp"
#include "nestor/virt/exit_handler.hpp"
#include "nestor/virt/guest_loader.hpp"
#include "nestor/virt/platform_caps.hpp"
#include "nestor/virt/virt_ops.hpp"

namespace nestor::virt {
namespace {

constexpr u32 kMaxDomains = NESTOR_MANIFEST_MAX_DOMAINS;
constexpr u32 kFailureStatus = 1;
constexpr u64 kConsoleWriteMax = 4096;
// Room in the boot untyped for what is not guest RAM: every domain's kernel objects, CSpace and
// notification, and the toolstack's own CSpace.
constexpr u64 kKernelObjectsPerDomain = 256 * 1024;
constexpr u64 kToolstackBytes = 1024 * 1024;
constexpr u32 kToolstackCSpaceBits = 9;
constexpr u64 kMaxRegionBits = 30;  // the largest memory region the runtime carves

// The kernel's services for the nested component (nested_ops.hpp): the domain's memory through
// its mapping table, and L0 memory from the physical allocator.
class DomainNestedHost final : public nested::Host {
public:
    constexpr DomainNestedHost() = default;
    void attach(const cap::Domain* domain) { domain_ = domain; }

    bool read(u64 gpa, void* out, usize bytes) override {
        // Within one mapping, the usual case (a port's IOPM bits at an L2 exit, L1's nested table
        // entries): one lookup and one copy; the piecewise loop cost three times the copy.
        if (const u8* host = window(gpa, bytes, false)) {
            copy_bytes(out, host, bytes);
            return true;
        }
        return each_piece(gpa, bytes, NESTOR_RIGHT_MEMORY_READ,
                          [&](u8* host, usize done, usize n) { copy_bytes(static_cast<u8*>(out) + done, host, n); });
    }
    bool write(u64 gpa, const void* in, usize bytes) override {
        // Checked whole first: nothing is written unless every byte may be.
        if (!each_piece(gpa, bytes, NESTOR_RIGHT_MEMORY_WRITE, [](u8*, usize, usize) {})) return false;
        return each_piece(gpa, bytes, NESTOR_RIGHT_MEMORY_WRITE, [&](u8* host, usize done, usize n) {
            copy_bytes(host, static_cast<const u8*>(in) + done, n);
        });
    }
    nested::GuestPage page(u64 gpa) override {
        const cap::Mapping* m = mapping_at(gpa);
        if (!m || !(m->rights & NESTOR_RIGHT_MEMORY_READ)) return nested::GuestPage{false, 0, false, false};
        return nested::GuestPage{true, align_down(m->hpa + (gpa - m->gpa), kPageSize),
                                 (m->rights & NESTOR_RIGHT_MEMORY_WRITE) != 0,
                                 (m->rights & NESTOR_RIGHT_MEMORY_EXEC) != 0};
    }
    u8* window(u64 gpa, usize bytes, bool writable) override {
        const cap::Mapping* m = mapping_at(gpa);
        u64 right = writable ? NESTOR_RIGHT_MEMORY_WRITE : NESTOR_RIGHT_MEMORY_READ;
        if (!m || !(m->rights & right) || bytes > m->size - (gpa - m->gpa)) return nullptr;
        return static_cast<u8*>(platform::physical_to_virtual(m->hpa + (gpa - m->gpa)));
    }
    bool set_bits(u64 gpa, u64 bits) override {
        if (!is_aligned(gpa, sizeof(u64))) return false;
        const cap::Mapping* m = mapping_at(gpa);
        if (!m || !(m->rights & NESTOR_RIGHT_MEMORY_WRITE)) return false;
        auto* word = static_cast<u64*>(platform::physical_to_virtual(m->hpa + (gpa - m->gpa)));
        __atomic_fetch_or(word, bits, __ATOMIC_SEQ_CST);
        return true;
    }
    void* allocate(usize bytes, paddr& physical) override {
        if (bytes == 0 || !is_aligned(bytes, kPageSize) || !platform::allocate_physical(bytes, physical))
            return nullptr;
        void* memory = platform::physical_to_virtual(physical);
        fill_bytes(memory, 0, bytes);
        return memory;
    }
    void release(paddr physical, usize bytes) override {
        if (physical) platform::free_physical(physical, bytes);
    }
    void* pointer(paddr physical) override { return platform::physical_to_virtual(physical); }

private:
    const cap::Mapping* mapping_at(u64 gpa) const {
        if (!domain_) return nullptr;
        for (u32 i = 0; i < cap::Domain::kMaxMappings; ++i) {
            const cap::Mapping& m = domain_->mapping(i);
            if (m.used && gpa >= m.gpa && gpa - m.gpa < m.size) return &m;
        }
        return nullptr;
    }
    // Bounded by `bytes`: every piece is at least one byte.
    template <typename F> bool each_piece(u64 gpa, usize bytes, u64 right, F f) const {
        for (usize done = 0; done < bytes;) {
            u64 at = 0;
            if (!checked_add(gpa, u64{done}, at)) return false;
            const cap::Mapping* m = mapping_at(at);
            if (!m || !(m->rights & right)) return false;
            u64 offset = at - m->gpa;
            usize n = static_cast<usize>(min<u64>(bytes - done, m->size - offset));
            f(static_cast<u8*>(platform::physical_to_virtual(m->hpa + offset)), done, n);
            done += n;
        }
        return true;
    }
    const cap::Domain* domain_ = nullptr;
};

// One domain of the appliance while it runs.
struct RunningDomain {
    const char* name = nullptr;
    u32 index = 0;
    cap::Domain* domain = nullptr;
    u64 domain_slot = 0;                        // the toolstack's capability to the domain
    u64 cspace_slot = 0;                        // the toolstack's capability to the domain's CSpace root
    u64 notification_slot = 0;                  // the toolstack's capability to the domain's notification
    cap::Notification* notification = nullptr;  // where signals for it arrive
    u64 physcaps = 0;                           // its PHYSCAPS answer (cap::physcaps_answer(), fixed at boot)
    bool waiting = false;                       // halted with interrupts on: runs again once a signal arrives
    bool interrupt_due = false;                 // its signal interrupt waits for the vCPU to take it
    VmHandle vm = nullptr;
    VcpuHandle vcpu = nullptr;
    VcpuState state{};
    nested::NestedDomain nested_domain{};  // ops == nullptr: the domain may not nest
    nested::NestedVcpu nested_vcpu{};
    DomainNestedHost nested_host{};
    CpuidMemo cpuid_memo{};  // the vCPU's CPUID answers (starts empty: fills as the guest asks)
    GuestConsole console{};
    bool running = false;
    ExitOutcome outcome{};
    VmExit last_exit{};  // the exit that stopped the domain (set when it stops)
    // Its exits, by ExitKind: counted where a total would be (the same one increment per exit),
    // the total is their sum.
    u64 exits_by_kind[kExitKinds] = {};
    u64 preemptions = 0;
    u64 slices_without_exit = 0;
};

u64 exits_of(const RunningDomain& d) {
    u64 total = 0;
    for (u64 n : d.exits_by_kind) total += n;
    return total;
}

// Everything the appliance owns. One per boot; a static, so nothing is allocated for it.
struct Appliance {
    const VirtOps* ops = nullptr;
    cap::System* system = nullptr;
    cap::Domain* toolstack = nullptr;
    u64 next_slot = cap::kBootFirstFreeSlot;
    RunningDomain domains[kMaxDomains];
    u32 domain_count = 0;
};

Appliance appliance;

RunningDomain* running_domain_of(const cap::Domain& domain) {
    for (u32 i = 0; i < appliance.domain_count; ++i)
        if (appliance.domains[i].domain == &domain) return &appliance.domains[i];
    return nullptr;
}

// Keeps each VM's nested page tables equal to its domain's mapping table.
class NestedTablesFollowCapabilities final : public cap::DomainObserver {
public:
    void mapped(cap::Domain& domain, const cap::Mapping& m) override {
        RunningDomain* d = running_domain_of(domain);
        if (!d || !d->vm) return;
        GuestMapping mapping{m.gpa, m.hpa, m.size, (m.rights & NESTOR_RIGHT_MEMORY_WRITE) != 0,
                             (m.rights & NESTOR_RIGHT_MEMORY_EXEC) != 0};
        // A failure leaves the range unmapped: the guest's access then stops it with a report.
        if (auto done = appliance.ops->map(d->vm, mapping); !done)
            log::warn("appliance: {}: mapping guest-physical {:#x}: {}", d->name, m.gpa, virt_error_name(done.error()));
    }
    void unmapped(cap::Domain& domain, const cap::Mapping& m) override {
        RunningDomain* d = running_domain_of(domain);
        if (!d || !d->vm) return;
        if (auto done = appliance.ops->unmap(d->vm, m.gpa, m.size); !done)
            PANIC("a revoked mapping could not be removed from the nested page tables");
    }
    void destroyed(cap::Domain& domain) override {
        RunningDomain* d = running_domain_of(domain);
        if (!d) return;
        log::info("appliance: domain {} destroyed", d->name);
        d->running = false;
        d->domain = nullptr;
    }
};

NestedTablesFollowCapabilities observer;

// --- the toolstack: the kernel building domains with the same hypercalls a toolstack uses -----

u64 toolstack_call(u64 number, u64 a0 = 0, u64 a1 = 0, u64 a2 = 0, u64 a3 = 0, u64 a4 = 0, u64 a5 = 0) {
    cap::HypercallArgs in{number, {a0, a1, a2, a3, a4, a5}};
    cap::HypercallResult out;
    cap::dispatch(*appliance.toolstack, in, out);
    return out.status;
}

u64 take_slot() { return appliance.next_slot++; }

cap::Slot& toolstack_slot(u64 index) {
    return static_cast<cap::CNode&>(*appliance.toolstack->cspace_root().cap.object).slot(index);
}

// Guest RAM as the loader writes it: through the domain's mappings.
class DomainRam final : public GuestRam {
public:
    explicit DomainRam(const cap::Domain& domain, u64 size) : domain_(domain), size_(size) {}
    u64 size() const override { return size_; }
    bool write(u64 gpa, const void* data, usize length) override {
        return each_piece(gpa, length, [&](u8* host, usize offset, usize n) {
            copy_bytes(host, static_cast<const u8*>(data) + offset, n);
        });
    }
    bool fill(u64 gpa, u8 value, usize length) override {
        return each_piece(gpa, length, [&](u8* host, usize, usize n) { fill_bytes(host, value, n); });
    }

private:
    template <typename F> bool each_piece(u64 gpa, usize length, F f) {
        usize done = 0;
        while (done < length) {
            const cap::Mapping* m = mapping_at(gpa + done);
            if (!m) return false;
            u64 offset = gpa + done - m->gpa;
            usize n = min<u64>(length - done, m->size - offset);
            f(static_cast<u8*>(platform::physical_to_virtual(m->hpa + offset)), done, n);
            done += n;
        }
        return true;
    }
    const cap::Mapping* mapping_at(u64 gpa) const {
        for (u32 i = 0; i < cap::Domain::kMaxMappings; ++i) {
            const cap::Mapping& m = domain_.mapping(i);
            if (m.used && gpa >= m.gpa && gpa - m.gpa < m.size) return &m;
        }
        return nullptr;
    }
    const cap::Domain& domain_;
    u64 size_;
};

bool call_ok(u64 status, const RunningDomain& d, const char* step) {
    if (status == NESTOR_E_OK) return true;
    log::error("appliance: domain {}: {} failed: {}", d.name, step, cap::status_name(status));
    return false;
}

// Guest RAM from guest-physical 0: one memory region per power of two, largest first, so every
// region starts on a multiple of its size.
bool give_memory(RunningDomain& d, u64 bytes) {
    u64 gpa = 0;
    for (u64 bits = kMaxRegionBits; bits >= 12 && gpa < bytes; --bits) {
        while (bytes - gpa >= (u64{1} << bits)) {
            u64 region = take_slot();
            if (!call_ok(toolstack_call(NESTOR_HC_UNTYPED_RETYPE, cap::kBootSlotUntyped, NESTOR_CAP_MEMORY, bits,
                                        NESTOR_CSPACE_ROOT, region),
                         d, "carving guest memory"))
                return false;
            if (!call_ok(toolstack_call(NESTOR_HC_DOMAIN_MAP, d.domain_slot, region, gpa, NESTOR_RIGHTS_VALID_MEMORY),
                         d, "mapping guest memory"))
                return false;
            gpa += u64{1} << bits;
        }
    }
    return true;
}

bool give_own_notification(RunningDomain& d) {
    d.notification_slot = take_slot();
    d.cspace_slot = take_slot();
    bool given = call_ok(toolstack_call(NESTOR_HC_UNTYPED_RETYPE, cap::kBootSlotUntyped, NESTOR_CAP_NOTIFICATION, 0,
                                        NESTOR_CSPACE_ROOT, d.notification_slot),
                         d, "creating its notification") &&
                 call_ok(toolstack_call(NESTOR_HC_DOMAIN_CSPACE, d.domain_slot, NESTOR_CSPACE_ROOT, d.cspace_slot), d,
                         "reaching its CSpace") &&
                 call_ok(toolstack_call(NESTOR_HC_CAP_MINT, NESTOR_CSPACE_ROOT, d.notification_slot, d.cspace_slot,
                                        NESTOR_GUEST_SLOT_NOTIFICATION, NESTOR_RIGHT_NOTIFICATION_WAIT, 0),
                         d, "granting its notification");
    if (given) d.notification = static_cast<cap::Notification*>(toolstack_slot(d.notification_slot).cap.object);
    return given;
}

// Each range is issued from the toolstack's capability to every port, then minted into the
// guest with USE only: a guest may use its ports but not issue them further.
bool give_ioports(RunningDomain& d, const manifest::ManifestDomain& m) {
    for (u32 i = 0; i < m.ioport_range_count(); ++i) {
        manifest::IoPortRange r = m.ioport_range(i);
        // The manifest tool refuses these too; a packed manifest is not trusted to have been checked.
        if (nestor_manifest_ports_are_kernel_owned(r.first, r.last)) {
            log::error("appliance: domain {}: ports {:#x}-{:#x} belong to the kernel", d.name, r.first, r.last);
            return false;
        }
        u64 issued = take_slot();
        if (!call_ok(toolstack_call(NESTOR_HC_IOPORT_ISSUE, cap::kBootSlotIoPorts, r.first, u64{r.last} - r.first + 1u,
                                    NESTOR_CSPACE_ROOT, issued),
                     d, "issuing I/O ports") ||
            !call_ok(toolstack_call(NESTOR_HC_CAP_MINT, NESTOR_CSPACE_ROOT, issued, d.cspace_slot,
                                    NESTOR_GUEST_SLOT_IOPORT_BASE + i, NESTOR_RIGHT_IOPORT_USE, 0),
                     d, "granting I/O ports"))
            return false;
    }
    return true;
}

// Whether the domain holds a USE capability covering [port, port + size) in its CSpace root.
bool holds_ports(const cap::Domain& domain, u16 port, u8 size) {
    const cap::Capability& root = const_cast<cap::Domain&>(domain).cspace_root().cap;
    if (root.type != cap::ObjectType::cnode) return false;
    auto& cnode = static_cast<cap::CNode&>(*root.object);
    for (u64 i = 0; i < cnode.slot_count(); ++i) {
        const cap::Capability& c = cnode.slot(i).cap;
        if (c.type == cap::ObjectType::ioport_range && (c.rights & NESTOR_RIGHT_IOPORT_USE) && port >= c.first_port &&
            u32{port} + size <= c.first_port + c.port_count)
            return true;
    }
    return false;
}

// After every domain exists: a SIGNAL capability to each domain this one may signal.
bool give_signals(RunningDomain& d, const manifest::ManifestDomain& m) {
    for (u32 i = 0; i < m.signal_count(); ++i) {
        RunningDomain& target = appliance.domains[m.signal_target(i)];
        if (!target.domain) {
            log::warn("appliance: domain {} may not signal {}: that domain was not built", d.name, target.name);
            continue;
        }
        if (!call_ok(
                toolstack_call(NESTOR_HC_CAP_MINT, NESTOR_CSPACE_ROOT, target.notification_slot, d.cspace_slot,
                               NESTOR_GUEST_SLOT_SIGNAL_BASE + i, NESTOR_RIGHT_NOTIFICATION_SIGNAL, u64{1} << d.index),
                d, "granting a signal"))
            return false;
    }
    return true;
}

const BootModule* find_module(const BootInfo& boot, const char* name) {
    for (usize i = 0; i < boot.module_count; ++i)
        if (module_named(boot.modules[i], name)) return &boot.modules[i];
    return nullptr;
}

const u8* module_bytes(const BootModule& module) {
    return static_cast<const u8*>(platform::physical_to_virtual(module.start));
}

bool load_image(RunningDomain& d, const manifest::ManifestDomain& m, const BootInfo& boot, LoadedGuest& loaded) {
    const BootModule* image = find_module(boot, m.image());
    if (!image) {
        log::error("appliance: domain {}: no boot module named \"{}\"", d.name, m.image());
        return false;
    }
    GuestModule modules[NESTOR_MANIFEST_MAX_MODULES];
    for (u32 i = 0; i < m.module_count(); ++i) {
        manifest::ManifestModule extra = m.module(i);
        const BootModule* found = find_module(boot, extra.image);
        if (!found) {
            log::error("appliance: domain {}: no boot module named \"{}\"", d.name, extra.image);
            return false;
        }
        modules[i] = GuestModule{module_bytes(*found), static_cast<usize>(found->end - found->start), extra.cmdline};
    }
    DomainRam ram(*d.domain, m.memory_bytes());
    auto result = load_multiboot_guest(module_bytes(*image), static_cast<usize>(image->end - image->start), m.cmdline(),
                                       modules, m.module_count(), ram);
    if (!result) {
        log::error("appliance: domain {}: image \"{}\": {}", d.name, m.image(), load_error_name(result.error()));
        return false;
    }
    loaded = *result;
    return true;
}

bool start_vcpu(RunningDomain& d, const LoadedGuest& loaded, bool nested) {
    InitialMode initial{loaded.mode, loaded.cr3, nested, nested ? &d.nested_vcpu.hardware : nullptr};
    auto vcpu = appliance.ops->create_vcpu(d.vm, initial, d.state);
    if (!vcpu) {
        log::error("appliance: domain {}: creating its vCPU: {}", d.name, virt_error_name(vcpu.error()));
        return false;
    }
    d.vcpu = *vcpu;
    d.state.rip = loaded.entry;
    if (loaded.mode == CpuMode::long64) {
        d.state.reg(Gpr::rsp) = loaded.stack_top;
        d.state.reg(Gpr::rdi) = loaded.info_gpa;
    } else {
        d.state.rax() = kMultibootBootMagic;
        d.state.rbx() = loaded.info_gpa;
    }
    return true;
}

// A domain the sanitiser accepted with nested_virt gets the nested component's state.
bool set_up_nested(RunningDomain& d, const manifest::ManifestDomain& m) {
    if (!(m.flags() & NESTOR_DOMAIN_FLAG_NESTED_VIRT)) return true;
    d.nested_host.attach(d.domain);
    d.nested_vcpu.host = &d.nested_host;
    if (!nested_domain_initialise(d.nested_domain, platform::cpu_features(), m.memory_bytes()) ||
        !nested_vcpu_initialise(d.nested_vcpu, d.nested_domain)) {
        log::error("appliance: domain {}: setting up nested virtualization failed", d.name);
        return false;
    }
    return true;
}

// Builds domain `index` of the manifest; a refused or failed domain is reported and skipped, so
// the others still run.
bool build_domain(u32 index, const manifest::ManifestDomain& m, const BootInfo& boot) {
    RunningDomain& d = appliance.domains[index];
    d.name = m.name();
    d.index = index;
    cap::DomainConfig config{m.vcpus(), m.memory_bytes(), m.flags(), m.cpuid_policy(), NESTOR_GUEST_CSPACE_BITS};
    if (auto sane = cap::sanitise_domain_config(config, appliance.system->platform()); !sane) {
        log_domain_refusal(d.name, sane.error());
        return false;
    }
    // The capability runtime holds a domain's every vCPU, but the appliance starts only the first
    // (there is no INIT/SIPI to start the others): a domain built for more would run with fewer
    // CPUs than its manifest promised, so it is refused instead.
    if (config.vcpus > 1) {
        log::error("appliance: domain {} refused: it asks for {} vCPUs, and this appliance starts one per domain",
                   d.name, config.vcpus);
        return false;
    }
    auto vm = appliance.ops->create_vm();
    if (!vm) {
        log::error("appliance: domain {}: creating its VM: {}", d.name, virt_error_name(vm.error()));
        return false;
    }
    d.vm = *vm;
    d.domain_slot = take_slot();
    u64 packed = NESTOR_DOMAIN_CREATE_PACK(config.vcpus, config.cspace_bits, config.cpuid_policy, config.flags);
    if (!call_ok(toolstack_call(NESTOR_HC_DOMAIN_CREATE, cap::kBootSlotUntyped, NESTOR_CSPACE_ROOT, d.domain_slot,
                                packed, config.memory_bytes),
                 d, "creating the domain"))
        return false;
    d.domain = static_cast<cap::Domain*>(toolstack_slot(d.domain_slot).cap.object);
    d.physcaps = cap::physcaps_answer(*d.domain);
    LoadedGuest loaded{};
    if (!give_memory(d, m.memory_bytes()) || !give_own_notification(d) || !give_ioports(d, m) ||
        !load_image(d, m, boot, loaded) || !start_vcpu(d, loaded, (m.flags() & NESTOR_DOMAIN_FLAG_NESTED_VIRT) != 0) ||
        !set_up_nested(d, m))
        return false;
    log::info("appliance: domain {}: {} MiB, {} entry {:#x}, {} on {}", d.name, m.memory_bytes() >> 20,
              loaded.mode == CpuMode::long64 ? "64-bit ELF" : "multiboot", loaded.entry,
              (m.flags() & NESTOR_DOMAIN_FLAG_NESTED_VIRT) ? "nested virtualization" : "no nested virtualization",
              appliance.ops->name);
    d.running = true;
    return true;
}

// Frees what a domain that did not get built, or has stopped, still holds on the backend. Its
// capabilities stay with the toolstack (and so do its frames) until the appliance ends.
void release_backend(RunningDomain& d) {
    // The nested state first: it may refer to the backend's vCPU (NestedVcpu::hardware).
    nested_vcpu_destroy(d.nested_vcpu);
    nested_domain_teardown(d.nested_domain);
    if (d.vcpu) appliance.ops->destroy_vcpu(d.vcpu);
    d.vcpu = nullptr;
}

// --- running: one vCPU per domain, round robin ------------------------------------------------

// The domain's nested state if it was accepted with nested virtualization, nullptr otherwise.
nested::NestedVcpu* nested_of(RunningDomain& d) { return d.nested_vcpu.ops ? &d.nested_vcpu : nullptr; }

class DomainEnvironment final : public ExitEnvironment {
public:
    explicit DomainEnvironment(RunningDomain& d) : d_(d) {}
    CpuidValues host_cpuid(u32 leaf, u32 subleaf) override { return appliance.ops->host_cpuid(leaf, subleaf); }
    void console_line(const char* text, usize) override { log::info("[{}] {}", d_.name, text); }
    ExitOutcome hypercall(VcpuState& state, GuestConsole& console) override;
    nested::NestedVcpu* nested_vcpu() override { return nested_of(d_); }
    bool port_held(u16 port, u8 size) override { return d_.domain && holds_ports(*d_.domain, port, size); }
    u32 port_read(u16 port, u8 size) override { return platform::port_read(port, size); }
    void port_write(u16 port, u8 size, u32 value) override { platform::port_write(port, size, value); }
    GuestXsaveControls guest_xsave_controls() override { return appliance.ops->xsave_controls(d_.vcpu); }
    void set_guest_xcr0(u64 xcr0) override { appliance.ops->set_xcr0(d_.vcpu, xcr0); }

private:
    ExitOutcome dispatch_hypercall(VcpuState& state, GuestConsole& console);
    ExitOutcome platform_call(const cap::HypercallArgs& in, cap::HypercallResult& out, GuestConsole& console);
    u64 console_write(u64 gpa, u64 length, GuestConsole& console);
    RunningDomain& d_;
};

// The registers that carry a call's results (sdk/include/nestor/abi/hypercall.h).
void write_results(VcpuState& state, const cap::HypercallResult& out) {
    state.rax() = out.status;
    state.reg(Gpr::rdi) = out.value[0];
    state.reg(Gpr::rsi) = out.value[1];
    state.reg(Gpr::rdx) = out.value[2];
}

ExitOutcome DomainEnvironment::hypercall(VcpuState& state, GuestConsole& console) {
    // A query (no object, no argument) is answered straight from the registers: no HypercallArgs
    // to build, no dispatch to call. The same answer as dispatch() gives (cap::query_result()).
    if (u64 number = state.rax(); cap::is_query(number)) {
        u64 any_argument = state.reg(Gpr::rdi) | state.reg(Gpr::rsi) | state.reg(Gpr::rdx) | state.reg(Gpr::r10) |
                           state.reg(Gpr::r8) | state.reg(Gpr::r9);
        write_results(state, cap::query_result(number, any_argument, d_.physcaps));
        return {};
    }
    return dispatch_hypercall(state, console);
}

// Every other call, through the capability dispatch. Out of line, so that the queries' path above
// saves no registers and builds no frame.
[[gnu::noinline]] ExitOutcome DomainEnvironment::dispatch_hypercall(VcpuState& state, GuestConsole& console) {
    cap::HypercallArgs in{state.rax(),
                          {state.reg(Gpr::rdi), state.reg(Gpr::rsi), state.reg(Gpr::rdx), state.reg(Gpr::r10),
                           state.reg(Gpr::r8), state.reg(Gpr::r9)}};
    cap::HypercallResult out;
    cap::Disposition disposition = cap::dispatch(*d_.domain, in, out);
    if (disposition == cap::Disposition::caller_destroyed) [[unlikely]]
        return ExitOutcome{.stop = true, .reason = StopReason::shutdown, .status = kFailureStatus};
    ExitOutcome outcome = disposition == cap::Disposition::platform ? platform_call(in, out, console) : ExitOutcome{};
    write_results(state, out);
    return outcome;
}

ExitOutcome DomainEnvironment::platform_call(const cap::HypercallArgs& in, cap::HypercallResult& out,
                                             GuestConsole& console) {
    switch (in.number) {
    case NESTOR_HC_CONSOLE_WRITE: out.status = console_write(in.arg[0], in.arg[1], console); return {};
    case NESTOR_HC_YIELD: return ExitOutcome{.yield = true};
    case NESTOR_HC_SHUTDOWN:
        flush_console(console, *this);
        return ExitOutcome{.stop = true, .reason = StopReason::shutdown, .status = static_cast<u32>(in.arg[0] & 0xFF)};
    default: break;
    }
    out.status = NESTOR_E_INVALID_HYPERCALL;
    return {};
}

// The text must lie entirely in guest RAM the domain may read; nothing is printed otherwise.
u64 DomainEnvironment::console_write(u64 gpa, u64 length, GuestConsole& console) {
    if (length > kConsoleWriteMax) return NESTOR_E_INVALID_ARGUMENT;
    u64 done = 0;
    for (int pass = 0; pass < 2; ++pass) {
        for (done = 0; done < length;) {
            const cap::Mapping* m = nullptr;
            for (u32 i = 0; i < cap::Domain::kMaxMappings && !m; ++i) {
                const cap::Mapping& candidate = d_.domain->mapping(i);
                if (candidate.used && (candidate.rights & NESTOR_RIGHT_MEMORY_READ) && gpa + done >= candidate.gpa &&
                    gpa + done - candidate.gpa < candidate.size)
                    m = &candidate;
            }
            if (!m) return NESTOR_E_INVALID_ARGUMENT;
            u64 offset = gpa + done - m->gpa;
            u64 n = min(length - done, m->size - offset);
            if (pass == 1) {
                const u8* bytes = static_cast<const u8*>(platform::physical_to_virtual(m->hpa + offset));
                for (u64 i = 0; i < n; ++i) console_put(console, *this, bytes[i]);
            }
            done += n;
        }
    }
    return NESTOR_E_OK;
}

void report_stop(RunningDomain& d) {
    const ExitOutcome& o = d.outcome;
    if (o.reason == StopReason::exit_port || o.reason == StopReason::halted || o.reason == StopReason::shutdown) {
        log::info("appliance: domain {} exited with status {} ({}) after {} exits", d.name, o.status,
                  stop_reason_name(o.reason), exits_of(d));
        return;
    }
    log::error("appliance: domain {} stopped: {} after {} exits (last exit {} code {:#x} at rip {:#x})", d.name,
               stop_reason_name(o.reason), exits_of(d), exit_kind_name(d.last_exit.kind), d.last_exit.vendor_code,
               d.state.rip);
    if (o.detail) log::error("appliance: domain {}: {}", d.name, o.detail);
    if (d.last_exit.kind == ExitKind::nested_page_fault)
        log::error("appliance: domain {}: {} of guest-physical {:#x}, {}", d.name,
                   d.last_exit.npf.access == MemoryAccess::write     ? "write"
                   : d.last_exit.npf.access == MemoryAccess::execute ? "execute"
                                                                     : "read",
                   d.last_exit.npf.guest_physical, d.last_exit.npf.present ? "not permitted" : "outside its memory");
}

void stop(RunningDomain& d, const ExitOutcome& outcome) {
    d.outcome = outcome;
    d.running = false;
    report_stop(d);
    release_backend(d);
}

// A signal raised the virtual interrupt the domain asked for (NOTIFICATION_SET_VECTOR): inject it
// when the vCPU can take it, else it stays due and is tried again after the next exit. A guest
// hypervisor's state has its say first (GIF, or its guest running: nested_ops.hpp). False if
// the domain was stopped.
[[gnu::noinline]] bool raise_interrupt(RunningDomain& d) {
    ASSERT(d.notification);  // an interrupt is only ever due from the domain's notification
    u8 vector = d.notification->interrupt_due();
    d.interrupt_due = vector != 0;
    if (!vector) return true;
    if (nested::NestedVcpu* nested = nested_of(d)) {
        nested::Decision decision = nested->ops->route_interrupt(*nested, d.state);
        if (decision.action == nested::Action::stop) {
            stop(d, ExitOutcome{.stop = true,
                                .reason = StopReason::unsupported,
                                .status = kFailureStatus,
                                .detail = decision.report});
            return false;
        }
        if (decision.action != nested::Action::not_nested) return true;
    }
    if (appliance.ops->inject_interrupt(d.vcpu, d.state, vector)) {
        d.notification->interrupt_raised();
        d.interrupt_due = false;
    }
    return true;
}

// What the run loop does with the outcome of an exit it handled: false when the slice is over.
[[gnu::always_inline]] inline bool carry_on(RunningDomain& d, const VmExit& exit, const ExitOutcome& outcome) {
    if (outcome.stop || !d.running) [[unlikely]] {
        d.last_exit = exit;
        stop(d, outcome.stop ? outcome
                             : ExitOutcome{.stop = true, .reason = StopReason::shutdown, .status = kFailureStatus});
        return false;
    }
    if (outcome.inject)
        appliance.ops->inject_exception(d.vcpu, outcome.vector, outcome.has_error_code, outcome.error_code);
    if (outcome.wait) {
        d.waiting = true;
        return false;
    }
    return !outcome.yield && exit.kind != ExitKind::external_interrupt;
}

// Runs d until its slice ends, it yields or it stops. One loop for domains with nested
// virtualization (`kNested`: the component's handler for L2's exits is called from the loop) and
// one for the others, whose exits then pay no test for it.
template <bool kNested> void run_slice(RunningDomain& d, const ApplianceOptions& options) {
    DomainEnvironment env(d);
    const ExitContext context{kNested ? nested_of(d) : nullptr, &d.cpuid_memo};
    // Signals come from other domains, which ran in other slices: a due interrupt is noticed here
    // and, until the vCPU takes it, retried after every exit (a signal a domain sends itself
    // waits for its next slice).
    if (d.notification && d.notification->interrupt_due()) d.interrupt_due = true;
    for (;;) {
        if (d.interrupt_due) [[unlikely]]
            if (!raise_interrupt(d)) return;
        VmExit exit = appliance.ops->run(d.vcpu, d.state, options.time_slice);
        ++d.exits_by_kind[static_cast<usize>(exit.kind)];
        if (exit.kind == ExitKind::preemption) [[unlikely]] {
            ++d.preemptions;
            if (options.watchdog && ++d.slices_without_exit >= options.watchdog) {
                flush_console(d.console, env);
                log::error("appliance: domain {} ran {} time slices without an exit (watchdog)", d.name,
                           d.slices_without_exit);
                d.last_exit = exit;
                stop(d, ExitOutcome{.stop = true, .reason = StopReason::watchdog, .status = kFailureStatus});
            }
            return;
        }
        d.slices_without_exit = 0;
        if constexpr (kNested) {
            nested::NestedVcpu& nested = *context.nested;
            if (auto guest_exit = nested.guest_exit) {
                nested::Decision decision = guest_exit(nested, exit, d.state);
                // L1 runs next (a #VMEXIT into it, a shadow page installed): nothing more to do,
                // not even to look at an outcome.
                if (decision.action == nested::Action::resume) [[likely]] {
                    if (exit.kind == ExitKind::external_interrupt) return;
                    continue;
                }
                if (!carry_on(d, exit,
                              exit_detail::handle_guest_mode_exit(decision, exit, d.state, d.console, env, context)))
                    return;
                continue;
            }
        }
        if (!carry_on(d, exit, exit_detail::dispatch_exit(exit, d.state, d.console, env, context))) return;
    }
}

// A waiting domain runs again once a signal is pending on its notification.
bool ready(RunningDomain& d) {
    if (!d.running) return false;
    if (d.waiting && d.notification && d.notification->pending()) d.waiting = false;
    return !d.waiting;
}

// Every running domain waits: no domain can send the signals they wait for, and nothing else
// (no device, no interrupt) exists to wake them. Rather than idle for ever, stop them.
void stop_waiting_domains() {
    for (u32 i = 0; i < appliance.domain_count; ++i) {
        RunningDomain& d = appliance.domains[i];
        if (!d.running) continue;
        DomainEnvironment env(d);
        flush_console(d.console, env);
        stop(d, ExitOutcome{.stop = true, .reason = StopReason::waits_forever, .status = kFailureStatus});
    }
}

bool any_running() {
    for (u32 i = 0; i < appliance.domain_count; ++i)
        if (appliance.domains[i].running) return true;
    return false;
}

void run_domains(const ApplianceOptions& options) {
    while (any_running()) {
        bool ran = false;
        for (u32 i = 0; i < appliance.domain_count; ++i) {
            RunningDomain& d = appliance.domains[i];
            if (!ready(d)) continue;
            if (nested_of(d))
                run_slice<true>(d, options);
            else
                run_slice<false>(d, options);
            ran = true;
        }
        if (!ran) stop_waiting_domains();
    }
}

u32 summarize(u32 built) {
    u32 failed = appliance.domain_count - built;
    for (u32 i = 0; i < appliance.domain_count; ++i) {
        const RunningDomain& d = appliance.domains[i];
        if (d.vm && d.outcome.stop && d.outcome.status != 0) ++failed;
        if (d.preemptions) log::info("appliance: domain {} was preempted {} times", d.name, d.preemptions);
        for (usize kind = 0; kind < kExitKinds; ++kind)
            if (d.exits_by_kind[kind])
                log::debug("appliance: domain {}: {} {} exits", d.name, d.exits_by_kind[kind],
                           exit_kind_name(static_cast<ExitKind>(kind)));
    }
    log::info("appliance: {} of {} domains built, {} failed or refused", built, appliance.domain_count, failed);
    return failed == 0 ? 0 : kFailureStatus;
}

Result<manifest::Manifest, bool> read_boot_manifest(const BootInfo& boot) {
    const BootModule* module = find_module(boot, "manifest");
    if (!module) return fail(false);
    auto read = manifest::read_manifest(module_bytes(*module), static_cast<usize>(module->end - module->start));
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

u64 untyped_bytes(const manifest::Manifest& m) {
    u64 total = kToolstackBytes;
    for (u32 i = 0; i < m.domain_count(); ++i) total += m.domain(i).memory_bytes() + kKernelObjectsPerDomain;
    return total;
}

// The toolstack domain owns the boot untyped, all I/O ports and IRQs; it never runs.
bool bootstrap_toolstack(const manifest::Manifest& m, cap::System& system) {
    u64 bytes = untyped_bytes(m);
    paddr base = 0;
    if (!platform::allocate_physical(bytes, base)) {
        log::error("appliance: not enough memory for the domains ({} MiB)", bytes >> 20);
        return false;
    }
    cap::DomainConfig config{1, kPageSize, 0, NESTOR_CPUID_POLICY_DEFAULT, kToolstackCSpaceBits};
    auto booted = cap::bootstrap(system, base, bytes, config);
    if (!booted) {
        log::error("appliance: the capability runtime refused to boot: {}",
                   cap::status_name(static_cast<u64>(booted.error())));
        return false;
    }
    appliance.toolstack = booted.value();
    return true;
}

}  // namespace

bool module_named(const BootModule& module, const char* name) {
    const char* cmdline = module.cmdline;
    usize end = 0;
    while (cmdline[end]) ++end;
    while (end > 0 && cmdline[end - 1] == ' ') --end;
    usize start = end;
    while (start > 0 && cmdline[start - 1] != ' ') --start;
    usize length = 0;
    while (name[length]) ++length;
    return length == end - start && length > 0 && __builtin_memcmp(cmdline + start, name, length) == 0;
}

bool has_appliance(const BootInfo& boot) { return find_module(boot, "manifest") != nullptr; }

u32 run_appliance(const BootInfo& boot, const ApplianceOptions& options) {
    auto manifest = read_boot_manifest(boot);
    if (!manifest) return kFailureStatus;
    appliance.ops = select_virt_ops();
    if (!appliance.ops) {
        log::error("appliance: this CPU offers no usable virtualization backend");
        return kFailureStatus;
    }
    if (auto enabled = appliance.ops->enable(); !enabled) {
        log::error("appliance: enabling {}: {}", appliance.ops->name, virt_error_name(enabled.error()));
        return kFailureStatus;
    }
    static cap::DirectMapMemory kernel_memory;
    static cap::System system(kernel_memory, platform_caps());
    system.set_observer(&observer);
    appliance.system = &system;
    if (!bootstrap_toolstack(*manifest, system)) return kFailureStatus;

    appliance.domain_count = manifest->domain_count();
    u32 built = 0;
    for (u32 i = 0; i < appliance.domain_count; ++i) {
        if (build_domain(i, manifest->domain(i), boot)) {
            ++built;
        } else {
            release_backend(appliance.domains[i]);
            appliance.domains[i].running = false;
        }
    }
    for (u32 i = 0; i < appliance.domain_count; ++i) {
        RunningDomain& d = appliance.domains[i];
        if (d.running && !give_signals(d, manifest->domain(i)))
            stop(d, ExitOutcome{.stop = true, .status = kFailureStatus});
    }
    run_domains(options);
    return summarize(built);
}

}  // namespace nestor::virt
