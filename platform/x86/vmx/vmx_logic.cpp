#include "nestor/x86/vmx/vmx_logic.hpp"

namespace nestor::x86::vmx {

using virt::CpuMode;
using virt::ExitKind;
using virt::VmExit;

Result<u32, ControlError> adjust_controls(u32 wanted, u64 msr_value) {
    u32 allowed0 = static_cast<u32>(msr_value);        // 1: must be 1
    u32 allowed1 = static_cast<u32>(msr_value >> 32);  // 0: must be 0
    if (allowed0 & ~allowed1) return fail(ControlError::inconsistent_msr);
    if (wanted & ~allowed1) return fail(ControlError::not_allowed);
    return wanted | allowed0;
}

bool guest_control_register(u64 guest_view, CrFixed fixed, u64 exempt, GuestCr& out) {
    if (guest_view & ~fixed.fixed1 & ~exempt) return false;
    u64 forced = fixed.fixed0 & ~exempt;
    if (forced & ~fixed.fixed1) return false;
    out.value = guest_view | forced;
    out.mask = forced;  // the host owns the forced bits; the guest reads its own view of them
    out.shadow = guest_view;
    return true;
}

bool host_control_register(u64 value, CrFixed fixed, u64& out) {
    out = value | fixed.fixed0;
    return (out & ~fixed.fixed1) == 0;
}

namespace {

namespace ar = access_rights;

constexpr u32 kRealCode = ar::present | ar::code_or_data | ar::type_code_rx;  // 0x9B
constexpr u32 kRealData = ar::present | ar::code_or_data | ar::type_data_rw;  // 0x93
constexpr u32 kCode32 = kRealCode | ar::default32 | ar::granularity;          // 0xC09B
constexpr u32 kCode64 = kRealCode | ar::long_mode | ar::granularity;          // 0xA09B
constexpr u32 kData32 = kRealData | ar::default32 | ar::granularity;          // 0xC093
constexpr u32 kBusyTss = ar::present | ar::type_tss_busy;                     // 0x8B
constexpr u16 kFlatCodeSelector = 0x08;
constexpr u16 kFlatDataSelector = 0x10;
constexpr u32 kTssLimit = 0x67;

constexpr SegmentState segment(u16 selector, u32 limit, u32 access) { return SegmentState{selector, 0, limit, access}; }

}  // namespace

bool initial_guest_state(CpuMode mode, u64 cr3, InitialGuestState& out) {
    out = InitialGuestState{};
    out.ldtr = segment(0, 0, ar::unusable);
    out.rflags = virt::kRflagsFixed1;
    switch (mode) {
    case CpuMode::real16:
        // As after a reset, with CS base 0: flat 64 KiB segments, the IVT at 0.
        out.cs = segment(0, 0xFFFF, kRealCode);
        out.ds = out.es = out.ss = out.fs = out.gs = segment(0, 0xFFFF, kRealData);
        out.tr = segment(0, 0xFFFF, kBusyTss);
        out.gdtr_limit = 0xFFFF;
        out.idtr_limit = 0xFFFF;
        out.cr0 = kCr0Et;
        return true;
    case CpuMode::protected32:
        // The multiboot machine state: flat 4 GiB segments, paging off, no descriptor tables.
        out.cs = segment(kFlatCodeSelector, 0xFFFFFFFF, kCode32);
        out.ds = out.es = out.ss = out.fs = out.gs = segment(kFlatDataSelector, 0xFFFFFFFF, kData32);
        out.tr = segment(0, kTssLimit, kBusyTss);
        out.cr0 = kCr0Pe | kCr0Et;
        return true;
    case CpuMode::long64:
        out.cs = segment(kFlatCodeSelector, 0xFFFFFFFF, kCode64);
        out.ds = out.es = out.ss = out.fs = out.gs = segment(kFlatDataSelector, 0xFFFFFFFF, kData32);
        out.tr = segment(0, kTssLimit, kBusyTss);
        out.cr0 = kCr0Pe | kCr0Et | kCr0Pg;
        out.cr3 = cr3;
        out.cr4 = kCr4Pae;
        out.efer = kEferLme | kEferLma | kEferNxe;
        out.ia32e_mode = true;
        return true;
    case CpuMode::protected16: break;
    }
    return false;
}

CpuMode guest_mode(u64 cr0, u64 efer, u64 rflags, u32 cs_access_rights) {
    if (!(cr0 & kCr0Pe) || (rflags & kRflagsVm)) return CpuMode::real16;
    if ((efer & kEferLma) && (cs_access_rights & ar::long_mode)) return CpuMode::long64;
    return (cs_access_rights & ar::default32) ? CpuMode::protected32 : CpuMode::protected16;
}

u32 exception_injection(u8 vector, bool protected_mode) {
    u32 info = vector | intr_info::type_hardware_exception | intr_info::valid;
    // VM entry checks: an error code is delivered if and only if the guest is in protected mode
    // and the vector is #DF, #TS, #NP, #SS, #GP, #PF or #AC.
    if (protected_mode && (vector == 8 || (vector >= 10 && vector <= 14) || vector == 17))
        info |= intr_info::error_code_valid;
    return info;
}

u64 dr6_after_debug_exit(u64 dr6, u64 qualification) {
    constexpr u64 kReadsAsOne = 0xFFFF0FF0;  // bits 4-11 and 16-31 (RTM, active low, among them)
    constexpr u64 kPayload = debug_qual::breakpoints | debug_qual::bd | debug_qual::bs | debug_qual::rtm;
    u64 payload = qualification & kPayload;
    u64 out = (dr6 & ~debug_qual::breakpoints) | kReadsAsOne | payload;
    out ^= payload & kReadsAsOne;  // RTM: set in the qualification, clear in DR6
    return out & ~debug_qual::enabled_breakpoint & 0xFFFFFFFF;
}

bool is_machine_check(u32 reason, u32 interruption_info) {
    u32 basic = reason & exit_reason::basic_mask;
    if (basic == exit_reason::machine_check) return true;
    return basic == exit_reason::exception_or_nmi &&
           (interruption_info & intr_info::type_mask) == intr_info::type_hardware_exception &&
           (interruption_info & intr_info::vector_mask) == virt::kVectorMc;
}

virt::IoExit decode_io(u64 qualification, u64 rax) {
    virt::IoExit io{};
    u64 size_code = qualification & io_qual::size_mask;
    io.size = size_code == 0 ? 1 : size_code == 1 ? 2 : 4;
    io.direction = (qualification & io_qual::direction_in) ? virt::IoDirection::in : virt::IoDirection::out;
    io.string = qualification & io_qual::string;
    io.rep = qualification & io_qual::rep;
    io.port = static_cast<u16>(qualification >> io_qual::port_shift);
    u64 mask = io.size == 4 ? 0xFFFFFFFF : io.size == 2 ? 0xFFFF : 0xFF;
    io.value = static_cast<u32>(rax & mask);
    return io;
}

VmExit decode_exit(const RawExit& raw, const virt::VcpuState& state) {
    VmExit exit{};
    exit.vendor_code = raw.reason;
    exit.kind = ExitKind::unknown;
    if (is_machine_check(raw.reason, raw.interruption_info)) {
        // The backend ran the host's #MC handler: to the kernel the host had the CPU for a moment
        // (after a machine check during VM entry the entry is tried again).
        exit.kind = ExitKind::external_interrupt;
        return exit;
    }
    if (raw.reason & exit_reason::entry_failure) {
        exit.kind = ExitKind::invalid_state;
        return exit;
    }
    // The VM-exit instruction-length field is valid for every instruction exit decoded here.
    u8 length =
        (raw.instruction_length >= 1 && raw.instruction_length <= 15) ? static_cast<u8>(raw.instruction_length) : 0;
    auto instruction = [&](ExitKind kind) {
        exit.kind = kind;
        exit.instruction_length = length;
    };
    switch (raw.reason & exit_reason::basic_mask) {
    case exit_reason::cpuid: instruction(ExitKind::cpuid); break;
    case exit_reason::vmcall: instruction(ExitKind::hypercall); break;
    case exit_reason::hlt: instruction(ExitKind::hlt); break;
    case exit_reason::xsetbv:
        instruction(ExitKind::xsetbv);
        exit.xsetbv.index = static_cast<u32>(state.reg(virt::Gpr::rcx));
        exit.xsetbv.value = (state.reg(virt::Gpr::rdx) << 32) | static_cast<u32>(state.reg(virt::Gpr::rax));
        break;
    case exit_reason::invd:
    case exit_reason::wbinvd: instruction(ExitKind::cache_invalidate); break;
    case exit_reason::rdpmc: instruction(ExitKind::performance_counter); break;
    case exit_reason::monitor:
    case exit_reason::mwait: instruction(ExitKind::monitor_wait); break;
    case exit_reason::rdmsr:
        instruction(ExitKind::msr_read);
        exit.msr.index = static_cast<u32>(state.reg(virt::Gpr::rcx));
        break;
    case exit_reason::wrmsr:
        instruction(ExitKind::msr_write);
        exit.msr.index = static_cast<u32>(state.reg(virt::Gpr::rcx));
        exit.msr.value = (state.reg(virt::Gpr::rdx) << 32) | static_cast<u32>(state.reg(virt::Gpr::rax));
        break;
    case exit_reason::io_instruction:
        instruction(ExitKind::io);
        exit.io = decode_io(raw.qualification, state.reg(virt::Gpr::rax));
        break;
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
    case exit_reason::vmfunc:
        // They exit unconditionally in VMX non-root operation: the kernel must answer (#UD).
        instruction(ExitKind::virtualization_instruction);
        break;
    case exit_reason::triple_fault: exit.kind = ExitKind::triple_fault; break;
    case exit_reason::external_interrupt:
    case exit_reason::init_signal:
    case exit_reason::sipi:
    case exit_reason::io_smi:
    case exit_reason::other_smi: exit.kind = ExitKind::external_interrupt; break;
    case exit_reason::preemption_timer: exit.kind = ExitKind::preemption; break;
    // Interrupt-window and NMI-window exiting, set only while the kernel asks for a window.
    case exit_reason::interrupt_window: exit.kind = ExitKind::interrupt_window; break;
    case exit_reason::nmi_window: exit.kind = ExitKind::nmi_window; break;
    // A MOV to CR8 (VTPR, with the TPR shadow) below the TPR threshold: a trap, after the MOV.
    case exit_reason::tpr_below_threshold: exit.kind = ExitKind::task_priority; break;
    case exit_reason::ept_violation: {
        const u64 q = raw.qualification;
        exit.kind = ExitKind::nested_page_fault;
        exit.npf.guest_physical = raw.guest_physical;
        exit.npf.access = (q & ept_qual::fetch)   ? virt::MemoryAccess::execute
                          : (q & ept_qual::write) ? virt::MemoryAccess::write
                                                  : virt::MemoryAccess::read;
        exit.npf.present = q & (ept_qual::readable | ept_qual::writable | ept_qual::executable);
        break;
    }
    case exit_reason::ept_misconfiguration:
        // A malformed EPT entry (the backend's fault, not the guest's): stop the guest with the
        // address that hit it.
        exit.kind = ExitKind::nested_page_fault;
        exit.npf.guest_physical = raw.guest_physical;
        exit.npf.access = virt::MemoryAccess::read;
        exit.npf.present = true;
        break;
    case exit_reason::exception_or_nmi: {
        const u32 info = raw.interruption_info;
        if ((info & intr_info::type_mask) == intr_info::type_nmi) {
            exit.kind = ExitKind::external_interrupt;  // a host NMI
            break;
        }
        exit.kind = ExitKind::exception;
        exit.exception.vector = static_cast<u8>(info & intr_info::vector_mask);
        exit.exception.has_error_code = info & intr_info::error_code_valid;
        exit.exception.error_code = exit.exception.has_error_code ? raw.interruption_error_code : 0;
        break;
    }
    case exit_reason::invalid_guest_state:
    case exit_reason::msr_loading: exit.kind = ExitKind::invalid_state; break;
    default: break;
    }
    return exit;
}

VmExit entry_instruction_failure(u32 instruction_error) {
    VmExit exit{};
    exit.kind = ExitKind::invalid_state;
    exit.vendor_code = instruction_error;
    return exit;
}

const char* instruction_error_name(u32 error) {
    switch (error) {
    case 0: return "VMfailInvalid (no current VMCS)";
    case 2: return "VMCLEAR with invalid physical address";
    case 3: return "VMCLEAR with VMXON pointer";
    case instruction_error::vmlaunch_nonclear: return "VMLAUNCH with non-clear VMCS";
    case instruction_error::vmresume_nonlaunched: return "VMRESUME with non-launched VMCS";
    case 6: return "VMRESUME after VMXOFF";
    case instruction_error::entry_invalid_control: return "VM entry with invalid control field(s)";
    case instruction_error::entry_invalid_host_state: return "VM entry with invalid host-state field(s)";
    case instruction_error::vmptrld_invalid: return "VMPTRLD with invalid physical address";
    case 10: return "VMPTRLD with VMXON pointer";
    case instruction_error::vmptrld_wrong_revision: return "VMPTRLD with incorrect VMCS revision identifier";
    case instruction_error::unsupported_field: return "VMREAD/VMWRITE of unsupported VMCS component";
    case 13: return "VMWRITE to read-only VMCS component";
    case 15: return "VMXON executed in VMX root operation";
    case instruction_error::entry_events_blocked_by_mov_ss: return "VM entry with events blocked by MOV SS";
    case instruction_error::invalid_invept_invvpid: return "invalid operand to INVEPT/INVVPID";
    default: return "VM-instruction error";  // a number this list does not name
    }
}

}  // namespace nestor::x86::vmx
