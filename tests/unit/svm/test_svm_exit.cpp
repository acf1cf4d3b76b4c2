#include <catch2/catch.hpp>

#include <vector>

#include "nestor/x86/svm/svm_logic.hpp"

using namespace nestor;
using namespace nestor::x86;
using namespace nestor::x86::svm;
using nestor::virt::CpuMode;
using nestor::virt::ExitKind;
using nestor::virt::Gpr;
using nestor::virt::IoDirection;
using nestor::virt::MemoryAccess;
using nestor::virt::VcpuState;

namespace {

// The guest's memory and the CPU as decode_exit sees them: a fixed length for every
// instruction asked about, and a record of what was asked.
struct FakeHardware {
    u8 length = 0;
    std::vector<InsnOp> asked;
    int machine_checks = 0;
    u8 instruction_length(InsnOp op) {
        asked.push_back(op);
        return length;
    }
    void machine_check() { ++machine_checks; }
    void msr_decoded(nestor::virt::VmExit&) { ++msrs_decoded; }
    int msrs_decoded = 0;
};

VmcbControl exit_of(u64 code, u64 info1 = 0, u64 info2 = 0) {
    VmcbControl c{};
    c.exit_code = code;
    c.exit_info_1 = info1;
    c.exit_info_2 = info2;
    return c;
}

VcpuState long_mode_state() {
    VcpuState s{};
    s.mode = CpuMode::long64;
    s.rip = 0x1000;
    return s;
}

}  // namespace

TEST_CASE("svm_exit.intercepted_instructions_ask_for_their_own_length") {
    struct Case {
        u64 code;
        ExitKind kind;
        InsnOp op;
    };
    const Case cases[] = {
        {exit_code::cpuid, ExitKind::cpuid, InsnOp::cpuid},
        {exit_code::vmmcall, ExitKind::hypercall, InsnOp::vmmcall},
        {exit_code::hlt, ExitKind::hlt, InsnOp::hlt},
        {exit_code::vmrun, ExitKind::virtualization_instruction, InsnOp::vmrun},
        {exit_code::vmload, ExitKind::virtualization_instruction, InsnOp::vmload},
        {exit_code::vmsave, ExitKind::virtualization_instruction, InsnOp::vmsave},
        {exit_code::stgi, ExitKind::virtualization_instruction, InsnOp::stgi},
        {exit_code::clgi, ExitKind::virtualization_instruction, InsnOp::clgi},
        {exit_code::skinit, ExitKind::virtualization_instruction, InsnOp::skinit},
        {exit_code::invlpga, ExitKind::virtualization_instruction, InsnOp::invlpga},
    };
    for (const Case& c : cases) {
        FakeHardware hw{3, {}, 0};
        VmcbControl control = exit_of(c.code);
        auto exit = decode_exit(control, long_mode_state(), hw);
        CHECK(exit.kind == c.kind);
        CHECK(exit.vendor_code == c.code);
        CHECK(exit.instruction_length == 3);
        REQUIRE(hw.asked.size() == 1);
        CHECK(hw.asked[0] == c.op);
    }
}

TEST_CASE("svm_exit.events_without_an_instruction_ask_for_no_length") {
    struct Case {
        u64 code;
        ExitKind kind;
    };
    const Case cases[] = {
        {exit_code::intr, ExitKind::external_interrupt}, {exit_code::nmi, ExitKind::external_interrupt},
        {exit_code::smi, ExitKind::external_interrupt},  {exit_code::init, ExitKind::external_interrupt},
        {exit_code::shutdown, ExitKind::triple_fault},   {exit_code::invalid, ExitKind::invalid_state},
        {exit_code::invalid32, ExitKind::invalid_state}, {exit_code::rdpmc, ExitKind::performance_counter},
        {exit_code::monitor, ExitKind::monitor_wait},    {exit_code::mwait, ExitKind::monitor_wait},
        {exit_code::misc3_base, ExitKind::unknown},      {exit_code::cr4_write, ExitKind::unknown},
        {exit_code::vintr, ExitKind::interrupt_window},  {exit_code::iret, ExitKind::unknown},
        {exit_code::cr8_write, ExitKind::unknown},  // the backend's: emulate_cr8_write
    };
    for (const Case& c : cases) {
        FakeHardware hw{3, {}, 0};
        VmcbControl control = exit_of(c.code);
        auto exit = decode_exit(control, long_mode_state(), hw);
        CHECK(exit.kind == c.kind);
        CHECK(exit.instruction_length == 0);
        CHECK(hw.asked.empty());
    }
}

TEST_CASE("svm_exit.msr_read_and_write") {
    VcpuState s = long_mode_state();
    s.reg(Gpr::rcx) = 0xC0000080;
    s.reg(Gpr::rdx) = 0x1234;
    s.reg(Gpr::rax) = 0xFFFFFFFF'00000D01;  // the high half of RAX is not the value's
    FakeHardware hw{2, {}, 0};
    VmcbControl read = exit_of(exit_code::msr, 0);
    auto r = decode_exit(read, s, hw);
    CHECK(r.kind == ExitKind::msr_read);
    CHECK(r.msr.index == 0xC0000080);
    CHECK(r.msr.value == 0);
    VmcbControl write = exit_of(exit_code::msr, 1);
    auto w = decode_exit(write, s, hw);
    CHECK(w.kind == ExitKind::msr_write);
    CHECK(w.msr.value == 0x1234'00000D01);
    CHECK(hw.asked == std::vector<InsnOp>{InsnOp::rdmsr, InsnOp::wrmsr});
    CHECK(hw.msrs_decoded == 2);  // the backend sees both, after their decoding
}

TEST_CASE("svm_exit.xsetbv_takes_index_and_value") {
    VcpuState s = long_mode_state();
    s.reg(Gpr::rcx) = 0;
    s.reg(Gpr::rdx) = 0;
    s.reg(Gpr::rax) = 7;
    FakeHardware hw{3, {}, 0};
    VmcbControl control = exit_of(exit_code::xsetbv);
    auto exit = decode_exit(control, s, hw);
    CHECK(exit.kind == ExitKind::xsetbv);
    CHECK(exit.xsetbv.index == 0);
    CHECK(exit.xsetbv.value == 7);
}

TEST_CASE("svm_exit.ioio_exitinfo1_and_length_from_the_next_rip") {
    VcpuState s = long_mode_state();
    s.reg(Gpr::rax) = 0xAABBCCDD;
    FakeHardware hw{};
    // OUT DX, AL to 0x3F8: 1 byte, EXITINFO2 one past RIP.
    VmcbControl out = exit_of(exit_code::ioio, (u64{0x3F8} << 16) | ioio::size8, s.rip + 1);
    auto o = decode_exit(out, s, hw);
    CHECK(o.kind == ExitKind::io);
    CHECK(o.io.port == 0x3F8);
    CHECK(o.io.size == 1);
    CHECK(o.io.direction == IoDirection::out);
    CHECK(o.io.value == 0xDD);
    CHECK_FALSE(o.io.string);
    CHECK_FALSE(o.io.rep);
    CHECK(o.instruction_length == 1);
    // REP INSD from 0x1F0: 4 bytes, in, string, rep; a prefixed instruction of 3 bytes.
    VmcbControl ins = exit_of(exit_code::ioio,
                              (u64{0x1F0} << 16) | ioio::size32 | ioio::type_in | ioio::string | ioio::rep, s.rip + 3);
    auto i = decode_exit(ins, s, hw);
    CHECK(i.io.size == 4);
    CHECK(i.io.direction == IoDirection::in);
    CHECK(i.io.string);
    CHECK(i.io.rep);
    CHECK(i.io.value == 0xAABBCCDD);
    CHECK(i.instruction_length == 3);
    VmcbControl word = exit_of(exit_code::ioio, (u64{0x60} << 16) | ioio::size16, s.rip + 2);
    CHECK(decode_exit(word, s, hw).io.value == 0xCCDD);
    CHECK(hw.asked.empty());  // EXITINFO2 gives the length: no decoding
}

TEST_CASE("svm_exit.ioio_length_wraps_at_the_code_size_and_is_refused_when_implausible") {
    VcpuState s{};
    s.mode = CpuMode::real16;
    s.rip = 0xFFFF;
    FakeHardware hw{};
    // IP wraps from 0xFFFF to 0x0000 in 16-bit code: a 1-byte OUT.
    VmcbControl wrap = exit_of(exit_code::ioio, (u64{0x80} << 16) | ioio::size8, 0x10000);
    CHECK(decode_exit(wrap, s, hw).instruction_length == 1);
    s.mode = CpuMode::long64;
    s.rip = 0x1000;
    VmcbControl backwards = exit_of(exit_code::ioio, (u64{0x80} << 16) | ioio::size8, 0xFFF);
    CHECK(decode_exit(backwards, s, hw).instruction_length == 0);
    VmcbControl too_long = exit_of(exit_code::ioio, (u64{0x80} << 16) | ioio::size8, 0x1000 + 16);
    CHECK(decode_exit(too_long, s, hw).instruction_length == 0);
}

TEST_CASE("svm_exit.nested_page_fault_access_and_presence") {
    FakeHardware hw{};
    VmcbControl fetch = exit_of(exit_code::npf, npf_info::fetch | npf_info::user | npf_info::final_address, 0xFEE00000);
    auto f = decode_exit(fetch, long_mode_state(), hw);
    CHECK(f.kind == ExitKind::nested_page_fault);
    CHECK(f.npf.guest_physical == 0xFEE00000);
    CHECK(f.npf.access == MemoryAccess::execute);
    CHECK_FALSE(f.npf.present);
    VmcbControl write = exit_of(exit_code::npf, npf_info::write | npf_info::present, 0x2000);
    auto w = decode_exit(write, long_mode_state(), hw);
    CHECK(w.npf.access == MemoryAccess::write);
    CHECK(w.npf.present);
    VmcbControl read = exit_of(exit_code::npf, 0, 0x3000);
    CHECK(decode_exit(read, long_mode_state(), hw).npf.access == MemoryAccess::read);
}

TEST_CASE("svm_exit.exceptions_and_their_error_codes") {
    FakeHardware hw{};
    VmcbControl gp = exit_of(exit_code::exception(13), 0x18);
    auto g = decode_exit(gp, long_mode_state(), hw);
    CHECK(g.kind == ExitKind::exception);
    CHECK(g.exception.vector == 13);
    CHECK(g.exception.has_error_code);
    CHECK(g.exception.error_code == 0x18);
    VmcbControl db = exit_of(exit_code::exception(1), 0x18);
    auto d = decode_exit(db, long_mode_state(), hw);
    CHECK(d.exception.vector == 1);
    CHECK_FALSE(d.exception.has_error_code);
    for (u8 v : {8, 10, 11, 12, 13, 14, 17, 21, 29, 30}) CHECK(exception_has_error_code(v));
    for (u8 v : {0, 1, 3, 6, 7, 16, 18, 19}) CHECK_FALSE(exception_has_error_code(v));
}

TEST_CASE("svm_exit.machine_check_goes_to_the_host_and_the_guest_goes_on") {
    FakeHardware hw{};
    VmcbControl mc = exit_of(exit_code::exception(18));
    auto exit = decode_exit(mc, long_mode_state(), hw);
    CHECK(hw.machine_checks == 1);
    CHECK(exit.kind == ExitKind::external_interrupt);
}

TEST_CASE("svm_exit.invd_and_wbinvd_accept_either_instruction") {
    // QEMU reports INVD as a WBINVD exit: the other instruction is tried when the first is not it.
    FakeHardware none{0, {}, 0};
    VmcbControl wbinvd = exit_of(exit_code::wbinvd);
    auto exit = decode_exit(wbinvd, long_mode_state(), none);
    CHECK(exit.kind == ExitKind::cache_invalidate);
    CHECK(none.asked == std::vector<InsnOp>{InsnOp::wbinvd, InsnOp::invd});
    FakeHardware found{2, {}, 0};
    VmcbControl invd = exit_of(exit_code::invd);
    CHECK(decode_exit(invd, long_mode_state(), found).instruction_length == 2);
    CHECK(found.asked == std::vector<InsnOp>{InsnOp::invd});
}

TEST_CASE("svm_exit.plain_length_of_the_common_encodings") {
    const u8 cpuid[] = {0x0F, 0xA2, 0x90};
    const u8 vmmcall[] = {0x0F, 0x01, 0xD9};
    const u8 vmrun[] = {0x0F, 0x01, 0xD8};
    const u8 invlpga[] = {0x0F, 0x01, 0xDF};
    const u8 hlt[] = {0xF4, 0x90, 0x90};
    const u8 rdmsr[] = {0x0F, 0x32, 0x90};
    const u8 wrmsr[] = {0x0F, 0x30, 0x90};
    const u8 xsetbv[] = {0x0F, 0x01, 0xD1};
    CHECK(plain_length(cpuid, InsnOp::cpuid) == 2);
    CHECK(plain_length(vmmcall, InsnOp::vmmcall) == 3);
    CHECK(plain_length(vmrun, InsnOp::vmrun) == 3);
    CHECK(plain_length(invlpga, InsnOp::invlpga) == 3);
    CHECK(plain_length(hlt, InsnOp::hlt) == 1);
    CHECK(plain_length(rdmsr, InsnOp::rdmsr) == 2);
    CHECK(plain_length(wrmsr, InsnOp::wrmsr) == 2);
    CHECK(plain_length(xsetbv, InsnOp::xsetbv) == 3);
    // Another instruction than expected, or a prefix: the full decoder's turn.
    CHECK(plain_length(vmmcall, InsnOp::vmrun) == 0);
    CHECK(plain_length(rdmsr, InsnOp::wrmsr) == 0);
    const u8 prefixed_cpuid[] = {0x66, 0x0F, 0xA2};
    CHECK(plain_length(prefixed_cpuid, InsnOp::cpuid) == 0);
}

TEST_CASE("svm_exit.mov_to_cr_operand_and_length") {
    u64 gprs[16] = {};
    for (u64 i = 0; i < 16; ++i) gprs[i] = 0x1111'0000'0000'0000 | (0x100 + i);
    MovToCr mov{};
    const u8 rax[] = {0x0F, 0x22, 0xE0};  // mov cr4, rax
    REQUIRE(decode_mov_to_cr(rax, CpuMode::long64, gprs, mov));
    CHECK(mov.cr == 4);
    CHECK(mov.value == gprs[0]);
    CHECK(mov.length == 3);
    const u8 r9[] = {0x41, 0x0F, 0x22, 0xE1};  // mov cr4, r9
    REQUIRE(decode_mov_to_cr(r9, CpuMode::long64, gprs, mov));
    CHECK(mov.cr == 4);
    CHECK(mov.value == gprs[9]);
    CHECK(mov.length == 4);
    // Outside long mode 0x41 is INC ECX, not REX, and the value is 32 bits.
    const u8 ecx[] = {0x0F, 0x22, 0xE1};
    REQUIRE(decode_mov_to_cr(ecx, CpuMode::protected32, gprs, mov));
    CHECK(mov.value == 0x101);
    CHECK_FALSE(decode_mov_to_cr(r9, CpuMode::protected32, gprs, mov));
    const u8 cr3[] = {0x0F, 0x22, 0xD8};  // mov cr3, rax
    REQUIRE(decode_mov_to_cr(cr3, CpuMode::long64, gprs, mov));
    CHECK(mov.cr == 3);
    const u8 not_mov[] = {0x0F, 0x20, 0xE0, 0x90};  // mov rax, cr4: a read
    CHECK_FALSE(decode_mov_to_cr(not_mov, CpuMode::long64, gprs, mov));
    // CR8: REX.R names it (mov cr8, rdx; mov cr8, r11), and AMD's LOCK MOV CR0 outside 64-bit mode.
    const u8 cr8_rdx[] = {0x44, 0x0F, 0x22, 0xC2};
    REQUIRE(decode_mov_to_cr(cr8_rdx, CpuMode::long64, gprs, mov));
    CHECK(mov.cr == 8);
    CHECK(mov.value == gprs[2]);
    CHECK(mov.length == 4);
    const u8 cr8_r11[] = {0x45, 0x0F, 0x22, 0xC3};
    REQUIRE(decode_mov_to_cr(cr8_r11, CpuMode::long64, gprs, mov));
    CHECK(mov.cr == 8);
    CHECK(mov.value == gprs[11]);
    const u8 lock_cr0[] = {0xF0, 0x0F, 0x22, 0xC1};  // lock mov cr0, ecx: CR8
    REQUIRE(decode_mov_to_cr(lock_cr0, CpuMode::protected32, gprs, mov));
    CHECK(mov.cr == 8);
    CHECK(mov.value == 0x101);
    CHECK(mov.length == 4);
}

TEST_CASE("svm_exit.mode_of_the_guest_state") {
    VmcbSave s{};
    s.cr0 = x86_regs::kCr0Pe | x86_regs::kCr0Pg;
    s.efer = x86_regs::kEferLme | x86_regs::kEferLma;
    s.cs.attrib = attrib::code_rx | attrib::long_mode;
    CHECK(mode_of(s) == CpuMode::long64);
    s.cs.attrib = attrib::code_rx | attrib::default32;  // compatibility mode
    CHECK(mode_of(s) == CpuMode::protected32);
    s.efer = 0;
    s.cs.attrib = attrib::code_rx;
    CHECK(mode_of(s) == CpuMode::protected16);
    s.rflags = x86_regs::kRflagsVm;
    CHECK(mode_of(s) == CpuMode::real16);
    s.rflags = 0;
    s.cr0 = 0;
    CHECK(mode_of(s) == CpuMode::real16);
}

TEST_CASE("svm_exit.injected_events") {
    CHECK(interrupt_event(0x20) == (event::valid | 0x20));
    CHECK(exception_event(13, true, 0x18, true) == (event::valid | (event::type_exception << event::type_shift) |
                                                    event::error_code_valid | (u64{0x18} << 32) | 13));
    // Real mode pushes no error code.
    CHECK(exception_event(13, true, 0x18, false) == (event::valid | (event::type_exception << event::type_shift) | 13));
    CHECK(exception_event(6, false, 0, true) == (event::valid | (event::type_exception << event::type_shift) | 6));
    CHECK(nmi_event() == (event::valid | (event::type_nmi << event::type_shift) | 2));
}

TEST_CASE("svm_exit.interrupt_window_is_vintr_without_an_instruction") {
    FakeHardware hw{2, {}, 0};
    VmcbControl control = exit_of(exit_code::vintr);
    auto exit = decode_exit(control, long_mode_state(), hw);
    CHECK(exit.kind == ExitKind::interrupt_window);
    CHECK(exit.vendor_code == 0x64);
    CHECK(exit.instruction_length == 0);
    CHECK(hw.asked.empty());
    // The intercept bits sit where the exit codes say: vector 3 bit n is exit code 0x60 + n.
    CHECK(intercept1::vintr == 1u << (exit_code::vintr - exit_code::misc1_base));
    CHECK(intercept1::iret == 1u << (exit_code::iret - exit_code::misc1_base));
}

TEST_CASE("svm_exit.msr_permission_map_passes_through_only_its_msr") {
    struct Case {
        u32 msr;
        u32 byte;  // of the map
        u8 shift;  // of its read bit; the write bit follows
    };
    const Case cases[] = {{0x277, 0x277 / 4, (0x277 % 4) * 2},
                          {0xC0000102, 0x800 + 0x102 / 4, (0x102 % 4) * 2},
                          {0xC0010117, 0x1000 + 0x117 / 4, (0x117 % 4) * 2}};
    for (const Case& c : cases) {
        std::vector<u8> map(kMsrpmBytes, 0xFF);
        REQUIRE(msrpm::pass_through(map.data(), c.msr));
        CHECK(map[c.byte] == static_cast<u8>(~(3u << c.shift)));
        for (usize i = 0; i < map.size(); ++i)
            if (i != c.byte) CHECK(map[i] == 0xFF);
        REQUIRE(msrpm::intercept(map.data(), c.msr, true, false));
        CHECK(map[c.byte] == static_cast<u8>(~(2u << c.shift)));
    }
    std::vector<u8> map(kMsrpmBytes, 0xFF);
    CHECK_FALSE(msrpm::pass_through(map.data(), 0x40000000));  // outside the map: always intercepted
    CHECK(map == std::vector<u8>(kMsrpmBytes, 0xFF));
}

TEST_CASE("svm_exit.pat_memory_types") {
    CHECK(x86_regs::pat_is_valid(x86_regs::kPatReset));
    CHECK(x86_regs::pat_is_valid(0x0706050401000706));  // UC-, WB, WP, WT, WC, UC
    CHECK(x86_regs::pat_is_valid(0));
    for (unsigned entry = 0; entry < 8; ++entry) {
        for (u64 type : {u64{2}, u64{3}, u64{8}, u64{0xFF}}) {
            u64 pat = (x86_regs::kPatReset & ~(u64{0xFF} << (8 * entry))) | (type << (8 * entry));
            CHECK_FALSE(x86_regs::pat_is_valid(pat));
        }
    }
}
