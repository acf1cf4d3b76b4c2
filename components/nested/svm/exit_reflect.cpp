// Exit routing and the #VMEXIT into L1 (see exit_reflect.hpp).
#include "exit_reflect.hpp"

#include "vmcb02.hpp"

namespace nestor::nested::svm {

using namespace arch;
namespace code = x86::svm::exit_code;
namespace intercept1 = x86::svm::intercept1;

namespace {

constexpr u64 kRflagsIf = bit(9);

bool bit_set(u32 vector, u64 n) { return n < 32 && (vector & (1u << n)) != 0; }

bool is_invalid(u64 reason) { return reason == code::invalid || reason == code::invalid32; }

// l1_intercepts, inlined into the routing of every L2 exit (a call per exit otherwise). The
// instruction intercepts (misc1, misc2), which most exits are, come first.
[[gnu::always_inline]] inline bool intercepted(const Vmcb& snapshot, u64 reason) {
    const VmcbControl& c = snapshot.control;
    if (reason >= arch::exit_code::misc1_base) {
        if (reason < arch::exit_code::misc2_base)
            return bit_set(c.intercept_misc1, reason - arch::exit_code::misc1_base);
        if (reason < arch::exit_code::misc3_base)
            return bit_set(c.intercept_misc2, reason - arch::exit_code::misc2_base);
        if (reason <= arch::exit_code::misc3_last)
            return bit_set(c.intercept_misc3, reason - arch::exit_code::misc3_base);
        if (reason == code::npf) return uses_nested_paging(snapshot);
        return false;
    }
    if (reason < arch::exit_code::dr_read_base) return bit_set(c.intercept_cr, reason);
    if (reason < arch::exit_code::exception_base)
        return bit_set(c.intercept_dr, reason - arch::exit_code::dr_read_base);
    return bit_set(c.intercept_exceptions, reason - arch::exit_code::exception_base);
}

// The IOPM has one bit per port; an access of `size` bytes is intercepted if any of its ports is.
// The two bytes holding them are read once (the third page exists for accesses crossing 0xFFFF),
// through a window (a copy through L1Memory::read cost twice the lookup for two bytes), or read
// when they straddle two pieces of L1's memory.
bool l1_iopm_intercepts(const Vmcb& snapshot, u64 info_1, L1Memory& memory) {
    u64 port = (info_1 >> x86::svm::ioio::port_shift) & 0xFFFF;
    unsigned size = (info_1 & x86::svm::ioio::size32) ? 4 : (info_1 & x86::svm::ioio::size16) ? 2 : 1;
    u64 at = snapshot.control.iopm_base_pa + port / 8;
    u8 copy[2] = {};
    const u8* bytes = memory.window(at, sizeof(copy), false);
    if (!bytes) {
        // Unreadable (L0 took the page away since VMRUN): L1 gets the exit rather than L2 a bypass.
        if (!memory.read(at, copy, sizeof(copy))) return true;
        bytes = copy;
    }
    u32 bits = bytes[0] | (u32{bytes[1]} << 8);
    u32 mask = ((1u << size) - 1) << (port % 8);
    return (bits & mask) != 0;
}

// The MSRPM: two bits per MSR (read, then write) in three ranges; any other MSR always exits.
bool l1_msrpm_intercepts(const Vmcb& snapshot, u32 msr, bool write, L1Memory& memory) {
    for (const msrpm::Range& range : msrpm::ranges) {
        if (msr < range.first_msr || msr - range.first_msr >= msrpm::msrs_per_range) continue;
        u32 offset = msr - range.first_msr;
        const u8* byte = memory.window(snapshot.control.msrpm_base_pa + range.byte_offset + offset / 4, 1, false);
        if (!byte) return true;
        return (*byte >> ((offset % 4) * 2 + (write ? 1 : 0))) & 1;
    }
    return true;
}

Route route_exception(const Vmcb& snapshot, u64 reason) {
    if (intercepted(snapshot, reason)) return Route::reflect;
    u64 vector = reason - code::exception_base;
    return bit_set(mandatory::exceptions, vector) ? Route::reinject_exception : Route::l0;
}

[[gnu::always_inline]] inline Route reflect_or(const Vmcb& snapshot, u64 reason, Route otherwise) {
    return intercepted(snapshot, reason) ? Route::reflect : otherwise;
}

// The #UD an instruction raises in L2 (VMMCALL, SKINIT without L1's intercept) is L1's when L1
// intercepts #UD, as it would be on the CPU: never delivered to L2 behind L1's back.
Route undefined_opcode(const Vmcb& snapshot) {
    return intercepted(snapshot, kExitUd) ? Route::reflect_as_ud : Route::inject_ud;
}

Route route_io(const Vmcb& snapshot, const L2Exit& exit, L1Memory& memory) {
    if (!(snapshot.control.intercept_misc1 & intercept1::ioio_prot)) return Route::l0;
    return l1_iopm_intercepts(snapshot, exit.info_1, memory) ? Route::reflect : Route::l0;
}

Route route_msr(const Vmcb& snapshot, const L2Exit& exit, L1Memory& memory) {
    if (!(snapshot.control.intercept_misc1 & intercept1::msr_prot)) return Route::l0;
    return l1_msrpm_intercepts(snapshot, exit.msr_index, exit.info_1 & 1, memory) ? Route::reflect : Route::l0;
}

}  // namespace

const char* route_name(Route route) {
    switch (route) {
    case Route::reflect: return "reflect";
    case Route::l0: return "l0";
    case Route::inject_ud: return "inject_ud";
    case Route::reflect_as_ud: return "reflect_as_ud";
    case Route::reinject_exception: return "reinject_exception";
    case Route::emulate_for_l2: return "emulate_for_l2";
    case Route::shadow_npt: return "shadow_npt";
    case Route::vmexit_invalid: return "vmexit_invalid";
    }
    return "unknown";
}

bool l1_intercepts(const Vmcb& snapshot, u64 code) { return intercepted(snapshot, code); }

Route route_l2_exit(const Vmcb& snapshot, const L2Exit& exit, L1Memory& memory) {
    u64 c = exit.code;
    if (is_invalid(c)) return Route::vmexit_invalid;
    if (c >= code::exception_base && c <= code::exception_last) return route_exception(snapshot, c);
    switch (c) {
    // Physical events are L0's even when L1 intercepts their kind: L1's own interrupts reach
    // it through route_l1_interrupt, never as the host's.
    case code::intr:
    case code::nmi:
    case code::smi:
    case code::init: return Route::l0;
    case code::ioio: return route_io(snapshot, exit, memory);
    case code::msr: return route_msr(snapshot, exit, memory);
    case code::npf: return uses_nested_paging(snapshot) ? Route::shadow_npt : Route::l0;
    case code::vmmcall:
    case code::skinit: return reflect_or(snapshot, c, undefined_opcode(snapshot));
    case code::vmload:
    case code::vmsave:
    case code::stgi:
    case code::clgi:
    case code::invlpga: return reflect_or(snapshot, c, Route::emulate_for_l2);
    default: return reflect_or(snapshot, c, Route::l0);
    }
}

u64 reflected_instructions(const Vmcb& snapshot) {
    constexpr u64 kJudgedOtherwise =
        (u64{1} << (code::intr - arch::exit_code::misc1_base)) | (u64{1} << (code::nmi - arch::exit_code::misc1_base)) |
        (u64{1} << (code::smi - arch::exit_code::misc1_base)) | (u64{1} << (code::init - arch::exit_code::misc1_base)) |
        (u64{1} << (code::ioio - arch::exit_code::misc1_base)) | (u64{1} << (code::msr - arch::exit_code::misc1_base));
    static_assert(arch::exit_code::misc2_base - arch::exit_code::misc1_base == 32);
    const VmcbControl& c = snapshot.control;
    u64 intercepts = u64{c.intercept_misc1} | (u64{c.intercept_misc2} << 32);
    return intercepts & ~kJudgedOtherwise;
}

void copy_vmload_state(const VmcbSave& from, VmcbSave& to) {
    to.fs = from.fs;
    to.gs = from.gs;
    to.tr = from.tr;
    to.ldtr = from.ldtr;
    to.kernel_gs_base = from.kernel_gs_base;
    to.star = from.star;
    to.lstar = from.lstar;
    to.cstar = from.cstar;
    to.sfmask = from.sfmask;
    to.sysenter_cs = from.sysenter_cs;
    to.sysenter_esp = from.sysenter_esp;
    to.sysenter_eip = from.sysenter_eip;
}

L1Interrupt route_l1_interrupt(bool gif, const Vmcb& snapshot, u64 l1_rflags, u64 l2_rflags) {
    if (!gif) return L1Interrupt::blocked;
    bool masking = snapshot.control.int_ctl & int_ctl::v_intr_masking;
    // With V_INTR_MASKING, L1's interrupts are gated by L1's own IF (saved at VMRUN); without,
    // by L2's, as on the CPU.
    bool enabled = masking ? (l1_rflags & kRflagsIf) : (l2_rflags & kRflagsIf);
    if (!enabled) return masking ? L1Interrupt::blocked : L1Interrupt::l2_interrupts_off;
    if (snapshot.control.intercept_misc1 & intercept1::intr) return L1Interrupt::vmexit_intr;
    return L1Interrupt::deliver_to_l2;
}

}  // namespace nestor::nested::svm
