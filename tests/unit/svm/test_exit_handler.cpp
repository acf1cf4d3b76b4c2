#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "nestor/virt/exit_handler.hpp"
#include "nestor/virt/vm_devices.hpp"

using namespace nestor;
using namespace nestor::virt;

namespace {

constexpr u16 kGuestConsoleLcr = kGuestConsolePort + Uart16550::kLineControl;

class FakeEnvironment final : public ExitEnvironment {
public:
    CpuidValues host_cpuid(u32 leaf, u32) override {
        ++cpuid_calls;
        if (leaf == 1) return {0x00800F12, 0, 0xFFFFFFFF, 0};
        return {0x11, 0x22, 0x33, 0x44};
    }
    void console_line(const char* text, usize length) override { lines.emplace_back(text, length); }
    ExitOutcome hypercall(VcpuState& state) override {
        hypercall_rips.push_back(state.rip);
        state.rax() = 0x77;
        return hypercall_outcome;
    }

    int cpuid_calls = 0;
    std::vector<u64> hypercall_rips;
    ExitOutcome hypercall_outcome{};
    std::vector<std::string> lines;
};

struct Fixture {
    FakeEnvironment env;
    VmDevices devices;
    VcpuState state{};
    Fixture() {
        REQUIRE(devices.attach().ok());
        state.rip = 0x1000;
        state.mode = CpuMode::real16;
    }
    ExitOutcome run(const VmExit& exit) { return handle_exit(exit, state, devices.bus, env); }
};

VmExit make(ExitKind kind, u8 length) {
    VmExit exit{};
    exit.kind = kind;
    exit.instruction_length = length;
    return exit;
}

VmExit out(u16 port, u32 value, u8 length = 1, u8 size = 1) {
    VmExit exit = make(ExitKind::io, length);
    exit.io = IoExit{port, size, IoDirection::out, false, false, value};
    return exit;
}

VmExit in(u16 port, u8 size, u8 length = 1) {
    VmExit exit = make(ExitKind::io, length);
    exit.io = IoExit{port, size, IoDirection::in, false, false, 0};
    return exit;
}

}  // namespace

TEST_CASE("exit.cpuid_applies_policy_and_advances") {
    Fixture f;
    f.state.rax() = 1;
    ExitOutcome o = f.run(make(ExitKind::cpuid, 2));
    CHECK_FALSE(o.stop);
    CHECK_FALSE(o.inject);
    CHECK(f.state.rip == 0x1002);
    CHECK(f.state.rax() == 0x00800F12);
    CHECK((f.state.rcx() & (1u << 5)) == 0);
    CHECK((f.state.rcx() & (1u << 31)) != 0);
}

TEST_CASE("exit.cpuid_hypervisor_leaf_needs_no_host") {
    Fixture f;
    f.state.rax() = 0x40000000;
    f.run(make(ExitKind::cpuid, 2));
    CHECK(f.env.cpuid_calls == 0);
    CHECK(f.state.rax() == 0x40000001);
}

TEST_CASE("exit.undecodable_instruction_stops_guest") {
    Fixture f;
    f.state.rax() = 0;
    ExitOutcome o = f.run(make(ExitKind::cpuid, 0));
    CHECK(o.stop);
    CHECK(o.reason == StopReason::undecodable);
    CHECK(o.status != 0);
    CHECK(f.state.rip == 0x1000);
}

TEST_CASE("exit.rip_wraps_in_16bit_code") {
    Fixture f;
    f.state.rip = 0xFFFF;
    f.run(make(ExitKind::cpuid, 2));
    CHECK(f.state.rip == 0x0001);
    Fixture g;
    g.state.mode = CpuMode::long64;
    g.state.rip = 0xFFFFFFFF;
    g.run(make(ExitKind::cpuid, 2));
    CHECK(g.state.rip == 0x100000001);
}

TEST_CASE("exit.hypercall_completes_the_instruction_then_asks_the_environment") {
    Fixture f;
    ExitOutcome o = f.run(make(ExitKind::hypercall, 3));
    CHECK_FALSE(o.stop);
    REQUIRE(f.env.hypercall_rips.size() == 1);
    CHECK(f.env.hypercall_rips[0] == 0x1003);  // RIP already past VMMCALL when the call is served
    CHECK(f.state.rax() == 0x77);
}

TEST_CASE("exit.hypercall_outcome_is_the_environments") {
    Fixture f;
    f.env.hypercall_outcome = ExitOutcome{.stop = true, .reason = StopReason::exit_port, .status = 9};
    ExitOutcome o = f.run(make(ExitKind::hypercall, 3));
    CHECK(o.stop);
    CHECK(o.status == 9);
}

TEST_CASE("exit.undecodable_hypercall_is_not_served") {
    Fixture f;
    ExitOutcome o = f.run(make(ExitKind::hypercall, 0));
    CHECK(o.stop);
    CHECK(o.reason == StopReason::undecodable);
    CHECK(f.env.hypercall_rips.empty());
}

TEST_CASE("exit.msr_outside_allow_list_injects_gp") {
    Fixture f;
    VmExit read = make(ExitKind::msr_read, 2);
    read.msr.index = 0xC0010114;
    ExitOutcome o = f.run(read);
    CHECK(o.inject);
    CHECK(o.vector == 13);
    CHECK(o.has_error_code);
    CHECK(o.error_code == 0);
    CHECK(f.state.rip == 0x1000);  // a fault: RIP stays on the instruction
    VmExit write = make(ExitKind::msr_write, 2);
    write.msr.index = 0xC0010117;  // VM_HSAVE_PA
    CHECK(f.run(write).vector == 13);
}

TEST_CASE("exit.efer_is_the_guests_own") {
    Fixture f;
    VmExit write = make(ExitKind::msr_write, 2);
    write.msr.index = kMsrEfer;
    write.msr.value = (1u << 8) | (1u << 11) | 1u;  // LME, NXE, SCE
    ExitOutcome o = f.run(write);
    CHECK_FALSE(o.inject);
    CHECK(f.state.efer == ((1u << 8) | (1u << 11) | 1u));
    CHECK(f.state.rip == 0x1002);
    VmExit read = make(ExitKind::msr_read, 2);
    read.msr.index = kMsrEfer;
    f.state.efer |= kEferLma;  // the CPU set LMA when the guest turned paging on
    f.run(read);
    CHECK(f.state.rax() == ((1u << 10) | (1u << 8) | (1u << 11) | 1u));
    CHECK(f.state.rdx() == 0);
}

TEST_CASE("exit.efer_bits_not_offered_raise_gp") {
    Fixture f;
    VmExit write = make(ExitKind::msr_write, 2);
    write.msr.index = kMsrEfer;
    write.msr.value = u64{1} << 12;  // SVME: no nested virtualization for this guest
    ExitOutcome o = f.run(write);
    CHECK(o.inject);
    CHECK(o.vector == 13);
    CHECK(f.state.efer == 0);
    write.msr.value = u64{1} << 63;
    CHECK(f.run(write).vector == 13);
}

TEST_CASE("exit.msr_allow_list") {
    Fixture f;
    f.state.rax() = 0x1234;
    f.state.rdx() = 0x5678;
    VmExit read = make(ExitKind::msr_read, 2);
    read.msr.index = kMsrBiosSignId;
    ExitOutcome o = f.run(read);
    CHECK_FALSE(o.inject);
    CHECK(f.state.rax() == 0);
    CHECK(f.state.rdx() == 0);
    CHECK(f.state.rip == 0x1002);
}

TEST_CASE("exit.exit_port_stops_with_status") {
    Fixture f;
    ExitOutcome o = f.run(out(kGuestExitPort, 0x1234, 2, 1));
    CHECK(o.stop);
    CHECK(o.reason == StopReason::exit_port);
    CHECK(o.status == 0x34);  // masked to the access size
    ExitOutcome wide = f.run(out(kGuestExitPort, 0x1234, 1, 2));
    CHECK(wide.status == 0x1234);
}

TEST_CASE("exit.console_prints_whole_lines") {
    Fixture f;
    for (char c : std::string("hi\r\nthere\x1b")) CHECK_FALSE(f.run(out(kGuestConsolePort, static_cast<u8>(c))).stop);
    REQUIRE(f.env.lines.size() == 1);
    CHECK(f.env.lines[0] == "hi");
    // The partial line comes out when the guest stops, with the escape byte defused.
    f.run(out(kGuestExitPort, 0));
    REQUIRE(f.env.lines.size() == 2);
    CHECK(f.env.lines[1] == "there.");
    CHECK(f.state.rip == 0x1000 + 11);  // 10 console bytes and the exit port
}

TEST_CASE("exit.console_long_lines_are_split") {
    Fixture f;
    for (int i = 0; i < 250; ++i) f.run(out(kGuestConsolePort, 'x'));
    CHECK(f.env.lines.size() == 2);
    CHECK(f.env.lines[0].size() == Uart16550::kLineCapacity);
}

TEST_CASE("exit.in_merges_by_size") {
    Fixture f;
    f.state.rax() = 0x1122334455667788;
    f.run(in(kGuestConsolePort + Uart16550::kLineStatus, 1));
    CHECK(f.state.rax() == 0x1122334455667760);
    f.run(in(0x60, 2));
    CHECK(f.state.rax() == 0x112233445566FFFF);
    f.run(in(0x60, 4));
    CHECK(f.state.rax() == 0xFFFFFFFF);
}

TEST_CASE("exit.string_io_stops_guest") {
    Fixture f;
    VmExit exit = out(0x3F8, 0);
    exit.io.string = true;
    ExitOutcome o = f.run(exit);
    CHECK(o.stop);
    CHECK(o.reason == StopReason::unsupported);
}

TEST_CASE("exit.hlt_stops_guest") {
    Fixture f;
    ExitOutcome o = f.run(make(ExitKind::hlt, 1));
    CHECK(o.stop);
    CHECK(o.reason == StopReason::halted);
    CHECK(o.status == 0);
}

TEST_CASE("exit.virtualization_instruction_injects_ud") {
    Fixture f;
    ExitOutcome o = f.run(make(ExitKind::virtualization_instruction, 3));
    CHECK_FALSE(o.stop);
    CHECK(o.inject);
    CHECK(o.vector == 6);
    CHECK_FALSE(o.has_error_code);
    CHECK(f.state.rip == 0x1000);
}

TEST_CASE("exit.fatal_exits_stop_guest") {
    Fixture f;
    VmExit npf = make(ExitKind::nested_page_fault, 0);
    npf.npf = NestedPageFaultExit{0x20000, MemoryAccess::read, false};
    CHECK(f.run(npf).reason == StopReason::bad_memory_access);
    CHECK(f.run(make(ExitKind::triple_fault, 0)).reason == StopReason::triple_fault);
    CHECK(f.run(make(ExitKind::invalid_state, 0)).reason == StopReason::invalid_state);
    CHECK(f.run(make(ExitKind::unknown, 0)).reason == StopReason::unknown_exit);
    for (ExitKind kind :
         {ExitKind::nested_page_fault, ExitKind::triple_fault, ExitKind::invalid_state, ExitKind::unknown}) {
        VmExit exit = make(kind, 0);
        if (kind == ExitKind::nested_page_fault) exit.npf = npf.npf;
        CHECK(f.run(exit).status != 0);
    }
}

TEST_CASE("exit.external_interrupt_resumes") {
    Fixture f;
    ExitOutcome o = f.run(make(ExitKind::external_interrupt, 0));
    CHECK_FALSE(o.stop);
    CHECK_FALSE(o.inject);
    CHECK(f.state.rip == 0x1000);
}

TEST_CASE("exit.event_windows_carry_on_without_stepping") {
    for (ExitKind kind : {ExitKind::interrupt_window, ExitKind::nmi_window, ExitKind::task_priority}) {
        Fixture f;
        ExitOutcome o = f.run(make(kind, 2));  // a length, were there one, is not the window's
        CHECK_FALSE(o.stop);
        CHECK_FALSE(o.inject);
        CHECK_FALSE(o.wait);
        CHECK_FALSE(o.yield);
        CHECK(f.state.rip == 0x1000);
    }
    CHECK(std::string(exit_kind_name(ExitKind::interrupt_window)) == "interrupt_window");
    CHECK(std::string(exit_kind_name(ExitKind::nmi_window)) == "nmi_window");
    CHECK(std::string(exit_kind_name(ExitKind::task_priority)) == "task_priority");
}

TEST_CASE("exit.intercepted_exception_is_reflected") {
    Fixture f;
    VmExit exit = make(ExitKind::exception, 0);
    exit.exception = ExceptionExit{14, true, 0x6};
    ExitOutcome o = f.run(exit);
    CHECK(o.inject);
    CHECK(o.vector == 14);
    CHECK(o.has_error_code);
    CHECK(o.error_code == 0x6);
}

TEST_CASE("exit.debug_and_alignment_check_go_back_to_the_guest") {
    Fixture f;
    f.state.rflags = kRflagsFixed1 | kRflagsTf;
    VmExit db = make(ExitKind::exception, 0);
    db.exception = ExceptionExit{kVectorDb, false, 0};
    ExitOutcome o = f.run(db);
    CHECK(o.inject);
    CHECK(o.vector == kVectorDb);
    CHECK_FALSE(o.has_error_code);
    CHECK(f.state.rip == 0x1000);
    CHECK(f.state.rflags == (kRflagsFixed1 | kRflagsTf));  // a trap (or a code breakpoint): RF as it was

    VmExit ac = make(ExitKind::exception, 0);
    ac.exception = ExceptionExit{kVectorAc, true, 0};
    o = f.run(ac);
    CHECK(o.inject);
    CHECK(o.vector == kVectorAc);
    CHECK(o.has_error_code);
    CHECK(o.error_code == 0);
    CHECK(f.state.rip == 0x1000);  // a fault: on the instruction, RF set in the frame it pushes
    CHECK((f.state.rflags & kRflagsRf) != 0);
}

TEST_CASE("exit.rdpmc_gp_monitor_mwait_ud") {
    Fixture f;
    ExitOutcome o = f.run(make(ExitKind::performance_counter, 2));
    CHECK(o.inject);
    CHECK(o.vector == kVectorGp);
    CHECK(o.has_error_code);
    CHECK(o.error_code == 0);
    CHECK(f.state.rip == 0x1000);
    o = f.run(make(ExitKind::monitor_wait, 3));
    CHECK(o.inject);
    CHECK(o.vector == kVectorUd);
    CHECK_FALSE(o.has_error_code);
    CHECK(f.state.rip == 0x1000);
}

TEST_CASE("exit.console_divisor_latch_bytes_are_not_text") {
    Fixture f;
    f.run(out(kGuestConsoleLcr, 0x80));   // open the divisor latch
    f.run(out(kGuestConsolePort, 0x01));  // divisor low byte: 115200 baud
    f.run(out(kGuestConsoleLcr, 0x03));   // 8N1, latch closed
    VmExit read = make(ExitKind::io, 1);
    read.io = IoExit{kGuestConsoleLcr, 1, IoDirection::in, false, false, 0};
    f.run(read);
    CHECK((f.state.rax() & 0xFF) == 0x03);
    f.run(out(kGuestConsolePort, 'o'));
    f.run(out(kGuestConsolePort, 'k'));
    f.run(out(kGuestConsolePort, '\n'));
    REQUIRE(f.env.lines.size() == 1);
    CHECK(f.env.lines[0] == "ok");
}

namespace {
// Holds ports 0x80-0x83; records what reaches the hardware.
class PortEnvironment final : public ExitEnvironment {
public:
    CpuidValues host_cpuid(u32, u32) override { return {}; }
    void console_line(const char* text, usize length) override { lines.emplace_back(text, length); }
    ExitOutcome hypercall(VcpuState&) override { return {}; }
    bool port_held(u16 port, u8 size) override { return port >= 0x80 && port + size <= 0x84; }
    u32 port_read(u16 port, u8 size) override {
        reads.push_back(port);
        return size == 1 ? 0x5A : 0x12345678;
    }
    void port_write(u16 port, u8, u32 value) override { writes.emplace_back(port, value); }
    std::vector<std::string> lines;
    std::vector<u16> reads;
    std::vector<std::pair<u16, u32>> writes;
};
}  // namespace

TEST_CASE("exit.held_ports_reach_the_hardware_others_do_not") {
    PortEnvironment env;
    VmDevices devices;
    REQUIRE(devices.attach().ok());
    VcpuState state{};
    state.mode = CpuMode::long64;
    VmExit in = make(ExitKind::io, 1);
    in.io = IoExit{0x80, 1, IoDirection::in, false, false, 0};
    handle_exit(in, state, devices.bus, env);
    CHECK((state.rax() & 0xFF) == 0x5A);
    VmExit wide = make(ExitKind::io, 1);
    wide.io = IoExit{0x82, 4, IoDirection::in, false, false, 0};  // 0x82-0x85: not all held
    handle_exit(wide, state, devices.bus, env);
    CHECK((state.rax() & 0xFFFFFFFF) == 0xFFFFFFFF);
    handle_exit(out(0x81, 0x1234, 1, 2), state, devices.bus, env);
    REQUIRE(env.writes.size() == 1);
    CHECK(env.writes[0] == std::pair<u16, u32>{0x81, 0x1234});
    handle_exit(out(0x90, 7), state, devices.bus, env);  // not held: goes nowhere
    CHECK(env.writes.size() == 1);
    CHECK(env.reads == std::vector<u16>{0x80});
}

TEST_CASE("exit.emulated_ports_are_never_passed_through") {
    class HoldsEverything final : public ExitEnvironment {
    public:
        CpuidValues host_cpuid(u32, u32) override { return {}; }
        void console_line(const char* text, usize length) override { lines.emplace_back(text, length); }
        ExitOutcome hypercall(VcpuState&) override { return {}; }
        bool port_held(u16, u8) override { return true; }
        void port_write(u16, u8, u32) override { ++hardware_writes; }
        std::vector<std::string> lines;
        int hardware_writes = 0;
    } env;
    VmDevices devices;
    REQUIRE(devices.attach().ok());
    VcpuState state{};
    handle_exit(out(kGuestConsolePort, 'x'), state, devices.bus, env);
    handle_exit(out(kGuestConsolePort, '\n'), state, devices.bus, env);
    ExitOutcome o = handle_exit(out(kGuestExitPort, 5), state, devices.bus, env);
    CHECK(env.hardware_writes == 0);
    CHECK(env.lines == std::vector<std::string>{"x"});
    CHECK(o.stop);
    CHECK(o.status == 5);
}

TEST_CASE("exit.cache_invalidate_completes_without_touching_the_host") {
    Fixture f;
    ExitOutcome o = f.run(make(ExitKind::cache_invalidate, 2));
    CHECK_FALSE(o.stop);
    CHECK_FALSE(o.inject);
    CHECK(f.state.rip == 0x1002);
    CHECK(f.run(make(ExitKind::cache_invalidate, 0)).reason == StopReason::undecodable);
}

TEST_CASE("exit.cpuid_memo_answers_repeated_questions") {
    Fixture f;
    CpuidMemo memo;
    ExitContext context{nullptr, &memo};
    auto run = [&](u32 leaf, u32 subleaf) {
        f.state.rax() = leaf;
        f.state.rcx() = subleaf;
        return handle_exit(make(ExitKind::cpuid, 2), f.state, f.devices.bus, f.env, context);
    };
    run(0x8000000A, 0);
    CHECK(f.env.cpuid_calls == 1);
    u64 first[] = {f.state.rax(), f.state.rbx(), f.state.rcx(), f.state.rdx()};
    for (int i = 0; i < 4; ++i) CHECK(first[i] == 0);  // the policy applied: no SVM features
    f.state.rbx() = f.state.rdx() = 0x5555;
    run(0x8000000A, 0);
    CHECK(f.env.cpuid_calls == 1);  // from the memo
    u64 second[] = {f.state.rax(), f.state.rbx(), f.state.rcx(), f.state.rdx()};
    for (int i = 0; i < 4; ++i) CHECK(second[i] == first[i]);
    CHECK(f.state.rip == 0x1004);  // each completed
    run(0x8000000A, 1);            // another subleaf: asked again
    CHECK(f.env.cpuid_calls == 2);
    run(kCpuidHypervisorBase, 0);  // synthetic: never the host
    CHECK(f.env.cpuid_calls == 2);
    CHECK(f.state.rbx() == kNestorSignatureEbx);
    run(kCpuidHypervisorBase, 0);
    CHECK(f.state.rbx() == kNestorSignatureEbx);
    CHECK(f.env.cpuid_calls == 2);
}

TEST_CASE("exit.cpuid_memo_agrees_with_the_handler_without_one") {
    Fixture with, without;
    CpuidMemo memo;
    ExitContext context{nullptr, &memo};
    for (int round = 0; round < 2; ++round) {
        for (u32 leaf : {0u, 1u, 7u, 0x40000000u, 0x40000001u, 0x80000001u, 0x8000000Au}) {
            with.state.rax() = without.state.rax() = leaf;
            with.state.rcx() = without.state.rcx() = 0;
            handle_exit(make(ExitKind::cpuid, 2), with.state, with.devices.bus, with.env, context);
            without.run(make(ExitKind::cpuid, 2));
            CHECK(with.state.rax() == without.state.rax());
            CHECK(with.state.rbx() == without.state.rbx());
            CHECK(with.state.rcx() == without.state.rcx());
            CHECK(with.state.rdx() == without.state.rdx());
        }
    }
    CHECK(with.env.cpuid_calls < without.env.cpuid_calls);
}

TEST_CASE("exit.cpuid_undecodable_is_not_completed_even_from_the_memo") {
    Fixture f;
    CpuidMemo memo;
    ExitContext context{nullptr, &memo};
    f.state.rax() = 0;
    handle_exit(make(ExitKind::cpuid, 2), f.state, f.devices.bus, f.env, context);
    f.state.rax() = 0;
    u64 rip = f.state.rip;
    ExitOutcome o = handle_exit(make(ExitKind::cpuid, 0), f.state, f.devices.bus, f.env, context);
    CHECK(o.stop);
    CHECK(o.reason == StopReason::undecodable);
    CHECK(f.state.rip == rip);
}

TEST_CASE("exit.context_handles_every_kind_as_the_plain_handler") {
    // The hot exits and the rest go through the same rules with a context.
    Fixture with, without;
    ExitContext context{nullptr, nullptr};
    VmExit exits[] = {out(kGuestConsolePort, 'h'),
                      out(kGuestConsolePort, '\n'),
                      make(ExitKind::hypercall, 3),
                      make(ExitKind::cache_invalidate, 2),
                      make(ExitKind::external_interrupt, 0),
                      make(ExitKind::virtualization_instruction, 3),
                      make(ExitKind::hlt, 1)};
    for (const VmExit& e : exits) {
        ExitOutcome a = handle_exit(e, with.state, with.devices.bus, with.env, context);
        ExitOutcome b = without.run(e);
        CHECK(a.stop == b.stop);
        CHECK(a.reason == b.reason);
        CHECK(a.inject == b.inject);
        CHECK(a.vector == b.vector);
        CHECK(with.state.rip == without.state.rip);
    }
    CHECK(with.env.lines == without.env.lines);
    CHECK(with.env.hypercall_rips == without.env.hypercall_rips);
}

TEST_CASE("exit.hlt_with_interrupts_enabled_waits_without_them_stops") {
    Fixture f;
    f.state.rflags = kRflagsFixed1 | kRflagsIf;
    ExitOutcome o = f.run(make(ExitKind::hlt, 1));
    CHECK(o.wait);
    CHECK_FALSE(o.stop);
    CHECK(f.state.rip == 0x1001);
    f.state.rflags = kRflagsFixed1;
    o = f.run(make(ExitKind::hlt, 1));
    CHECK(o.stop);
    CHECK(o.reason == StopReason::halted);
    CHECK(o.status == 0);
}
