#include <catch2/catch.hpp>

#include "nestor/x86/vmx/vmx_logic.hpp"

using namespace nestor;
using namespace nestor::x86::vmx;
using nestor::virt::CpuMode;
using nestor::virt::ExitKind;
using nestor::virt::Gpr;
using nestor::virt::IoDirection;
using nestor::virt::MemoryAccess;
using nestor::virt::VcpuState;

namespace {

RawExit raw(u32 reason, u64 qualification = 0, u32 length = 0) {
    RawExit r{};
    r.reason = reason;
    r.qualification = qualification;
    r.instruction_length = length;
    return r;
}

}  // namespace

TEST_CASE("vmx_exit.io_qualification_out_dx_byte") {
    // OUT DX, AL to 0x3F8: size 0 (1 byte), direction 0 (out), DX operand.
    auto io = decode_io(u64{0x3F8} << 16, 0x12345678);
    CHECK(io.port == 0x3F8);
    CHECK(io.size == 1);
    CHECK(io.direction == IoDirection::out);
    CHECK_FALSE(io.string);
    CHECK_FALSE(io.rep);
    CHECK(io.value == 0x78);
}

TEST_CASE("vmx_exit.io_qualification_sizes_and_flags") {
    auto word_in = decode_io((u64{0x1F0} << 16) | 1 | io_qual::direction_in, 0xFFFF'FFFF);
    CHECK(word_in.size == 2);
    CHECK(word_in.direction == IoDirection::in);
    CHECK(word_in.port == 0x1F0);
    auto dword_out = decode_io((u64{0xCFC} << 16) | 3, 0xAABBCCDD'11223344);
    CHECK(dword_out.size == 4);
    CHECK(dword_out.value == 0x11223344);
    auto rep_outs = decode_io((u64{0xF4} << 16) | io_qual::string | io_qual::rep | io_qual::immediate, 0);
    CHECK(rep_outs.string);
    CHECK(rep_outs.rep);
    CHECK(rep_outs.port == 0xF4);
    auto high_port = decode_io(u64{0xFFFF} << 16 | io_qual::direction_in, 0);
    CHECK(high_port.port == 0xFFFF);
}

TEST_CASE("vmx_exit.io_exit_uses_instruction_length_field") {
    VcpuState s{};
    s.reg(Gpr::rax) = 0x41;
    auto e = decode_exit(raw(exit_reason::io_instruction, (u64{0xF4} << 16) | io_qual::immediate, 2), s);
    CHECK(e.kind == ExitKind::io);
    CHECK(e.instruction_length == 2);
    CHECK(e.io.port == 0xF4);
    CHECK(e.io.value == 0x41);
    CHECK(e.vendor_code == exit_reason::io_instruction);
}

TEST_CASE("vmx_exit.instruction_exits") {
    VcpuState s{};
    s.reg(Gpr::rcx) = 0xC0010114;
    s.reg(Gpr::rdx) = 0x1;
    s.reg(Gpr::rax) = 0x2;
    CHECK(decode_exit(raw(exit_reason::cpuid, 0, 2), s).kind == ExitKind::cpuid);
    CHECK(decode_exit(raw(exit_reason::cpuid, 0, 2), s).instruction_length == 2);
    auto vmcall = decode_exit(raw(exit_reason::vmcall, 0, 3), s);
    CHECK(vmcall.kind == ExitKind::hypercall);
    CHECK(vmcall.instruction_length == 3);
    CHECK(decode_exit(raw(exit_reason::hlt, 0, 1), s).kind == ExitKind::hlt);
    auto rd = decode_exit(raw(exit_reason::rdmsr, 0, 2), s);
    CHECK(rd.kind == ExitKind::msr_read);
    CHECK(rd.msr.index == 0xC0010114);
    auto wr = decode_exit(raw(exit_reason::wrmsr, 0, 2), s);
    CHECK(wr.kind == ExitKind::msr_write);
    CHECK(wr.msr.value == 0x100000002);
    // A nonsense length is reported as unknown (0), never passed on.
    CHECK(decode_exit(raw(exit_reason::cpuid, 0, 16), s).instruction_length == 0);
}

TEST_CASE("vmx_exit.every_vmx_instruction_is_a_virtualization_instruction") {
    VcpuState s{};
    const u32 reasons[] = {exit_reason::vmclear, exit_reason::vmlaunch, exit_reason::vmptrld, exit_reason::vmptrst,
                           exit_reason::vmread,  exit_reason::vmresume, exit_reason::vmwrite, exit_reason::vmxoff,
                           exit_reason::vmxon,   exit_reason::invept,   exit_reason::invvpid, exit_reason::vmfunc};
    for (u32 reason : reasons) {
        auto e = decode_exit(raw(reason, 0, 4), s);
        INFO("exit reason " << reason);
        CHECK(e.kind == ExitKind::virtualization_instruction);
        CHECK(e.instruction_length == 4);
    }
}

TEST_CASE("vmx_exit.ept_violation") {
    VcpuState s{};
    RawExit r = raw(exit_reason::ept_violation, ept_qual::read);
    r.guest_physical = 0x20000;
    auto e = decode_exit(r, s);
    CHECK(e.kind == ExitKind::nested_page_fault);
    CHECK(e.npf.guest_physical == 0x20000);
    CHECK(e.npf.access == MemoryAccess::read);
    CHECK_FALSE(e.npf.present);
    r.qualification = ept_qual::write | ept_qual::readable | ept_qual::executable;
    e = decode_exit(r, s);
    CHECK(e.npf.access == MemoryAccess::write);
    CHECK(e.npf.present);
    r.qualification = ept_qual::fetch | ept_qual::read | ept_qual::readable;
    CHECK(decode_exit(r, s).npf.access == MemoryAccess::execute);
    r.reason = exit_reason::ept_misconfiguration;
    e = decode_exit(r, s);
    CHECK(e.kind == ExitKind::nested_page_fault);
    CHECK(e.npf.present);
}

TEST_CASE("vmx_exit.events_and_failures") {
    VcpuState s{};
    CHECK(decode_exit(raw(exit_reason::triple_fault), s).kind == ExitKind::triple_fault);
    CHECK(decode_exit(raw(exit_reason::external_interrupt), s).kind == ExitKind::external_interrupt);
    CHECK(decode_exit(raw(exit_reason::preemption_timer), s).kind == ExitKind::preemption);
    auto entry = decode_exit(raw(exit_reason::entry_failure | exit_reason::invalid_guest_state), s);
    CHECK(entry.kind == ExitKind::invalid_state);
    CHECK(entry.vendor_code == (0x80000000u | 33));
    CHECK(decode_exit(raw(exit_reason::cr_access), s).kind == ExitKind::unknown);

    RawExit gp = raw(exit_reason::exception_or_nmi);
    gp.interruption_info = 13 | intr_info::type_hardware_exception | intr_info::error_code_valid | intr_info::valid;
    gp.interruption_error_code = 0x18;
    auto e = decode_exit(gp, s);
    CHECK(e.kind == ExitKind::exception);
    CHECK(e.exception.vector == 13);
    CHECK(e.exception.has_error_code);
    CHECK(e.exception.error_code == 0x18);
    RawExit nmi = raw(exit_reason::exception_or_nmi);
    nmi.interruption_info = 2 | intr_info::type_nmi | intr_info::valid;
    CHECK(decode_exit(nmi, s).kind == ExitKind::external_interrupt);

    auto failed = entry_instruction_failure(7);
    CHECK(failed.kind == ExitKind::invalid_state);
    CHECK(failed.vendor_code == 7);
}

TEST_CASE("vmx_exit.interrupt_and_nmi_windows_run_no_instruction") {
    VcpuState s{};
    // The instruction-length field is undefined for these exits: whatever it holds is not used.
    auto interrupt = decode_exit(raw(exit_reason::interrupt_window, 0, 3), s);
    CHECK(interrupt.kind == ExitKind::interrupt_window);
    CHECK(interrupt.vendor_code == 7);
    CHECK(interrupt.instruction_length == 0);
    auto nmi = decode_exit(raw(exit_reason::nmi_window, 0, 3), s);
    CHECK(nmi.kind == ExitKind::nmi_window);
    CHECK(nmi.vendor_code == 8);
    CHECK(nmi.instruction_length == 0);
    // A MOV to CR8 below the TPR threshold is a trap: the MOV is done, nothing is left to step over.
    auto tpr = decode_exit(raw(exit_reason::tpr_below_threshold, 0, 4), s);
    CHECK(tpr.kind == ExitKind::task_priority);
    CHECK(tpr.vendor_code == 43);
    CHECK(tpr.instruction_length == 0);
}

TEST_CASE("vmx_exit.msr_bitmap_passes_through_reads_and_writes_of_its_msr") {
    struct Case {
        u32 msr;
        u32 read_byte;
    };
    const Case cases[] = {
        {0x176, 0x176 / 8}, {0x277, 0x277 / 8}, {0xC0000081, 1024 + 0x81 / 8}, {0xC0000103, 1024 + 0x103 / 8}};
    for (const Case& c : cases) {
        u8 bitmap[msr_bitmap::bytes];
        for (u8& b : bitmap) b = 0xFF;
        REQUIRE(msr_bitmap::pass_through(bitmap, c.msr));
        u8 cleared = static_cast<u8>(~(1u << (c.msr % 8)));
        CHECK(bitmap[c.read_byte] == cleared);
        CHECK(bitmap[2048 + c.read_byte] == cleared);
        int untouched = 0;
        for (u8 b : bitmap) untouched += b == 0xFF;
        CHECK(untouched == msr_bitmap::bytes - 2);
    }
    u8 bitmap[msr_bitmap::bytes] = {};
    bitmap[0] = 0xFF;
    CHECK_FALSE(msr_bitmap::pass_through(bitmap, 0x40000000));  // outside both ranges: always exits
    CHECK_FALSE(msr_bitmap::pass_through(bitmap, 0xC0002000));
    CHECK(bitmap[0] == 0xFF);
}

TEST_CASE("vmx_exit.exception_injection") {
    CHECK(exception_injection(6, true) == (6u | (3u << 8) | (1u << 31)));
    CHECK(exception_injection(13, true) == (13u | (3u << 8) | (1u << 11) | (1u << 31)));
    CHECK(exception_injection(13, false) == (13u | (3u << 8) | (1u << 31)));  // real mode: no error code
    CHECK(exception_injection(14, true) & intr_info::error_code_valid);
    CHECK_FALSE(exception_injection(3, true) & intr_info::error_code_valid);
}

TEST_CASE("vmx_exit.segment_access_rights_real16") {
    InitialGuestState s{};
    REQUIRE(initial_guest_state(CpuMode::real16, 0, s));
    CHECK(s.cs.access_rights == 0x9B);
    CHECK(s.cs.limit == 0xFFFF);
    CHECK(s.cs.base == 0);
    for (const SegmentState* d : {&s.ds, &s.es, &s.ss, &s.fs, &s.gs}) {
        CHECK(d->access_rights == 0x93);
        CHECK(d->limit == 0xFFFF);
    }
    CHECK(s.tr.access_rights == 0x8B);
    CHECK(s.ldtr.access_rights == access_rights::unusable);
    CHECK(s.cr0 == kCr0Et);
    CHECK(s.efer == 0);
    CHECK_FALSE(s.ia32e_mode);
    CHECK(guest_mode(s.cr0, s.efer, s.rflags, s.cs.access_rights) == CpuMode::real16);
}

TEST_CASE("vmx_exit.segment_access_rights_protected32") {
    InitialGuestState s{};
    REQUIRE(initial_guest_state(CpuMode::protected32, 0, s));
    CHECK(s.cs.access_rights == 0xC09B);
    CHECK(s.cs.limit == 0xFFFFFFFF);
    CHECK(s.ds.access_rights == 0xC093);
    CHECK(s.ss.access_rights == 0xC093);
    CHECK(s.tr.access_rights == 0x8B);
    CHECK(s.ldtr.access_rights == access_rights::unusable);
    CHECK((s.cr0 & kCr0Pe) != 0);
    CHECK((s.cr0 & kCr0Pg) == 0);
    CHECK((s.rflags & virt::kRflagsIf) == 0);
    CHECK(guest_mode(s.cr0, s.efer, s.rflags, s.cs.access_rights) == CpuMode::protected32);
}

TEST_CASE("vmx_exit.segment_access_rights_long64") {
    InitialGuestState s{};
    REQUIRE(initial_guest_state(CpuMode::long64, 0x9000, s));
    CHECK(s.cs.access_rights == 0xA09B);  // L set, D clear
    CHECK(s.ds.access_rights == 0xC093);
    CHECK(s.tr.access_rights == 0x8B);  // 64-bit busy TSS
    CHECK(s.cr3 == 0x9000);
    CHECK((s.cr0 & (kCr0Pe | kCr0Pg)) == (kCr0Pe | kCr0Pg));
    CHECK((s.cr4 & kCr4Pae) != 0);
    CHECK((s.efer & (kEferLme | kEferLma)) == (kEferLme | kEferLma));
    CHECK(s.ia32e_mode);
    CHECK(guest_mode(s.cr0, s.efer, s.rflags, s.cs.access_rights) == CpuMode::long64);
}

TEST_CASE("vmx_exit.guest_mode_and_bad_initial_mode") {
    InitialGuestState s{};
    CHECK_FALSE(initial_guest_state(CpuMode::protected16, 0, s));
    CHECK(guest_mode(kCr0Pe, 0, 2, 0x9B) == CpuMode::protected16);
    CHECK(guest_mode(kCr0Pe, 0, 2 | kRflagsVm, 0xC09B) == CpuMode::real16);
}

namespace {

// The two decodings agree, in the union member their kind makes the one that holds.
bool same_exit(const virt::VmExit& a, const virt::VmExit& b) {
    if (a.kind != b.kind || a.instruction_length != b.instruction_length || a.vendor_code != b.vendor_code)
        return false;
    switch (a.kind) {
    case ExitKind::io:
        return a.io.port == b.io.port && a.io.size == b.io.size && a.io.direction == b.io.direction &&
               a.io.string == b.io.string && a.io.rep == b.io.rep && a.io.value == b.io.value;
    case ExitKind::msr_read:
    case ExitKind::msr_write: return a.msr.index == b.msr.index && a.msr.value == b.msr.value;
    case ExitKind::xsetbv: return a.xsetbv.index == b.xsetbv.index && a.xsetbv.value == b.xsetbv.value;
    case ExitKind::nested_page_fault:
        return a.npf.guest_physical == b.npf.guest_physical && a.npf.access == b.npf.access &&
               a.npf.present == b.npf.present;
    case ExitKind::exception:
        return a.exception.vector == b.exception.vector && a.exception.has_error_code == b.exception.has_error_code &&
               a.exception.error_code == b.exception.error_code;
    default: return true;
    }
}

}  // namespace

// The backend reads nothing of an exit's information but its reason and instruction length for
// the exits decoded_from_state_alone: their decoding must not depend on the rest, and none of
// them may come while an event is delivered (whose IDT-vectoring information it then skips).
TEST_CASE("vmx_exit.exits_decoded_from_state_alone_need_no_more_information") {
    VcpuState s{};
    s.reg(Gpr::rcx) = 0x1B;
    s.reg(Gpr::rdx) = 0x12;
    s.reg(Gpr::rax) = 0x345;
    // SDM 28.2.4: the exits that may come during event delivery through the IDT (and the ones an
    // instruction does not cause: interrupts, windows, timers, INIT, SMIs).
    const u32 during_delivery[] = {exit_reason::exception_or_nmi,
                                   exit_reason::triple_fault,
                                   exit_reason::task_switch,
                                   44 /* APIC access */,
                                   exit_reason::ept_violation,
                                   exit_reason::ept_misconfiguration,
                                   62 /* page-modification log full */,
                                   66 /* SPP-related event */};
    const u32 not_instructions[] = {exit_reason::external_interrupt,
                                    exit_reason::init_signal,
                                    exit_reason::sipi,
                                    exit_reason::io_smi,
                                    exit_reason::other_smi,
                                    exit_reason::interrupt_window,
                                    exit_reason::nmi_window,
                                    exit_reason::preemption_timer,
                                    exit_reason::machine_check,
                                    exit_reason::monitor_trap_flag,
                                    exit_reason::tpr_below_threshold,
                                    exit_reason::invalid_guest_state,
                                    exit_reason::msr_loading};
    u32 count = 0;
    for (u32 reason = 0; reason < 80; ++reason) {
        INFO("exit reason " << reason);
        CHECK_FALSE(decoded_from_state_alone(reason | exit_reason::entry_failure));
        if (!decoded_from_state_alone(reason)) continue;
        ++count;
        for (u32 r : during_delivery) CHECK(reason != r);
        for (u32 r : not_instructions) CHECK(reason != r);
        RawExit bare = raw(reason, 0, 3);
        RawExit full = raw(reason, ~u64{0}, 3);
        full.interruption_info = ~u32{0};
        full.interruption_error_code = ~u32{0};
        full.guest_physical = ~u64{0};
        CHECK(same_exit(decode_exit(bare, s), decode_exit(full, s)));
    }
    CHECK(count == 18);  // CPUID, VMCALL, HLT, RDMSR, WRMSR, XSETBV, a CR access and the 11 VMX instructions
    // Decoded from their qualification: never in the set.
    CHECK_FALSE(decoded_from_state_alone(exit_reason::io_instruction));
    CHECK_FALSE(decoded_from_state_alone(exit_reason::ept_violation));
    CHECK(decode_exit(raw(exit_reason::io_instruction, 0x3F80000, 1), s).io.port !=
          decode_exit(raw(exit_reason::io_instruction, 0, 1), s).io.port);
}
