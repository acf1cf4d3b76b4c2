// The kernel's side of the PC platform (nestor/virt/pc_ops.hpp): a pool of PCs, one per domain
// that asks, each on the guest's clock, driven from the run loop and the scheduler.
#include "nestor/lib/placement_new.hpp"
#include "nestor/log.hpp"
#include "nestor/manifest.h"
#include "nestor/pc/acpi_tables.hpp"
#include "nestor/pc/console_keys.hpp"
#include "nestor/pc/pc_platform.hpp"
#include "nestor/pc/smbios_tables.hpp"
#include "nestor/platform.hpp"
#include "nestor/virt/cpuid_policy.hpp"
#include "nestor/virt/exit_handler.hpp"
#include "nestor/virt/run_loop.hpp"
#include "nestor/virt/vm.hpp"
#include "nestor/virt/vm_environment.hpp"

namespace nestor::virt {

// The host's timestamp counter, from which each PC's own TSC (PcPlatform::tsc()) starts at 0:
// every vCPU of the domain runs with that TSC's offset.
class HostClock final : public pc::GuestClock {
public:
    u64 now() const override { return platform::timestamp(); }
    u64 tsc_khz() const override { return platform::timestamp_khz(); }
};

struct PcState {
    HostClock clock;
    pc::PcPlatform platform;
    CpuidTopology topology[pc::kMaxVcpus];
    bool init_seen[pc::kMaxVcpus] = {};  // an application processor's INIT arrived (it then waits for a SIPI)
    u32 starts[pc::kMaxVcpus] = {};      // how often each application processor was started
    u8 window[pc::kMaxVcpus] = {};       // the event window each vCPU's backend was last asked for
    u64 tsc_offset[pc::kMaxVcpus] = {};  // the TSC offset each vCPU's backend was last given (a new one has 0)
    pc::ConsoleKeys console_keys;        // the host's console input, when this PC takes it
    // What it was built with: a machine reset builds it again from these.
    pc::MsrConfig msrs;
    u64 memory_bytes;

    PcState(u32 vcpus, const pc::MsrConfig& msr_config, u64 memory, u64 tsc_start = 0)
        : platform(clock, vcpus, msr_config, tsc_start), msrs(msr_config), memory_bytes(memory) {}
};

namespace {

constexpr u32 kPcs = NESTOR_MANIFEST_MAX_DOMAINS;
constexpr u8 kNoWindow = 0, kInterruptWindow = 1, kNmiWindow = 2;
// An application processor's starts and INITs are logged up to this many starts: a guest that
// restarts one in a loop may not flood the console.
constexpr u32 kLoggedStarts = 4;
// The ACPI tables of a PC with the most vCPUs take well under this; the SMBIOS tables under the other.
constexpr usize kTablesBuffer = 4096;
constexpr usize kSmbiosBuffer = 256;

struct PcPool {
    alignas(PcState) u8 storage[sizeof(PcState) * kPcs];
    bool used[kPcs];
};
constinit PcPool pool{};

PcState* take(u32 vcpus, const pc::MsrConfig& msrs, u64 memory_bytes) {
    for (u32 i = 0; i < kPcs; ++i) {
        if (pool.used[i]) continue;
        pool.used[i] = true;
        return new (&pool.storage[i * sizeof(PcState)]) PcState(vcpus, msrs, memory_bytes);
    }
    return nullptr;
}

void give_back(PcState* pc) {
    for (u32 i = 0; i < kPcs; ++i)
        if (reinterpret_cast<PcState*>(&pool.storage[i * sizeof(PcState)]) == pc) pool.used[i] = false;
}

Status<PcError> write_smbios_tables(Vm& vm) {
    u8 tables[kSmbiosBuffer] = {};
    const pc::MachineUuid uuid = pc::domain_uuid(vm.name, vm.name ? __builtin_strlen(vm.name) : 0);
    auto built = pc::build_smbios_tables(tables, sizeof(tables), pc::kSmbiosAddress, uuid);
    if (!built) return fail(PcError::tables_dont_fit);
    if (!vm.memory.write(pc::kSmbiosAddress, tables, built->size)) return fail(PcError::tables_dont_fit);
    return {};
}

Status<PcError> write_acpi_tables(Vm& vm, u32 vcpus) {
    u8 tables[kTablesBuffer] = {};
    pc::AcpiConfig config{};
    config.vcpus = vcpus;
    config.io_apic_id = pc::kIoApicId;
    config.pm_base = pc::kPmBase;
    auto built = pc::build_acpi_tables(config, tables, sizeof(tables), pc::kAcpiTablesAddress);
    if (!built) return fail(PcError::tables_dont_fit);
    if (!vm.memory.write(pc::kAcpiTablesAddress, tables, built->size)) return fail(PcError::tables_dont_fit);
    return {};
}

// The VM's PC as at power-on: each vCPU's topology (from `first`, vCPU 0's; the application
// processors wait for INIT-SIPI-SIPI), its devices on the VM's bus, the host's wall clock and the
// memory size in its RTC, its ACPI and SMBIOS tables in the VM's memory.
Status<PcError> power_on(Vm& vm, const CpuidTopology& first) {
    PcState* pc = vm.pc;
    u32 vcpus = pc->platform.vcpus();
    for (u32 i = 0; i < vcpus; ++i) {
        pc->topology[i] = first;
        pc->topology[i].apic_id = i;
        vm.vcpus[i].cpuid_topology = &pc->topology[i];
        vm.vcpus[i].awaiting_startup = i != 0;
        vm.vcpus[i].init_pending = i != 0 ? &pc->platform.apic(i).init_pending_flag() : nullptr;
    }
    if (!pc->platform.attach(vm.devices.bus)) return fail(PcError::bus_full);
    pc->platform.rtc().set_wall_clock(platform::wall_clock(), pc->platform.tsc().now());
    const RamLayout ram = ram_layout(pc->memory_bytes, true);
    pc->platform.rtc().set_memory_size(ram.below_4g, ram.above_4g);
    NESTOR_TRY_STATUS(write_smbios_tables(vm));
    return write_acpi_tables(vm, vcpus);
}

Status<PcError> attach(Vm& vm, u32 vcpus, u64 memory_bytes) {
    static_assert(pc::kMaxVcpus <= kMaxVcpusPerVm, "a PC's vCPUs fit its VM");
    if (vcpus > pc::kMaxVcpus) return fail(PcError::too_many_vcpus);
    CpuidTopology first{vm.ops->vendor, 0, vcpus, static_cast<u32>(platform::timestamp_khz()),
                        static_cast<u32>(pc::kApicTimerKhz)};
    auto leaf = [&](u32 number, u32 subleaf) {
        return guest_cpuid(number, subleaf, vm.ops->host_cpuid(number, subleaf), nullptr, &first);
    };
    pc::MsrConfig msrs = pc::msr_config_from_cpuid(vm.ops->vendor, leaf(7, 0), leaf(7, 2), leaf(0x80000008, 0));
    PcState* pc = take(vcpus, msrs, memory_bytes);
    if (!pc) return fail(PcError::no_room);
    vm.pc = pc;
    vm.pc_ops = pc_platform();
    return power_on(vm, first);
}

// A machine reset: the PC built again in its place from what it was built with, with what a reset
// leaves alone carried over: the TSC runs on (it never goes backwards), and the RTC with its CMOS
// RAM is battery-backed. The VM's bus was emptied (VmDevices::reset) and its memory cleared.
Status<PcError> reset(Vm& vm) {
    PcState* pc = vm.pc;
    log::end_console_line(vm.name);
    const u64 tsc = pc->platform.tsc().now();
    const pc::CmosRtc::Battery battery = pc->platform.rtc().battery();
    const CpuidTopology first = pc->topology[0];
    const u32 vcpus = pc->platform.vcpus();
    const pc::MsrConfig msrs = pc->msrs;
    const u64 memory_bytes = pc->memory_bytes;
    pc->~PcState();
    new (pc) PcState(vcpus, msrs, memory_bytes, tsc);
    NESTOR_TRY_STATUS(power_on(vm, first));
    pc->platform.rtc().restore_battery(battery);
    return {};
}

// A guest hypervisor has its say on its PC's interrupts first (nested_ops.hpp route_interrupt):
// held while its GIF is clear, a #VMEXIT(INTR) into it while its guest runs and it intercepts
// INTR, else the vCPU's now. Held: not injected now, and no window either (the CPU's would open
// at once): the STGI or #VMEXIT that lets it through is an exit, and the next entry tries again.
// Acknowledged: a VM exit into it took the interrupt (VMX's "acknowledge interrupt on exit").
// Its NMIs likewise (route_nmi): held while GIF is clear, a VM exit into it while its guest runs
// and it exits on NMIs.
enum class NestedRoute : u8 { inject, held, acknowledged };
NestedRoute nested_route(Vcpu& v, VcpuState& state, const pc::PendingEvent& event) {
    nested::NestedVcpu* nested = v.nested_state();
    if (!nested) return NestedRoute::inject;
    const nested::Decision decision = event.kind == pc::PendingEvent::Kind::nmi
                                          ? nested->ops->route_nmi(*nested, state)
                                          : nested->ops->route_interrupt(*nested, state, event.vector);
    switch (decision.action) {
    case nested::Action::not_nested: return NestedRoute::inject;
    case nested::Action::complete: return NestedRoute::acknowledged;
    default: return NestedRoute::held;
    }
}

// The kernel's timers run on the host's TSC.
u64 next_deadline(const Vm& vm) { return vm.pc->platform.tsc().host_time(vm.pc->platform.next_deadline()); }

PcEntry prepare_entry(Vm& vm, Vcpu& v, VcpuState& state) {
    pc::PcPlatform& pc = vm.pc->platform;
    pc.select_vcpu(v.index, &state.cr8);
    pc::LocalApic& apic = pc.apic(v.index);
    apic.sync_cr8(state.cr8);  // the guest may have written CR8 since its last exit
    // The domain's TSC offset, set on this vCPU's backend once and again after a guest's WRMSR
    // to IA32_TSC or IA32_TSC_ADJUST (on any vCPU) moved it.
    if (u64 offset = pc.tsc().offset(); vm.pc->tsc_offset[v.index] != offset) {
        vm.ops->set_tsc_offset(v.handle, offset);
        vm.pc->tsc_offset[v.index] = offset;
    }
    pc.advance(pc.tsc().now());
    pc::PendingEvent event = pc.pending(v.index);
    if (event.kind != pc::PendingEvent::Kind::none) {
        NestedRoute route = nested_route(v, state, event);
        if (route == NestedRoute::acknowledged) pc.taken(v.index, event);
        if (route != NestedRoute::inject) event = {};
    }
    bool nmi = event.kind == pc::PendingEvent::Kind::nmi;
    bool injected =
        event.kind == pc::PendingEvent::Kind::none ||
        (nmi ? vm.ops->inject_nmi(v.handle, state) : vm.ops->inject_interrupt(v.handle, state, event.vector));
    if (injected && event.kind != pc::PendingEvent::Kind::none) pc.taken(v.index, event);
    // What TPR holds back arrives once the guest lowers CR8 below its class: the run ends then.
    state.cr8 = apic.cr8();
    state.cr8_threshold = apic.cr8_threshold();
    // What it cannot take yet makes it exit as soon as it can; a window left open once nothing
    // waits would make it exit before every instruction.
    // The backend is told only of a change (most entries have nothing waiting, as before).
    u8 window = injected ? kNoWindow : nmi ? kNmiWindow : kInterruptWindow;
    u8& open = vm.pc->window[v.index];
    if (window != open) {
        if ((window ^ open) & kNmiWindow) vm.ops->request_nmi_window(v.handle, window == kNmiWindow);
        if ((window ^ open) & kInterruptWindow) vm.ops->request_interrupt_window(v.handle, window == kInterruptWindow);
        open = window;
    }
    return {next_deadline(vm), pc.take_woken_others()};
}

// The short path of an x2APIC register write (WRMSR 0x800-0x8FF, the busiest exit of an x2APIC
// guest: an EOI after every interrupt): straight to the vCPU's local APIC, not through the
// kernel's MSR dispatch and the bus. A write the APIC refuses takes the kernel's path, which
// raises its #GP. An EOI or TPR write after which nothing can be delivered (IRR holds nothing
// above PPR, nothing new waits for TPR, no other vCPU got an interrupt) needs no entry work.
[[gnu::noinline]] PcExit x2apic_write(Vm& vm, Vcpu& v, const VmExit& exit, VcpuState& state) {
    pc::PcPlatform& pc = vm.pc->platform;
    pc::LocalApic& apic = pc.apic(v.index);
    apic.sync_cr8(state.cr8);
    if (!exit.instruction_length || !apic.write_x2apic(exit.msr.index, exit.msr.value)) return {false, true};
    state.cr8 = apic.cr8();
    (void)complete_instruction(exit, state);
    const u32 offset = (exit.msr.index - pc::LocalApic::kMsrX2apicFirst) * pc::LocalApic::kRegisterStride;
    const bool quiet = (offset == pc::LocalApic::kEoi || offset == pc::LocalApic::kTpr) &&
                       apic.nothing_new(state.cr8_threshold) && !pc.woken_others();
    return {true, !quiet};
}

// The rest of an EOI that ended a level-triggered vector: its source is told last, after which
// the entry work runs (it may assert its line again). TPR is synchronised from CR8 for what
// reads it.
[[gnu::noinline]] PcExit end_level_triggered(pc::LocalApic& apic, const VcpuState& state, u8 vector) {
    apic.sync_cr8(state.cr8);
    apic.tell_source(vector);
    return {true, true};
}

// The rest of an EOI after which IRR holds a vector: whether it can be delivered now.
[[gnu::noinline]] PcExit requested_after_eoi(pc::PcPlatform& pc, pc::LocalApic& apic, const VcpuState& state) {
    apic.sync_cr8(state.cr8);  // nothing_new reads TPR; an EOI leaves it alone
    return {true, !apic.nothing_new(state.cr8_threshold) || pc.woken_others()};
}

// EOI (WRMSR 0x80B) as x2apic_write does it, on a path of its own: the highest vector in service
// ends here (the EOI a guest makes, after each interrupt). When it was edge-triggered and IRR is
// empty, the EOI changes nothing the last entry was made with (no register is kept across a call
// for it); the others are a tail call.
[[gnu::noinline]] PcExit x2apic_eoi(Vm& vm, Vcpu& v, const VmExit& exit, VcpuState& state) {
    pc::PcPlatform& pc = vm.pc->platform;
    pc::LocalApic& apic = pc.apic(v.index);
    if (!exit.instruction_length || !apic.x2apic() || exit.msr.value != 0) return {false, true};
    (void)complete_instruction(exit, state);
    if (const int level_triggered = apic.end_in_service(); level_triggered >= 0) [[unlikely]]
        return end_level_triggered(apic, state, static_cast<u8>(level_triggered));
    if (apic.any_requested()) [[unlikely]]
        return requested_after_eoi(pc, apic, state);
    return {true, state.cr8_threshold != 0 || pc.woken_others()};
}

// The short path of an access to the local APIC's page at its usual place (which only the local
// APICs claim on the bus): straight from the nested page fault to the vCPU's local APIC, not
// through the kernel's dispatch and the bus. What the kernel's MMIO emulation would refuse or
// stop for (an instruction it cannot decode, one that does not match the fault) takes its path,
// which says why. A read changes nothing; a write is quiet as for x2APIC.
[[gnu::noinline]] PcExit xapic_access(Vm& vm, Vcpu& v, const VmExit& exit, VcpuState& state) {
    const u64 address = exit.npf.guest_physical;
    pc::PcPlatform& pc = vm.pc->platform;
    pc::LocalApic& apic = pc.apic(v.index);
    if (apic.base() != pc::kLocalApicAddress || apic.x2apic() || !apic.hardware_enabled()) return {false, true};
    auto decoded = decode_mmio_at_rip(*vm.ops, v.handle, state);
    if (!decoded) return {false, true};
    const MmioAccess& access = *decoded;
    const bool write = access.direction == MmioDirection::write;
    const bool sized = access.size == 1 || access.size == 2 || access.size == 4 || access.size == 8;
    if (!sized || write != (exit.npf.access == MemoryAccess::write) ||
        (address & (pc::LocalApic::kMmioSize - 1)) + access.size > pc::LocalApic::kMmioSize)
        return {false, true};
    apic.sync_cr8(state.cr8);
    VmEnvironment host(vm, v);
    VmExit completed = exit;
    completed.instruction_length = access.length;
    if (!write) {
        u64 value = ~u64{0};
        (void)apic.mmio_read(address, access.size, value, host);
        mmio_load_register(access, state, value);
        (void)complete_instruction(completed, state);
        return {true, false};
    }
    (void)apic.mmio_write(address, access.size, mmio_store_value(access, state), host);
    state.cr8 = apic.cr8();
    (void)complete_instruction(completed, state);
    const u64 offset = address - pc::kLocalApicAddress;
    const bool quiet = (offset == pc::LocalApic::kEoi || offset == pc::LocalApic::kTpr) &&
                       apic.nothing_new(state.cr8_threshold) && !pc.woken_others();
    return {true, !quiet};
}

// Which exits may change what prepare_entry finds: those that reach the PC's devices, but for MMIO
// reads (the local and I/O APICs' reads change nothing), and those that bring what waited (an
// event window, a CR8 lowered below the threshold). The others (CPUID, XSETBV, WBINVD, RDPMC,
// MONITOR/MWAIT, a reflected #DB or #AC) reach none.
// Each short path is a function of its own, tail-called: none pays for another's registers.
PcExit exit_served(Vm& vm, Vcpu& v, const VmExit& exit, VcpuState& state) {
    // The busiest first: an x2APIC guest's EOI.
    if (exit.kind == ExitKind::msr_write && exit.msr.index == pc::LocalApic::kMsrX2apicEoi) [[likely]] {
        [[clang::musttail]] return x2apic_eoi(vm, v, exit, state);
    }
    switch (exit.kind) {
    case ExitKind::msr_write:
        if (exit.msr.index - pc::LocalApic::kMsrX2apicFirst < pc::LocalApic::kMsrX2apicCount) {
            [[clang::musttail]] return x2apic_write(vm, v, exit, state);
        }
        return {false, true};
    case ExitKind::nested_page_fault:
        if (exit.npf.guest_physical - pc::kLocalApicAddress < pc::LocalApic::kMmioSize &&
            exit.npf.access != MemoryAccess::execute) {
            [[clang::musttail]] return xapic_access(vm, v, exit, state);
        }
        return {false, exit.npf.access != MemoryAccess::read};
    case ExitKind::cpuid:
    case ExitKind::xsetbv:
    case ExitKind::cache_invalidate:
    case ExitKind::performance_counter:
    case ExitKind::monitor_wait:
    case ExitKind::exception: return {false, false};
    default: return {false, true};
    }
}

bool wakes(Vm& vm, Vcpu& v) {
    vm.pc->platform.apic(v.index).sync_cr8(v.state().cr8);
    return vm.pc->platform.wakes(v.index);
}

// An INIT to an application processor that runs (or halts) puts it back into wait-for-SIPI: its
// backend vCPU goes with its state, its nested state too (one its guest hypervisor holds back
// does not get here: init_taken). Its local APIC's INIT is taken by start_processor.
[[gnu::noinline]] void stop_processor(Vm& vm, Vcpu& v) {
    vm.release_vcpu(v);
    vm.reset_vcpu(v);
    v.awaiting_startup = true;
    if (vm.pc->starts[v.index] < kLoggedStarts)
        log::info("appliance: domain {}: vCPU {} waits for a startup IPI again (INIT)", vm.name, v.index);
}

// INIT puts an application processor into wait-for-SIPI; the SIPI that follows starts it in real
// mode at CS = vector << 8, IP = 0, as the SDM's MP initialisation protocol says.
bool start_processor(Vm& vm, Vcpu& v) {
    pc::LocalApic& apic = vm.pc->platform.apic(v.index);
    if (apic.take_init()) {
        apic.reset_for_init();
        vm.pc->init_seen[v.index] = true;
    }
    if (!vm.pc->init_seen[v.index]) return false;
    int vector = apic.take_startup();
    if (vector < 0) return false;
    InitialMode initial{CpuMode::real16, 0};
    initial.real_mode_segment = static_cast<u16>(vector << 8);
    initial.task_priority = true;
    if (auto created = vm.create_application_processor(initial, v.index); !created) {
        log::error("appliance: domain {}: starting vCPU {}: {}", vm.name, v.index, virt_error_name(created.error()));
        return false;
    }
    v.state().rip = 0;
    v.awaiting_startup = false;
    // A new backend vCPU: it has no event window open, and its first entry sets the domain's TSC
    // offset (a cache left from the vCPU an INIT released would hide a window it now needs).
    vm.pc->window[v.index] = kNoWindow;
    vm.pc->tsc_offset[v.index] = 0;
    const u32 starts = ++vm.pc->starts[v.index];
    if (starts <= kLoggedStarts)
        log::info("appliance: domain {}: vCPU {} started at {:#x}", vm.name, v.index,
                  u64{static_cast<u32>(vector)} << 12);
    if (starts == kLoggedStarts)
        log::info("appliance: domain {}: vCPU {} started {} times: its further starts and INITs are not logged",
                  vm.name, v.index, starts);
    return true;
}

// A guest hypervisor's state may hold an INIT back (nested_ops.hpp init_signal): VMX root
// operation or a clear GIF; while its guest runs it may become a VM exit into it instead, after
// which it runs, even if its guest had halted. True: the vCPU takes the INIT.
[[gnu::noinline]] bool init_taken(Vm& vm, Vcpu& v) {
    nested::NestedVcpu* nested = v.nested_state();
    if (!nested) return true;
    // Between two runs of any vCPU: a VM exit into L1 reaches this vCPU's devices (its MSR lists).
    vm.pc->platform.select_vcpu(v.index, &v.state().cr8);
    const bool in_l2 = nested->ops->in_guest_mode(*nested);
    const nested::Decision decision = nested->ops->init_signal(*nested, v.state());
    if (decision.action == nested::Action::not_nested) return true;
    if (decision.action == nested::Action::stop) {
        stop_vm(vm, v,
                ExitOutcome{.stop = true, .reason = StopReason::unsupported, .status = 1, .detail = decision.report});
        return false;
    }
    pc::LocalApic& apic = vm.pc->platform.apic(v.index);
    if (decision.action == nested::Action::complete)
        apic.drop_init();
    else
        apic.drop_startup();
    if (in_l2 && !nested->ops->in_guest_mode(*nested)) v.waiting = false;
    return false;
}

bool application_processor_runs(Vm& vm, Vcpu& v) {
    if (!v.awaiting_startup) {
        if (!vm.pc->platform.apic(v.index).init_pending()) [[likely]]
            return true;
        if (!init_taken(vm, v)) return vm.running;
        stop_processor(vm, v);
    }
    return start_processor(vm, v);
}

// The operator's NMI button (pc/console_keys.hpp: Ctrl-] n on the console).
void press_nmi_button(Vm& vm) {
    if (vm.pc->platform.press_nmi_button())
        log::info("appliance: domain {}: NMI button pressed", vm.name);
    else
        log::info("appliance: domain {}: NMI button pressed; the guest masks NMIs (port 0x61 or the CMOS)", vm.name);
}

void serve_console(Vm& vm) {
    pc::Serial16550A& serial = vm.pc->platform.serial();
    u8 byte = 0;
    while (serial.receive_space() > 0 && platform::console_read(byte)) {
        pc::ConsoleKeys::Key key = vm.pc->console_keys.feed(byte);
        if (key.kind == pc::ConsoleKeys::Key::Kind::typed) serial.receive(key.byte);
        if (key.kind == pc::ConsoleKeys::Key::Kind::nmi_button) press_nmi_button(vm);
    }
    VmEnvironment host(vm);
    serial.flush_part(host);
}

void detach(Vm& vm) {
    log::end_console_line(vm.name);
    for (Vcpu& v : vm.vcpus) v.init_pending = nullptr;  // its local APICs go with it
    vm.pc->~PcState();
    give_back(vm.pc);
    vm.pc = nullptr;
}

constexpr PcOps kPcOps{
    .attach = attach,
    .reset = reset,
    .prepare_entry = prepare_entry,
    .exit_served = exit_served,
    .wakes = wakes,
    .application_processor_runs = application_processor_runs,
    .next_deadline = next_deadline,
    .serve_console = serve_console,
    .detach = detach,
};

}  // namespace

const PcOps* pc_platform() { return &kPcOps; }

}  // namespace nestor::virt
