#include "vmx_l2.hpp"

#include "nestor/arch/vmx_vmcs.hpp"
#include "vmcs02.hpp"
#include "vmx_capabilities.hpp"
#include "vmx_guest_checks.hpp"
#include "vmx_msr_lists.hpp"

namespace nestor::nested::vmx {
namespace {

using namespace intel_vmx;
using x86::vmx::Level;
using x86::vmx::NestedHardware;

constexpr u32 kEntryFailure = exit_reason::entry_failure;
constexpr u32 kIoBitmapPorts = 0x8000;
constexpr u32 kMaxPort = 0xFFFF;
constexpr u32 kMsrsPerRange = msr_bitmap::msrs_per_range;
constexpr u32 kMsrHighReadOffset = 1024;
constexpr u32 kVectorGp = 13;
constexpr u32 kVectorPf = 14;
constexpr u32 kCrAccessMovTo = 0;

NestedHardware* hardware_of(NestedVcpu& vcpu) { return static_cast<NestedHardware*>(vcpu.hardware); }
u64 f(const Vmcs12& v, u32 encoding) { return read_field(v, encoding); }
u32 primary_of(const Vmcs12& v) { return static_cast<u32>(f(v, field::primary_controls)); }
u32 secondary_of(const Vmcs12& v) {
    return (primary_of(v) & primary::activate_secondary) ? static_cast<u32>(f(v, field::secondary_controls)) : 0;
}
bool l1_uses_ept(const Vmcs12& v) { return secondary_of(v) & secondary::enable_ept; }

// L1's VMX-preemption timer counts every 2^rate TSC ticks.
u32 l1_timer_rate() { return static_cast<u32>(capabilities().misc & misc::preemption_timer_rate_mask); }

// The timer value a VM exit saves: what is left, rounded up to a whole count (0 once expired).
u64 l1_timer_value(NestedHardware& hw) {
    u32 rate = l1_timer_rate();
    return (hw.l2_timer_left() + (u64{1} << rate) - 1) >> rate;
}

// SDM 27.7: a VM exit that cannot complete ends in a VMX abort, which the CPU answers with
// shutdown: the domain stops, the indicator in vmcs12.
Decision vmx_abort(Vmcs12& v, u32 indicator, const char* report) {
    v.abort = indicator;
    return stop(report);
}

// The emulated VM exit: L2's state into vmcs12 (unless the entry failed) and L2's MSRs into the
// MSR-store list, the exit information, then L1 from vmcs12's host state and the MSR-load list.
// `state_newer`: the kernel changed L2's state after the exit.
Decision vm_exit(NestedVcpu& vcpu, NestedHardware& hw, const ExitInformation& info, virt::VcpuState& state,
                 bool save_l2, bool state_newer) {
    Vmcs12& v = *core(vcpu).vmx.cache;
    if (save_l2) {
        if (state_newer) hw.write_state(state);
        save_l2_state(v, hw);
        l2_state(core(vcpu).vmx).guest_state_kept = true;
        if (f(v, field::exit_controls) & exit_ctl::save_preemption_timer)
            write_field(v, field::preemption_timer_value, l1_timer_value(hw));
        if (!store_exit_msrs(v, hw, vcpu)) [[unlikely]] {
            hw.reset_to_l1();
            vcpu.guest_exit = nullptr;
            return vmx_abort(v, vmx_abort::saving_guest_msrs,
                             "nested VMX: VMX abort: L1's VM-exit MSR-store list could not be stored");
        }
    }
    write_exit_information(v, info);
    load_l1_host_state(v, hw, state);
    vcpu.guest_exit = nullptr;
    if (!hw.write_ok()) return stop("nested VMX: L0 could not load L1's host state into its VMCS");
    if (!load_exit_msrs(v, hw, vcpu, state)) [[unlikely]]
        return vmx_abort(v, vmx_abort::loading_host_msrs,
                         "nested VMX: VMX abort: L1's VM-exit MSR-load list could not be loaded");
    return resume();
}

ExitInformation bare_exit(u32 reason, u64 qualification = 0) {
    ExitInformation info{};
    info.reason = reason;
    info.qualification = qualification;
    return info;
}

// One bit of a bitmap in L1's memory; a bitmap that is not L1's RAM reads as all ones.
bool l1_bitmap_bit(Host& host, u64 bitmap, u64 bit) {
    u8 byte = 0xFF;
    if (!host.read(bitmap + bit / 8, &byte, 1)) return true;
    return (byte >> (bit % 8)) & 1;
}

bool l1_intercepts_io(const Vmcs12& v, Host& host, const virt::IoExit& io) {
    if (!(primary_of(v) & primary::use_io_bitmaps)) return primary_of(v) & primary::unconditional_io_exiting;
    for (u32 port = io.port; port < u32{io.port} + io.size; ++port) {
        if (port > kMaxPort) return true;  // an access that wraps exits
        u64 bitmap = f(v, port < kIoBitmapPorts ? field::io_bitmap_a : field::io_bitmap_b);
        if (l1_bitmap_bit(host, bitmap, port % kIoBitmapPorts)) return true;
    }
    return false;
}

bool l1_intercepts_msr(const Vmcs12& v, Host& host, u32 index, bool write) {
    if (!(primary_of(v) & primary::use_msr_bitmaps)) return true;
    u64 offset;
    if (index < kMsrsPerRange)
        offset = 0;
    else if (index - msr_bitmap::high_first < kMsrsPerRange)
        offset = kMsrHighReadOffset;
    else
        return true;
    if (write) offset += msr_bitmap::write_offset;
    return l1_bitmap_bit(host, f(v, field::msr_bitmap) + offset, index % kMsrsPerRange);
}

bool l1_intercepts_exception(const Vmcs12& v, u32 vector, u32 error_code) {
    bool bit = (f(v, field::exception_bitmap) >> vector) & 1;
    if (vector != kVectorPf) return bit;
    // SDM 25.2: with bit 14 set a #PF exits when error & mask == match, with it clear when not.
    bool match = (error_code & f(v, field::page_fault_error_mask)) == f(v, field::page_fault_error_match);
    return bit == match;
}

enum class Route : u8 { reflect, l0, ept, cr_l0_only, unhandled };

Route route_cr_access(const Vmcs12& v, NestedHardware& hw, const virt::VcpuState& state) {
    u64 q = hw.read(Level::l2, field::exit_qualification);
    u32 cr = q & 15, access = (q >> 4) & 3, reg = (q >> 8) & 15;
    if (access != kCrAccessMovTo || (cr != 0 && cr != 4)) return Route::reflect;  // CR3 / CR8 exits are L1's controls
    u64 mask = f(v, cr == 0 ? field::cr0_guest_host_mask : field::cr4_guest_host_mask);
    u64 shadow = f(v, cr == 0 ? field::cr0_read_shadow : field::cr4_read_shadow);
    return ((state.gpr[reg] ^ shadow) & mask) ? Route::reflect : Route::cr_l0_only;
}

Route when(bool l1_asks) { return l1_asks ? Route::reflect : Route::l0; }

Route route(const Vmcs12& v, NestedHardware& hw, Host& host, const virt::VmExit& exit, const virt::VcpuState& state) {
    u32 p = primary_of(v), s = secondary_of(v);
    switch (static_cast<u32>(exit.vendor_code) & exit_reason::basic_mask) {
    case exit_reason::external_interrupt:
    case exit_reason::init_signal:
    case exit_reason::sipi:
    case exit_reason::io_smi:
    case exit_reason::other_smi:
        return Route::l0;  // the host's
    // vmcs02's threshold is L1's with its TPR shadow, else L0's (L2's CR8 is L1's own).
    case exit_reason::tpr_below_threshold: return when(p & primary::use_tpr_shadow);
    // Exits every L2 takes to its L1 (SDM 25.1.2), whatever L1's controls.
    case exit_reason::triple_fault:
    case exit_reason::task_switch:
    case exit_reason::cpuid:
    case exit_reason::getsec:
    case exit_reason::invd:
    case exit_reason::vmcall:
    case exit_reason::vmclear:
    case exit_reason::vmlaunch:
    case exit_reason::vmptrld:
    case exit_reason::vmptrst:
    case exit_reason::vmread:
    case exit_reason::vmresume:
    case exit_reason::vmwrite:
    case exit_reason::vmxoff:
    case exit_reason::vmxon:
    case exit_reason::invept:
    case exit_reason::invvpid:
    case exit_reason::xsetbv: return Route::reflect;
    case exit_reason::interrupt_window: return when(p & primary::interrupt_window_exiting);
    case exit_reason::nmi_window: return when(p & primary::nmi_window_exiting);
    case exit_reason::hlt: return when(p & primary::hlt_exiting);
    case exit_reason::invlpg: return when(p & primary::invlpg_exiting);
    case exit_reason::rdpmc: return when(p & primary::rdpmc_exiting);
    case exit_reason::rdtsc:
    case exit_reason::rdtscp: return when(p & primary::rdtsc_exiting);
    case exit_reason::dr_access: return when(p & primary::mov_dr_exiting);
    case exit_reason::mwait: return when(p & primary::mwait_exiting);
    case exit_reason::monitor: return when(p & primary::monitor_exiting);
    case exit_reason::pause: return when(p & primary::pause_exiting);
    case exit_reason::wbinvd: return when(s & secondary::wbinvd_exiting);
    case exit_reason::cr_access: return route_cr_access(v, hw, state);
    case exit_reason::io_instruction: return when(l1_intercepts_io(v, host, exit.io));
    case exit_reason::rdmsr:
    case exit_reason::wrmsr:
        return when(l1_intercepts_msr(v, host, exit.msr.index, exit.vendor_code == exit_reason::wrmsr));
    case exit_reason::exception_or_nmi:
        if (exit.kind != virt::ExitKind::exception) return Route::l0;  // a host NMI, a machine check
        return when(l1_intercepts_exception(v, exit.exception.vector, exit.exception.error_code));
    case exit_reason::ept_violation: return l1_uses_ept(v) ? Route::ept : Route::l0;
    // L1's timer expired (the backend's own slice ends as ExitKind::preemption, never here).
    case exit_reason::preemption_timer:
        return when((f(v, field::pin_based_controls) & pin::preemption_timer) &&
                    exit.kind != virt::ExitKind::preemption);
    default: break;
    }
    return Route::unhandled;
}

// vmcs02's EPT pointer for L1's EPT (the shadow) or, without it, L0's EPT of L1; 0: no memory.
u64 l2_eptp(const Vmcs12& v, L2State& l2, NestedHardware& hw, Host& host) {
    if (!l1_uses_ept(v)) return hw.l0_controls().l1_eptp;
    return shadow_ept_prepare(l2.shadow, host, f(v, field::ept_pointer), hw.mapping_generation());
}

Decision ept_fault(NestedVcpu& vcpu, NestedHardware& hw, const virt::VmExit& exit, virt::VcpuState& state) {
    VmxVcpu& vmx = core(vcpu).vmx;
    const Vmcs12& v = *vmx.cache;
    L2State& l2 = l2_state(vmx);
    Host& host = *vcpu.host;
    u64 before = hw.read(Level::l2, field::ept_pointer);
    u64 gpa = exit.npf.guest_physical;
    u64 qualification = hw.read(Level::l2, field::exit_qualification);
    EptResult r = shadow_ept_fault(l2.shadow, host, gpa, qualification, hw.physical_address_bits());
    switch (r.outcome) {
    case EptOutcome::mapped: {
        u64 eptp = l2_eptp(v, l2, hw, host);
        if (!eptp) break;
        if (shadow_take_flush(l2.shadow.tree) || eptp != before) hw.use_l2_eptp(eptp);
        return resume();
    }
    case EptOutcome::violation: {
        ExitInformation info = exit_information(hw, exit_reason::ept_violation);
        info.qualification = r.qualification;
        info.guest_physical = gpa;
        return vm_exit(vcpu, hw, info, state, true, false);
    }
    case EptOutcome::misconfiguration: {
        ExitInformation info = bare_exit(exit_reason::ept_misconfiguration);
        info.guest_physical = gpa;
        return vm_exit(vcpu, hw, info, state, true, false);
    }
    case EptOutcome::l0_fault: return stop("nested VMX: L1's EPT sends L2 outside L1's memory");
    case EptOutcome::l1_table_not_ram: return stop("nested VMX: L1's EPT is not in L1's memory");
    case EptOutcome::out_of_memory: break;
    }
    hw.use_l2_eptp(hw.l0_controls().empty_eptp);
    return stop("nested VMX: no memory for the shadow EPT");
}

// L0 unmapped part of L1 while L2 ran on the shadow: the backend moved vmcs02 to the empty root.
void refresh_shadow(NestedVcpu& vcpu, NestedHardware& hw) {
    VmxVcpu& vmx = core(vcpu).vmx;
    L2State& l2 = l2_state(vmx);
    shadow_ept_drop(l2.shadow, *vcpu.host);
    u64 eptp = l2_eptp(*vmx.cache, l2, hw, *vcpu.host);
    hw.use_l2_eptp(eptp ? eptp : hw.l0_controls().empty_eptp);
    shadow_take_flush(l2.shadow.tree);
}

// PAE paging's PDPTEs from L1's memory into vmcs02 (vmcs02 runs under L0's EPT, where the CPU
// takes them from its fields); false: the entry fails.
[[gnu::noinline]] bool load_l2_pdptes(const Vmcs12& v, NestedHardware& hw, Host& host) {
    constexpr u32 kPdpteFields[] = {field::guest_pdpte0, field::guest_pdpte1, field::guest_pdpte2, field::guest_pdpte3};
    Pdptes pdptes{};
    if (!load_pdptes(v, hw.physical_address_bits(), host, pdptes)) return false;
    hw.write_fields(Level::l2, kPdpteFields, pdptes.entry, 4);
    return true;
}

// L2's MOV to CR0 / CR4 changed a bit L1 leaves to L2 but L0 owns (Route::cr_l0_only): CR0.NE
// or CR4.VMXE, fixed to 1 in VMX operation, or a CR4 bit of a feature L1's CPU lacks, fixed to 0
// (cr4_not_offered). The read shadow holds the only value L1's CPU allows, which VM entry checked
// (check_guest_state), so any change is one the CPU refuses: #GP(0) without a change (SDM 25.3),
// to L1 if its exception bitmap takes #GP, else delivered to L2.
Decision l0_only_cr_write(NestedVcpu& vcpu, NestedHardware& hw, virt::VcpuState& state) {
    if (l1_intercepts_exception(*core(vcpu).vmx.cache, kVectorGp, 0)) {
        ExitInformation info = bare_exit(exit_reason::exception_or_nmi);
        info.interruption_info =
            kVectorGp | intr_info::type_hardware_exception | intr_info::valid | intr_info::error_code_valid;
        return vm_exit(vcpu, hw, info, state, true, false);
    }
    hw.inject_exception(kVectorGp, 0);
    return resume();
}

// L1's TPR shadow for L2: the CPU writes VTPR into the page, so it must be L1's writable RAM
// (a page L1's EPT or MMIO holds is not L0's to give).
bool l1_virtual_apic_page(const Vmcs12& v, Host& host, x86::vmx::L2TprShadow& out) {
    const u64 page = f(v, field::virtual_apic_page_address);
    const GuestPage mapped = host.page(page);
    if (!mapped.ram || !mapped.writable) return false;
    out = {page, mapped.host, static_cast<u32>(f(v, field::tpr_threshold))};
    return true;
}

}  // namespace

void complete_vmcs12(VmxVcpu& vmx, NestedHardware& hw) {
    L2State& l2 = l2_state(vmx);
    if (!l2.guest_state_kept) return;
    save_kept_guest_state(*vmx.cache, hw);
    l2.guest_state_kept = false;
}

Decision enter_l2(NestedVcpu& vcpu, NestedHardware& hw, virt::VcpuState& state, bool launch) {
    VmxVcpu& vmx = core(vcpu).vmx;
    Vmcs12& v = *vmx.cache;
    GuestCheck check = check_guest_state(
        v, {cr4_not_offered(hw.l0_controls()), vmx.current_vmcs, hw.physical_address_bits(), *vcpu.host});
    if (check != GuestCheck::ok)  // VM-entry failure: a VM exit into L1, the launch state unchanged
        return vm_exit(vcpu, hw,
                       bare_exit(exit_reason::invalid_guest_state | kEntryFailure, guest_check_qualification(check)),
                       state, false, false);
    x86::vmx::L2TprShadow tpr_shadow{};
    const bool l1_tpr_shadow = primary_of(v) & primary::use_tpr_shadow;
    if (l1_tpr_shadow && !l1_virtual_apic_page(v, *vcpu.host, tpr_shadow)) [[unlikely]]
        return stop("nested VMX: L1's virtual-APIC page is not in L1's memory");
    L2State& l2 = l2_state(vmx);
    u64 eptp = l2_eptp(v, l2, hw, *vcpu.host);
    if (!eptp) return stop("nested VMX: no memory for the shadow EPT");
    shadow_take_flush(l2.shadow.tree);  // every entry flushes L2's translations
    bool whole = launch || !l2.vmcs02_matches;
    if (whole) complete_vmcs12(vmx, hw);
    write_vmcs02(v, hw, *vcpu.host, eptp, l2.open_msr_words, whole ? nullptr : &l2.written);
    if (!hw.write_ok()) return stop("nested VMX: L0 could not build vmcs02");
    l2.vmcs02_matches = true;
    l2.written.clear();
    // SDM 26.3.2.4, with the guest state: PAE paging's PDPTEs (vmx_guest_checks.hpp).
    if (loads_pdptes_from_memory(v)) [[unlikely]]
        if (!load_l2_pdptes(v, hw, *vcpu.host))
            return vm_exit(vcpu, hw, bare_exit(exit_reason::invalid_guest_state | kEntryFailure, kQualificationPdptes),
                           state, false, false);
    // SDM 26.4: after the guest state, the MSR-load list; a failing entry fails the VM entry.
    if (u32 failed = load_entry_msrs(v, hw, vcpu))
        return vm_exit(vcpu, hw, bare_exit(exit_reason::msr_loading | kEntryFailure, failed), state, false, false);
    hw.enter_l2(state, true, l1_tpr_shadow ? &tpr_shadow : nullptr);
    if (f(v, field::pin_based_controls) & pin::preemption_timer)
        hw.arm_l2_timer(f(v, field::preemption_timer_value) << l1_timer_rate());
    else
        hw.disarm_l2_timer();
    if (launch) v.launch_state = kLaunchStateLaunched;
    l2.launching = launch;
    vcpu.guest_exit = l2_exit;
    return resume();
}

Decision l2_exit(NestedVcpu& vcpu, const virt::VmExit& exit, virt::VcpuState& state) {
    NestedHardware* hw = hardware_of(vcpu);
    VmxVcpu& vmx = core(vcpu).vmx;
    if (!hw || !vmx.cache || !hw->running_l2()) [[unlikely]]
        return stop("nested VMX: an L2 exit without an L2");
    if (hw->take_stale_shadow()) [[unlikely]]
        refresh_shadow(vcpu, *hw);
    u32 reason = static_cast<u32>(exit.vendor_code);
    if (exit.kind == virt::ExitKind::invalid_state && !(reason & kEntryFailure))
        return stop("nested VMX: the CPU refused vmcs02 (VMfail)");
    L2State& l2 = l2_state(vmx);
    bool launching = l2.launching;
    l2.launching = false;
    if (reason & kEntryFailure) {  // the CPU's own guest-state checks: L1 gets the failure as it is
        if (launching) vmx.cache->launch_state = kLaunchStateClear;
        l2.vmcs02_matches = false;  // the kernel may have written L2's state into vmcs02
        ExitInformation info = bare_exit(reason, hw->read(Level::l2, field::exit_qualification));
        return vm_exit(vcpu, *hw, info, state, false, false);
    }
    switch (route(*vmx.cache, *hw, *vcpu.host, exit, state)) {
    case Route::reflect: return vm_exit(vcpu, *hw, exit_information(*hw, reason), state, true, false);
    case Route::l0: return not_nested();
    case Route::ept: return ept_fault(vcpu, *hw, exit, state);
    case Route::cr_l0_only: return l0_only_cr_write(vcpu, *hw, state);
    case Route::unhandled: break;
    }
    return stop("nested VMX: an L2 exit the component does not route yet");
}

Decision l2_exception(NestedVcpu& vcpu, u8 vector, bool has_error_code, u32 error_code, virt::VcpuState& state) {
    NestedHardware* hw = hardware_of(vcpu);
    VmxVcpu& vmx = core(vcpu).vmx;
    if (!hw || !vmx.cache || !hw->running_l2() || !l1_intercepts_exception(*vmx.cache, vector, error_code))
        return not_nested();
    ExitInformation info = bare_exit(exit_reason::exception_or_nmi);
    info.interruption_info = vector | intr_info::type_hardware_exception | intr_info::valid |
                             (has_error_code ? intr_info::error_code_valid : 0);
    info.interruption_error_code = has_error_code ? error_code : 0;
    return vm_exit(vcpu, *hw, info, state, true, true);
}

// An event L1 injected that L2 has not been entered with yet goes before an interrupt or NMI of
// L1's (SDM 26.6.2), and so does one whose delivery the last exit (L0's) interrupted, which the
// next entry delivers again: the CPU recognises an interrupt only once an event's delivery is
// complete, so such an exit never has IDT-vectoring information (Linux KVM takes one that has
// for an internal error, KVM_INTERNAL_ERROR_DELIVERY_EV).
namespace {
bool event_in_flight(NestedHardware& hw) {
    return (hw.read(Level::l2, field::entry_interruption_info) & intr_info::valid) ||
           (hw.read(Level::l2, field::idt_vectoring_info) & intr_info::valid);
}
// The exit that takes L1's event comes right after that delivery, as on the CPU.
Decision after_the_event(NestedHardware& hw) {
    hw.request_immediate_exit();
    return resume();
}
}  // namespace

Decision l2_interrupt(NestedVcpu& vcpu, virt::VcpuState& state, u8 vector) {
    NestedHardware* hw = hardware_of(vcpu);
    VmxVcpu& vmx = core(vcpu).vmx;
    if (!hw || !vmx.cache || !hw->running_l2()) return not_nested();
    if (!(f(*vmx.cache, field::pin_based_controls) & pin::external_interrupt_exiting)) return not_nested();
    if (event_in_flight(*hw)) return after_the_event(*hw);
    ExitInformation info = bare_exit(exit_reason::external_interrupt);
    // "Acknowledge interrupt on exit": the exit takes the interrupt from L1's interrupt
    // controller, as the CPU's acknowledgement would, and hands L1 its vector (SDM 27.2.2).
    bool acknowledge = f(*vmx.cache, field::exit_controls) & exit_ctl::acknowledge_interrupt;
    if (acknowledge) info.interruption_info = vector | intr_info::type_external | intr_info::valid;
    Decision decision = vm_exit(vcpu, *hw, info, state, true, true);
    if (acknowledge && decision.action == Action::resume) decision.action = Action::complete;
    return decision;
}

// With NMI exiting, L1's NMI is an exit with reason 0 and the NMI in its interruption
// information (SDM 26.2, 28.2.2), which takes it: L1's NMIs are blocked until its IRET, as
// after one delivered through its IDT. Without, L2 takes it.
Decision l2_nmi(NestedVcpu& vcpu, virt::VcpuState& state) {
    NestedHardware* hw = hardware_of(vcpu);
    VmxVcpu& vmx = core(vcpu).vmx;
    if (!hw || !vmx.cache || !hw->running_l2()) return not_nested();
    if (!(f(*vmx.cache, field::pin_based_controls) & pin::nmi_exiting)) return not_nested();
    if (event_in_flight(*hw)) return after_the_event(*hw);
    ExitInformation info = bare_exit(exit_reason::exception_or_nmi);
    info.interruption_info = virt::kVectorNmi | intr_info::type_nmi | intr_info::valid;
    Decision decision = vm_exit(vcpu, *hw, info, state, true, true);
    if (decision.action != Action::resume) return decision;
    hw->write(Level::l1, field::guest_interruptibility, interruptibility::nmi);
    if (!hw->write_ok()) return stop("nested VMX: L0 could not block L1's NMIs after an NMI exit");
    return complete();
}

// INIT while L2 runs is an exit with reason 3 that changes nothing else of L2's (SDM 26.2) and
// takes the INIT. An event L1 injected that L2 has not been entered with yet goes first.
Decision l2_init(NestedVcpu& vcpu, virt::VcpuState& state) {
    NestedHardware* hw = hardware_of(vcpu);
    VmxVcpu& vmx = core(vcpu).vmx;
    if (!hw || !vmx.cache || !hw->running_l2()) return resume();
    if (event_in_flight(*hw)) return after_the_event(*hw);
    Decision decision = vm_exit(vcpu, *hw, bare_exit(exit_reason::init_signal), state, true, true);
    if (decision.action == Action::resume) decision.action = Action::complete;
    return decision;
}

void abandon_l2(NestedVcpu& vcpu) {
    NestedHardware* hw = hardware_of(vcpu);
    if (hw) hw->reset_to_l1();
    if (VmxVcpu& vmx = core(vcpu).vmx; vmx.cache) {
        if (hw) complete_vmcs12(vmx, *hw);
        l2_state(vmx).vmcs02_matches = false;  // L2's state left unsaved
    }
    vcpu.guest_exit = nullptr;
}

}  // namespace nestor::nested::vmx
