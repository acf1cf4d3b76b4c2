// The exit handler and the device bus: exits reach the device that claims their address; what
// no device claims keeps the kernel's own rules; MMIO goes through the environment's decoder.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "nestor/virt/exit_handler.hpp"
#include "nestor/virt/vm_devices.hpp"

using namespace nestor;
using namespace nestor::virt;

namespace {

struct Access {
    char space;  // 'p'ort, 'm'mio, 'r' msr
    bool write;
    u64 address;
    u8 size;
    u64 value;
    bool operator==(const Access&) const = default;
};

// Records every access; reads answer `answer`; `outcome` is what each access returns.
class RecordingDevice final : public Device {
public:
    DeviceOutcome io_read(u16 port, u8 size, u32& value, DeviceHost&) override {
        log.push_back({'p', false, port, size, 0});
        value = static_cast<u32>(answer);
        return outcome;
    }
    DeviceOutcome io_write(u16 port, u8 size, u32 value, DeviceHost&) override {
        log.push_back({'p', true, port, size, value});
        return outcome;
    }
    DeviceOutcome mmio_read(u64 address, u8 size, u64& value, DeviceHost&) override {
        log.push_back({'m', false, address, size, 0});
        value = answer;
        return outcome;
    }
    DeviceOutcome mmio_write(u64 address, u8 size, u64 value, DeviceHost&) override {
        log.push_back({'m', true, address, size, value});
        return outcome;
    }
    DeviceOutcome msr_read(u32 index, u64& value, DeviceHost&) override {
        log.push_back({'r', false, index, 8, 0});
        value = answer;
        return outcome;
    }
    DeviceOutcome msr_write(u32 index, u64 value, DeviceHost&) override {
        log.push_back({'r', true, index, 8, value});
        return outcome;
    }
    void flush(DeviceHost&) override { ++flushes; }

    std::vector<Access> log;
    u64 answer = 0;
    DeviceOutcome outcome{};
    int flushes = 0;
};

class Environment final : public ExitEnvironment {
public:
    CpuidValues host_cpuid(u32, u32) override { return {}; }
    void console_line(const char* text, usize length) override { lines.emplace_back(text, length); }
    ExitOutcome hypercall(VcpuState&) override { return {}; }
    bool port_held(u16 port, u8) override { return port == 0x80; }
    u32 port_read(u16, u8) override { return 0x5A; }
    void port_write(u16 port, u8, u32 value) override { hardware_writes.emplace_back(port, value); }
    Result<MmioAccess, MmioDecodeError> decode_mmio(const VcpuState& state) override {
        ++decodes;
        decoded_at = state.rip;
        if (!decoded) return fail(error);
        return *decoded;
    }

    std::vector<std::string> lines;
    std::vector<std::pair<u16, u32>> hardware_writes;
    const MmioAccess* decoded = nullptr;
    MmioDecodeError error = MmioDecodeError::unsupported;
    int decodes = 0;
    u64 decoded_at = 0;
};

constexpr u64 kDeviceBase = 0xFEC00000;
constexpr u64 kDeviceSize = 0x1000;
constexpr u32 kDeviceMsr = 0x800;

struct Machine {
    Environment env;
    VmDevices devices;
    RecordingDevice device;
    VcpuState state{};
    Machine() {
        REQUIRE(devices.attach().ok());
        REQUIRE(devices.bus.add_ports(0x60, 5, device).ok());
        REQUIRE(devices.bus.add_mmio(kDeviceBase, kDeviceSize, device).ok());
        REQUIRE(devices.bus.add_msrs(kDeviceMsr, 0x100, device).ok());
        state.rip = 0x2000;
        state.mode = CpuMode::long64;
    }
    ExitOutcome run(const VmExit& exit) { return handle_exit(exit, state, devices.bus, env); }
};

VmExit make(ExitKind kind, u8 length) {
    VmExit exit{};
    exit.kind = kind;
    exit.instruction_length = length;
    return exit;
}

VmExit io(u16 port, IoDirection direction, u8 size, u32 value = 0) {
    VmExit exit = make(ExitKind::io, 2);
    exit.io = IoExit{port, size, direction, false, false, value};
    return exit;
}

VmExit msr(ExitKind kind, u32 index, u64 value = 0) {
    VmExit exit = make(kind, 2);
    exit.msr = MsrExit{index, value};
    return exit;
}

// A nested page fault: the backend knows no instruction length for it.
VmExit npf(u64 gpa, MemoryAccess access) {
    VmExit exit = make(ExitKind::nested_page_fault, 0);
    exit.npf = NestedPageFaultExit{gpa, access, false};
    return exit;
}

MmioAccess load(Gpr reg, u8 size, u8 register_size, u8 length = 3) {
    MmioAccess a{};
    a.length = length;
    a.size = size;
    a.register_size = register_size;
    a.direction = MmioDirection::read;
    a.operand = MmioOperand::gpr;
    a.extension = MmioExtension::zero;
    a.reg = reg;
    return a;
}

MmioAccess store(Gpr reg, u8 size, u8 length = 3) {
    MmioAccess a = load(reg, size, size, length);
    a.direction = MmioDirection::write;
    return a;
}

}  // namespace

TEST_CASE("devices.port_exits_reach_the_claiming_device") {
    Machine m;
    m.device.answer = 0x12345678;
    m.state.rax() = 0xAAAAAAAAAAAAAAAA;
    CHECK_FALSE(m.run(io(0x64, IoDirection::in, 1)).stop);
    CHECK(m.state.rax() == 0xAAAAAAAAAAAAAA78);  // AL only, as IN does
    CHECK_FALSE(m.run(io(0x60, IoDirection::out, 2, 0xBEEF)).stop);
    CHECK(m.device.log == std::vector<Access>{{'p', false, 0x64, 1, 0}, {'p', true, 0x60, 2, 0xBEEF}});
    CHECK(m.state.rip == 0x2004);
    // Next to the range: not the device's.
    m.run(io(0x65, IoDirection::in, 1));
    m.run(io(0x5F, IoDirection::out, 1, 1));
    CHECK(m.device.log.size() == 2);
    CHECK((m.state.rax() & 0xFF) == 0xFF);
}

TEST_CASE("devices.a_device_fault_leaves_the_instruction_undone") {
    Machine m;
    m.device.outcome = DeviceOutcome::exception(kVectorGp, true, 0);
    m.state.rax() = 7;
    ExitOutcome o = m.run(io(0x60, IoDirection::in, 4));
    CHECK(o.inject);
    CHECK(o.vector == kVectorGp);
    CHECK(m.state.rip == 0x2000);
    CHECK(m.state.rax() == 7);
    o = m.run(msr(ExitKind::msr_read, kDeviceMsr + 0x30));
    CHECK(o.inject);
    CHECK(m.state.rip == 0x2000);
    CHECK(m.state.rax() == 7);
}

TEST_CASE("devices.a_device_stop_completes_and_flushes_every_device") {
    Machine m;
    m.device.outcome = DeviceOutcome::end_guest(StopReason::shutdown, 3);
    m.devices.console.put('h', m.env);
    ExitOutcome o = m.run(io(0x61, IoDirection::out, 1, 0));
    CHECK(o.stop);
    CHECK(o.reason == StopReason::shutdown);
    CHECK(o.status == 3);
    CHECK(m.state.rip == 0x2002);
    CHECK(m.device.flushes == 1);
    CHECK(m.env.lines == std::vector<std::string>{"h"});  // the console's partial line
}

TEST_CASE("devices.unclaimed_ports_keep_the_kernels_rules") {
    Machine m;
    m.run(io(0x80, IoDirection::out, 1, 0x42));  // held: the hardware
    CHECK(m.env.hardware_writes == std::vector<std::pair<u16, u32>>{{0x80, 0x42}});
    m.state.rax() = 0;
    m.run(io(0x80, IoDirection::in, 1));
    CHECK(m.state.rax() == 0x5A);
    m.run(io(0x81, IoDirection::in, 2));  // not held, no device: floats high
    CHECK(m.state.rax() == 0xFFFF);
    CHECK(m.run(io(0x81, IoDirection::out, 1, 1)).stop == false);
    CHECK(m.env.hardware_writes.size() == 1);
    CHECK(m.device.log.empty());
    // The exit port is a device: it ends the guest with the value written.
    ExitOutcome o = m.run(io(kGuestExitPort, IoDirection::out, 1, 9));
    CHECK(o.stop);
    CHECK(o.reason == StopReason::exit_port);
    CHECK(o.status == 9);
}

// The nested-memory MSR: only a VM with nested virtualization has it; RDMSR answers the bytes of
// L0 memory its nested state holds at that moment; WRMSR is #GP(0) and changes nothing.
TEST_CASE("devices.nested_memory_msr_reports_the_held_bytes") {
    Machine m;
    ExitOutcome o = m.run(msr(ExitKind::msr_read, kMsrNestedMemory));  // not attached: an unknown MSR
    CHECK(o.inject);
    CHECK(o.vector == kVectorGp);
    u64 held = 0x123456789000;
    REQUIRE(m.devices.attach_nested_memory(held).ok());
    CHECK_FALSE(m.run(msr(ExitKind::msr_read, kMsrNestedMemory)).inject);
    CHECK(m.state.rax() == 0x56789000);
    CHECK(m.state.rdx() == 0x1234);
    held -= 0x1000;  // read at each access
    CHECK_FALSE(m.run(msr(ExitKind::msr_read, kMsrNestedMemory)).inject);
    CHECK(m.state.rax() == 0x56788000);
    CHECK(m.state.rip == 0x2004);
    o = m.run(msr(ExitKind::msr_write, kMsrNestedMemory, 0));
    CHECK(o.inject);
    CHECK(o.vector == kVectorGp);
    CHECK(o.has_error_code);
    CHECK(o.error_code == 0);
    CHECK(held == 0x123456788000);
    CHECK(m.state.rip == 0x2004);  // the faulting WRMSR is not completed
}

TEST_CASE("devices.msr_exits_reach_the_claiming_device_first") {
    Machine m;
    m.device.answer = 0x1122334455667788;
    CHECK_FALSE(m.run(msr(ExitKind::msr_read, kDeviceMsr)).inject);
    CHECK(m.state.rax() == 0x55667788);
    CHECK(m.state.rdx() == 0x11223344);
    CHECK_FALSE(m.run(msr(ExitKind::msr_write, kDeviceMsr + 0xFF, 0xABCDEF)).inject);
    CHECK(m.device.log ==
          std::vector<Access>{{'r', false, kDeviceMsr, 8, 0}, {'r', true, kDeviceMsr + 0xFF, 8, 0xABCDEF}});
    CHECK(m.state.rip == 0x2004);
    // Outside the device's range the kernel's rules stand: #GP, 0x8B reads 0, EFER is the guest's.
    ExitOutcome o = m.run(msr(ExitKind::msr_read, kDeviceMsr + 0x100));
    CHECK(o.inject);
    CHECK(o.vector == kVectorGp);
    m.state.rax() = m.state.rdx() = 5;
    CHECK_FALSE(m.run(msr(ExitKind::msr_read, kMsrBiosSignId)).inject);
    CHECK(m.state.rax() == 0);
    CHECK(m.state.rdx() == 0);
    CHECK(m.device.log.size() == 2);
}

TEST_CASE("devices.mmio_load_reaches_the_device_and_the_register") {
    Machine m;
    m.device.answer = 0xFFFFFFFF80000001;
    MmioAccess access = load(Gpr::rbx, 4, 4, 6);
    m.env.decoded = &access;
    m.state.rbx() = 0x1111111111111111;
    ExitOutcome o = m.run(npf(kDeviceBase + 0x20, MemoryAccess::read));
    CHECK_FALSE(o.stop);
    CHECK_FALSE(o.inject);
    CHECK(m.env.decoded_at == 0x2000);
    CHECK(m.device.log == std::vector<Access>{{'m', false, kDeviceBase + 0x20, 4, 0}});
    CHECK(m.state.rbx() == 0x80000001);  // a 32-bit load zero-extends
    CHECK(m.state.rip == 0x2006);

    // MOVSX r64, m16 and a byte load into AH.
    MmioAccess movsx = load(Gpr::rcx, 2, 8, 4);
    movsx.extension = MmioExtension::sign;
    m.env.decoded = &movsx;
    m.device.answer = 0x8001;
    m.run(npf(kDeviceBase, MemoryAccess::read));
    CHECK(m.state.rcx() == 0xFFFFFFFFFFFF8001);
    MmioAccess ah = load(Gpr::rax, 1, 1, 2);
    ah.high_byte = true;
    m.env.decoded = &ah;
    m.device.answer = 0x5A;
    m.state.rax() = 0x1234;
    m.run(npf(kDeviceBase, MemoryAccess::read));
    CHECK(m.state.rax() == 0x5A34);
    CHECK(m.state.rip == 0x2006 + 4 + 2);
}

TEST_CASE("devices.mmio_store_passes_the_value") {
    Machine m;
    MmioAccess access = store(Gpr::rsi, 2);
    m.env.decoded = &access;
    m.state.reg(Gpr::rsi) = 0xDEADBEEF;
    CHECK_FALSE(m.run(npf(kDeviceBase + kDeviceSize - 2, MemoryAccess::write)).stop);
    CHECK(m.device.log == std::vector<Access>{{'m', true, kDeviceBase + kDeviceSize - 2, 2, 0xBEEF}});
    CHECK(m.state.rip == 0x2003);
    MmioAccess immediate = store(Gpr::rax, 8, 11);
    immediate.operand = MmioOperand::immediate;
    immediate.immediate = 0xFFFFFFFFFFFFFFF0;
    m.env.decoded = &immediate;
    m.run(npf(kDeviceBase + 8, MemoryAccess::write));
    CHECK(m.device.log.back() == Access{'m', true, kDeviceBase + 8, 8, 0xFFFFFFFFFFFFFFF0});
    CHECK(m.state.rip == 0x2003 + 11);
}

TEST_CASE("devices.mmio_that_cannot_be_decoded_stops_with_a_report") {
    Machine m;
    m.devices.console.put('p', m.env);
    ExitOutcome o = m.run(npf(kDeviceBase, MemoryAccess::read));  // the fake decodes nothing
    CHECK(o.stop);
    CHECK(o.reason == StopReason::unsupported);
    REQUIRE(o.detail != nullptr);
    CHECK(std::string(o.detail).find("not a MOV form") != std::string::npos);
    CHECK(m.env.lines == std::vector<std::string>{"p"});
    CHECK(m.device.log.empty());
    CHECK(m.state.rip == 0x2000);
    m.env.error = MmioDecodeError::unreadable;
    o = m.run(npf(kDeviceBase, MemoryAccess::read));
    CHECK(std::string(o.detail).find("could not be read") != std::string::npos);

    // The default environment reads no guest code: it cannot decode.
    class NoDecoder final : public ExitEnvironment {
    public:
        CpuidValues host_cpuid(u32, u32) override { return {}; }
        void console_line(const char*, usize) override {}
        ExitOutcome hypercall(VcpuState&) override { return {}; }
    } plain;
    o = handle_exit(npf(kDeviceBase, MemoryAccess::read), m.state, m.devices.bus, plain);
    CHECK(o.stop);
    CHECK(o.reason == StopReason::unsupported);
    CHECK(m.device.log.empty());
}

TEST_CASE("devices.mmio_that_does_not_fit_stops") {
    Machine m;
    MmioAccess wide = load(Gpr::rax, 8, 8);
    m.env.decoded = &wide;
    ExitOutcome o = m.run(npf(kDeviceBase + kDeviceSize - 4, MemoryAccess::read));  // runs past the end
    CHECK(o.stop);
    CHECK(std::string(o.detail).find("past the end") != std::string::npos);
    MmioAccess written = store(Gpr::rax, 4);
    m.env.decoded = &written;
    o = m.run(npf(kDeviceBase, MemoryAccess::read));  // a store where the CPU saw a load
    CHECK(o.stop);
    CHECK(std::string(o.detail).find("does not match") != std::string::npos);
    o = m.run(npf(kDeviceBase, MemoryAccess::execute));
    CHECK(o.stop);
    CHECK(o.reason == StopReason::bad_memory_access);
    CHECK(m.device.log.empty());
    CHECK(m.state.rip == 0x2000);
}

TEST_CASE("devices.faults_outside_device_ranges_stop_as_before") {
    Machine m;
    MmioAccess access = load(Gpr::rax, 4, 4);
    m.env.decoded = &access;
    ExitOutcome o = m.run(npf(kDeviceBase + kDeviceSize, MemoryAccess::read));
    CHECK(o.stop);
    CHECK(o.reason == StopReason::bad_memory_access);
    CHECK(m.env.decodes == 0);  // no device, no decoding
    o = m.run(npf(kDeviceBase - 1, MemoryAccess::write));
    CHECK(o.reason == StopReason::bad_memory_access);
    CHECK(m.device.log.empty());
}

namespace {
nested::Decision not_nested_fault(nested::NestedVcpu&, const NestedPageFaultExit&) { return {}; }
nested::Decision l1_intercepts_nothing(nested::NestedVcpu&, const VmExit&, VcpuState&) { return {}; }
}  // namespace

TEST_CASE("devices.l2_faults_never_reach_the_vms_devices") {
    // While L1's guest runs, a fault's address is L2's, not the VM's: no device serves it.
    Machine m;
    MmioAccess access = load(Gpr::rax, 4, 4);
    m.env.decoded = &access;
    nested::NestedOps ops{};
    ops.nested_page_fault = not_nested_fault;
    nested::NestedVcpu vcpu{};
    vcpu.ops = &ops;
    vcpu.guest_exit = l1_intercepts_nothing;
    ExitOutcome o =
        handle_exit(npf(kDeviceBase, MemoryAccess::read), m.state, m.devices.bus, m.env, ExitContext{&vcpu, nullptr});
    CHECK(o.stop);
    CHECK(o.reason == StopReason::bad_memory_access);
    CHECK(m.device.log.empty());
    // L1's own fault (no L2 running) does.
    vcpu.guest_exit = nullptr;
    o = handle_exit(npf(kDeviceBase, MemoryAccess::read), m.state, m.devices.bus, m.env, ExitContext{&vcpu, nullptr});
    CHECK_FALSE(o.stop);
    CHECK(m.device.log.size() == 1);
}
