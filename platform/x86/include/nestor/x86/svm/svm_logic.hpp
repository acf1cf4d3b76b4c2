// The SVM backend's pure logic, with no hardware or memory access, built into the kernel and
// unchanged into the host unit tests: the mapping of a VMCB's EXITCODE / EXITINFO to the
// vendor-neutral VmExit, the IOIO and nested-page-fault EXITINFO layouts, the plain encodings of
// the intercepted instructions, the MOVs to CR4 and CR8 the backend emulates, the CPU mode of a guest
// state and the EVENTINJ values of injected events. Everything here is on the exit path, so it is
// inline: svm.cpp compiles it into its run loop as if it were written there.
#pragma once

#include "nestor/arch/x86_regs.hpp"
#include "nestor/virt/exit.hpp"
#include "nestor/virt/vcpu_state.hpp"
#include "nestor/x86/insn_decode.hpp"
#include "nestor/x86/svm/vmcb.hpp"

namespace nestor::x86::svm {

// The mode the guest's code runs in. Long mode first, the common case: EFER.LMA implies CR0.PE
// and PG, and long mode has no virtual-8086 mode.
inline virt::CpuMode mode_of(const VmcbSave& s) {
    if ((s.efer & x86_regs::kEferLma) && (s.cs.attrib & attrib::long_mode)) return virt::CpuMode::long64;
    if (!(s.cr0 & x86_regs::kCr0Pe) || (s.rflags & x86_regs::kRflagsVm)) return virt::CpuMode::real16;
    return (s.cs.attrib & attrib::default32) ? virt::CpuMode::protected32 : virt::CpuMode::protected16;
}

// The SVM instructions are 0F 01 with a ModRM byte of their own (D8 VMRUN ... DF INVLPGA).
inline u8 svm_group_length(const u8* code, u8 modrm) {
    return code[0] == 0x0F && code[1] == 0x01 && code[2] == modrm ? 3 : 0;
}

// The common case, an intercepted instruction without prefixes: its length if `code` (at least
// three readable bytes) is the plain encoding of `expected`, else 0 (the full decoder's turn).
inline u8 plain_length(const u8* code, InsnOp expected) {
    switch (expected) {
    case InsnOp::cpuid: return code[0] == 0x0F && code[1] == 0xA2 ? 2 : 0;
    case InsnOp::vmmcall: return svm_group_length(code, 0xD9);
    case InsnOp::vmrun: return svm_group_length(code, 0xD8);
    case InsnOp::vmload: return svm_group_length(code, 0xDA);
    case InsnOp::vmsave: return svm_group_length(code, 0xDB);
    case InsnOp::stgi: return svm_group_length(code, 0xDC);
    case InsnOp::clgi: return svm_group_length(code, 0xDD);
    case InsnOp::invlpga: return svm_group_length(code, 0xDF);
    case InsnOp::hlt: return code[0] == 0xF4 ? 1 : 0;
    case InsnOp::rdmsr: return code[0] == 0x0F && code[1] == 0x32 ? 2 : 0;
    case InsnOp::wrmsr: return code[0] == 0x0F && code[1] == 0x30 ? 2 : 0;
    case InsnOp::xsetbv: return code[0] == 0x0F && code[1] == 0x01 && code[2] == 0xD1 ? 3 : 0;
    default: return 0;
    }
}

// An IOIO exit: EXITINFO1 says port, size and direction; EXITINFO2 holds the next RIP even
// without NRIP save, from which the length follows (RIP wraps at the code size).
inline void decode_ioio(u64 info1, u64 info2, const virt::VcpuState& state, virt::VmExit& exit) {
    exit.kind = virt::ExitKind::io;
    exit.io.port = ioio::port(info1);
    exit.io.size = (info1 & ioio::size32) ? 4 : (info1 & ioio::size16) ? 2 : 1;
    exit.io.direction = (info1 & ioio::type_in) ? virt::IoDirection::in : virt::IoDirection::out;
    exit.io.string = info1 & ioio::string;
    exit.io.rep = info1 & ioio::rep;
    u64 mask = exit.io.size == 4 ? 0xFFFFFFFF : exit.io.size == 2 ? 0xFFFF : 0xFF;
    exit.io.value = static_cast<u32>(state.reg(virt::Gpr::rax) & mask);
    u64 length = info2 - state.rip;
    if (state.mode == virt::CpuMode::real16 || state.mode == virt::CpuMode::protected16)
        length &= 0xFFFF;
    else if (state.mode == virt::CpuMode::protected32)
        length &= 0xFFFFFFFF;
    exit.instruction_length = (length >= 1 && length <= kMaxInstructionLength) ? static_cast<u8>(length) : 0;
}

// A nested page fault: EXITINFO1 a #PF error code, EXITINFO2 the guest-physical address.
inline void decode_npf(u64 info1, u64 info2, virt::VmExit& exit) {
    exit.kind = virt::ExitKind::nested_page_fault;
    exit.npf.guest_physical = info2;
    exit.npf.access = (info1 & npf_info::fetch)   ? virt::MemoryAccess::execute
                      : (info1 & npf_info::write) ? virt::MemoryAccess::write
                                                  : virt::MemoryAccess::read;
    exit.npf.present = info1 & npf_info::present;
}

// The exceptions that push an error code: #DF, #TS, #NP, #SS, #GP, #PF, #AC, #CP, #VC, #SX.
inline bool exception_has_error_code(u8 v) {
    return v == 8 || (v >= 10 && v <= 14) || v == 17 || v == 21 || v == 29 || v == 30;
}

// The neutral VmExit of the VMCB's exit. `hw` provides what needs the guest's memory or the
// CPU: `u8 instruction_length(InsnOp expected)`, the length of the instruction at CS:RIP if it is
// `expected` (0 if not), `void machine_check()`, the host's #MC handler, and `void
// msr_decoded(virt::VmExit&)`, which sees every decoded MSR exit (the backend's own MSRs are
// told apart there, in the MSR case, not by a test on every exit). Every case sets the kind and
// the union member it uses in full, so nothing is zeroed first.
template <typename Hardware> [[gnu::always_inline]] inline virt::VmExit decode_exit(const VmcbControl& c,
                                                                                    const virt::VcpuState& state,
                                                                                    Hardware& hw) {
    using virt::ExitKind;
    using virt::Gpr;
    virt::VmExit exit;
    exit.instruction_length = 0;
    exit.vendor_code = c.exit_code;
    auto with_length = [&](ExitKind kind, InsnOp op) __attribute__((always_inline)) {
        exit.kind = kind;
        exit.instruction_length = hw.instruction_length(op);
    };
    const u64 code = c.exit_code;
    switch (code) {
    case exit_code::cpuid: with_length(ExitKind::cpuid, InsnOp::cpuid); break;
    case exit_code::vmmcall: with_length(ExitKind::hypercall, InsnOp::vmmcall); break;
    case exit_code::hlt: with_length(ExitKind::hlt, InsnOp::hlt); break;
    case exit_code::msr:
        if (c.exit_info_1 == 0) {
            with_length(ExitKind::msr_read, InsnOp::rdmsr);
            exit.msr.value = 0;
        } else {
            with_length(ExitKind::msr_write, InsnOp::wrmsr);
            exit.msr.value = (state.reg(Gpr::rdx) << 32) | static_cast<u32>(state.reg(Gpr::rax));
        }
        exit.msr.index = static_cast<u32>(state.reg(Gpr::rcx));
        hw.msr_decoded(exit);
        break;
    case exit_code::ioio: decode_ioio(c.exit_info_1, c.exit_info_2, state, exit); break;
    case exit_code::xsetbv:
        with_length(ExitKind::xsetbv, InsnOp::xsetbv);
        exit.xsetbv.index = static_cast<u32>(state.reg(Gpr::rcx));
        exit.xsetbv.value = (state.reg(Gpr::rdx) << 32) | static_cast<u32>(state.reg(Gpr::rax));
        break;
    case exit_code::vmrun: with_length(ExitKind::virtualization_instruction, InsnOp::vmrun); break;
    case exit_code::vmload: with_length(ExitKind::virtualization_instruction, InsnOp::vmload); break;
    case exit_code::vmsave: with_length(ExitKind::virtualization_instruction, InsnOp::vmsave); break;
    case exit_code::stgi: with_length(ExitKind::virtualization_instruction, InsnOp::stgi); break;
    case exit_code::clgi: with_length(ExitKind::virtualization_instruction, InsnOp::clgi); break;
    case exit_code::skinit: with_length(ExitKind::virtualization_instruction, InsnOp::skinit); break;
    case exit_code::invlpga: with_length(ExitKind::virtualization_instruction, InsnOp::invlpga); break;
    case exit_code::shutdown: exit.kind = ExitKind::triple_fault; break;
    case exit_code::intr:
    case exit_code::nmi:
    case exit_code::smi:
    case exit_code::init: exit.kind = ExitKind::external_interrupt; break;
    // V_IRQ, set only to ask for an interrupt window, would be taken: the window is open.
    case exit_code::vintr: exit.kind = ExitKind::interrupt_window; break;
    case exit_code::npf: decode_npf(c.exit_info_1, c.exit_info_2, exit); break;
    case exit_code::invalid:
    case exit_code::invalid32: exit.kind = ExitKind::invalid_state; break;
    case exit_code::invd:
    case exit_code::wbinvd:
        // Either instruction for either exit: QEMU reports INVD as a WBINVD exit (it checks the
        // WBINVD intercept for both). The kernel completes both alike.
        with_length(ExitKind::cache_invalidate, code == exit_code::invd ? InsnOp::invd : InsnOp::wbinvd);
        if (!exit.instruction_length)
            exit.instruction_length = hw.instruction_length(code == exit_code::invd ? InsnOp::wbinvd : InsnOp::invd);
        break;
    // Both fault without completing: no length needed.
    case exit_code::rdpmc: exit.kind = ExitKind::performance_counter; break;
    case exit_code::monitor:
    case exit_code::mwait: exit.kind = ExitKind::monitor_wait; break;
    default:
        if (code >= exit_code::exception_base && code <= exit_code::exception_last) {
            u8 v = static_cast<u8>(code - exit_code::exception_base);
            if (v == virt::kVectorMc) {
                hw.machine_check();
                exit.kind = ExitKind::external_interrupt;  // the host had the CPU; the guest goes on
                break;
            }
            exit.kind = ExitKind::exception;
            exit.exception.vector = v;
            exit.exception.has_error_code = exception_has_error_code(v);
            exit.exception.error_code = static_cast<u32>(c.exit_info_1);
        } else {
            exit.kind = ExitKind::unknown;
        }
        break;
    }
    return exit;
}

// A MOV to a control register at `code` (at least five readable bytes): [REX] 0F 22 /r with the
// CR number in ModRM.reg (REX.R adds 8: CR8) and the source GPR in ModRM.rm, or AMD's LOCK 0F 22
// /r, which names CR8 by CR0 (CR8 outside 64-bit mode). False if the bytes are something else.
struct MovToCr {
    u64 value;  // truncated to 32 bits outside long mode
    u8 cr;
    u8 length;
};
inline bool decode_mov_to_cr(const u8* code, virt::CpuMode mode, const u64* gprs, MovToCr& out) {
    const u8 lock = code[0] == 0xF0 ? 1 : 0;
    const u8* at = code + lock;
    u8 rex = (mode == virt::CpuMode::long64 && (at[0] & 0xF0) == 0x40) ? at[0] : 0;
    const u8* op = at + (rex ? 1 : 0);
    if (op[0] != 0x0F || op[1] != 0x22) return false;
    out.cr = static_cast<u8>((((op[2] >> 3) & 7) | ((rex & 4) << 1)) + (lock ? 8 : 0));
    out.value = gprs[(op[2] & 7) | ((rex & 1) << 3)];
    if (mode != virt::CpuMode::long64) out.value &= 0xFFFFFFFF;
    out.length = static_cast<u8>(op + 3 - code);
    return true;
}

// EVENTINJ for an exception; real mode pushes no error codes (VMRUN would refuse the injection).
inline u64 exception_event(u8 vector, bool has_error_code, u32 error_code, bool protected_mode) {
    u64 e = event::make(vector, event::type_exception);
    return has_error_code && protected_mode ? event::with_error_code(e, error_code) : e;
}

// EVENTINJ for external interrupt `vector`.
inline u64 interrupt_event(u8 vector) { return event::make(vector, event::type_intr); }

// EVENTINJ for an NMI: the CPU ignores the vector field for one, 2 says which it is.
inline u64 nmi_event() { return event::make(2, event::type_nmi); }

}  // namespace nestor::x86::svm
