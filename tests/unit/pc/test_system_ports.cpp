#include <catch2/catch.hpp>

#include "nestor/pc/cmos_rtc.hpp"
#include "nestor/pc/pit8254.hpp"
#include "nestor/pc/system_ports.hpp"
#include "pc_fakes.hpp"

using namespace nestor;
using namespace nestor::pc;
using namespace nestor::pc::testing;
using Action = virt::DeviceOutcome::Action;

namespace {

struct Rig {
    SystemPorts ports;
    NullHost host;

    u32 in(u16 port, u8 size = 1) {
        u32 value = 0xFFFFFFFF;
        CHECK(ports.io_read(port, size, value, host).action == Action::complete);
        return value;
    }
    virt::DeviceOutcome out(u16 port, u32 value, u8 size = 1) { return ports.io_write(port, size, value, host); }
};

void check_reset(virt::DeviceOutcome outcome) {
    CHECK(outcome.action == Action::stop);
    CHECK(outcome.reason == virt::StopReason::reset);
    CHECK(outcome.code == virt::kResetStatus);
}

void check_complete(virt::DeviceOutcome outcome) { CHECK(outcome.action == Action::complete); }

}  // namespace

TEST_CASE("pc.system_ports.post_code_port") {
    Rig rig;
    check_complete(rig.out(SystemPorts::kPostCodePort, 0x55));
    CHECK(rig.in(SystemPorts::kPostCodePort) == 0xFF);
    CHECK(rig.in(SystemPorts::kPostCodePort, 2) == 0xFFFF);
}

TEST_CASE("pc.system_ports.port_a_keeps_a20_and_resets_on_bit0") {
    Rig rig;
    CHECK(rig.in(SystemPorts::kSystemControlPortA) == SystemPorts::kFastA20);  // A20 starts on
    check_complete(rig.out(SystemPorts::kSystemControlPortA, 0x00));
    CHECK(rig.in(SystemPorts::kSystemControlPortA) == 0x00);
    CHECK_FALSE(rig.ports.a20_enabled());
    // Linux's enable_a20_fast(): set bit 1, keep bit 0 clear.
    check_complete(
        rig.out(SystemPorts::kSystemControlPortA, (rig.in(SystemPorts::kSystemControlPortA) | 0x02) & ~0x01));
    CHECK(rig.in(SystemPorts::kSystemControlPortA) == SystemPorts::kFastA20);
    CHECK(rig.ports.a20_enabled());
    check_complete(rig.out(SystemPorts::kSystemControlPortA, 0xFE));  // other bits are not kept
    CHECK(rig.in(SystemPorts::kSystemControlPortA) == SystemPorts::kFastA20);
    check_reset(rig.out(SystemPorts::kSystemControlPortA, SystemPorts::kFastReset));
    check_reset(rig.out(SystemPorts::kSystemControlPortA, 0x03));
}

TEST_CASE("pc.system_ports.keyboard_controller_resets_on_0xfe") {
    Rig rig;
    CHECK(rig.in(SystemPorts::kKeyboardStatusPort) == 0x1C);  // QEMU's i8042 after the BIOS, empty
    CHECK(rig.in(SystemPorts::kKeyboardDataPort) == 0);
    check_complete(rig.out(SystemPorts::kKeyboardDataPort, 0xF4));
    CHECK(rig.in(SystemPorts::kKeyboardStatusPort) == 0x14);  // the last write was data
    for (u32 command : {0x20, 0xAA, 0xAD, 0xD1, 0xFF, 0xF1, 0xFD})
        check_complete(rig.out(SystemPorts::kKeyboardStatusPort, command));
    CHECK(rig.in(SystemPorts::kKeyboardStatusPort) == 0x1C);
    CHECK(rig.in(SystemPorts::kKeyboardDataPort) == 0);  // no byte ever waits
    check_reset(rig.out(SystemPorts::kKeyboardStatusPort, SystemPorts::kKeyboardPulseReset));
    check_reset(rig.out(SystemPorts::kKeyboardStatusPort, 0xF0));  // pulses bit 0 (reset) too
}

TEST_CASE("pc.system_ports.reset_control_register") {
    Rig rig;
    CHECK(rig.in(SystemPorts::kResetControl) == 0);
    // Linux's reboot=pci: request a hard reset, then reset.
    u8 cf9 = rig.in(SystemPorts::kResetControl) & ~0x0E;
    check_complete(rig.out(SystemPorts::kResetControl, cf9 | SystemPorts::kHardReset));
    CHECK(rig.in(SystemPorts::kResetControl) == SystemPorts::kHardReset);
    check_complete(rig.out(SystemPorts::kResetControl, SystemPorts::kHardReset | SystemPorts::kFullReset | 0xF1));
    CHECK(rig.in(SystemPorts::kResetControl) == (SystemPorts::kHardReset | SystemPorts::kFullReset));
    check_reset(rig.out(SystemPorts::kResetControl, cf9 | 0x0E));
    check_reset(rig.out(SystemPorts::kResetControl, SystemPorts::kResetCpu));
    // Only a byte at 0xCF9 is the register: a dword at 0xCF8 is the PCI address.
    check_complete(rig.out(SystemPorts::kPciConfigAddress, 0x00000400, 4));
    check_complete(rig.out(SystemPorts::kResetControl, 0x04, 2));
    CHECK(rig.in(SystemPorts::kResetControl, 2) == 0xFFFF);
}

TEST_CASE("pc.system_ports.pci_config_address_and_no_devices") {
    Rig rig;
    check_complete(rig.out(SystemPorts::kPciConfigAddress, 0x8000F8FF, 4));
    CHECK(rig.in(SystemPorts::kPciConfigAddress, 4) == 0x8000F8FC);  // bits 1:0 read 0
    check_complete(rig.out(SystemPorts::kPciConfigAddress, 0x12345678, 4));
    CHECK(rig.in(SystemPorts::kPciConfigAddress, 4) == 0x12345678);
    // Only the whole dword at 0xCF8 is the address register.
    check_complete(rig.out(SystemPorts::kPciConfigAddress, 0x00, 1));
    check_complete(rig.out(0xCFA, 0x0000, 2));
    check_complete(rig.out(0xCFB, 0x01, 1));  // Linux's pci_check_type1() pokes this
    CHECK(rig.in(SystemPorts::kPciConfigAddress, 4) == 0x12345678);
    CHECK(rig.in(SystemPorts::kPciConfigAddress, 1) == 0xFF);
    CHECK(rig.in(SystemPorts::kPciConfigAddress, 2) == 0xFFFF);
    CHECK(rig.in(0xCFA, 1) == 0xFF);
    // Linux's type 1 probe sees the address register; its device reads find nothing.
    check_complete(rig.out(SystemPorts::kPciConfigAddress, 0x80000000, 4));
    CHECK(rig.in(SystemPorts::kPciConfigAddress, 4) == 0x80000000);
    for (u32 address : {0x80000000u, 0x80000008u, 0x8000F800u, 0x80FFFFFCu, 0x00000000u}) {
        check_complete(rig.out(SystemPorts::kPciConfigAddress, address, 4));
        for (u16 offset = 0; offset < 4; ++offset) {
            u16 port = static_cast<u16>(SystemPorts::kPciConfigData + offset);
            CHECK(rig.in(port, 1) == 0xFF);
            CHECK(rig.in(port, 2) == 0xFFFF);
            CHECK(rig.in(port, 4) == 0xFFFFFFFF);
            check_complete(rig.out(port, 0x12345678, 4));
        }
    }
    CHECK(rig.in(SystemPorts::kPciConfigAddress, 4) == 0x00000000);
}

// Linux's pci_check_type1() exactly: a byte to 0xCFB, save the address register, write the
// enable bit alone and expect it back, then restore what it saved. Its bus scan then reads
// all-ones: no device. (That the scan finds no host bridge makes Linux's pci_sanity_check() fail
// unless DMI reports a BIOS from 2001 or later: the platform has no SMBIOS tables.)
TEST_CASE("pc.system_ports.linux_type1_probe_sequence") {
    Rig rig;
    check_complete(rig.out(0xCFB, 0x01, 1));
    u32 saved = rig.in(SystemPorts::kPciConfigAddress, 4);
    CHECK(saved == 0);  // the address register after reset
    check_complete(rig.out(SystemPorts::kPciConfigAddress, SystemPorts::kPciConfigEnable, 4));
    CHECK(rig.in(SystemPorts::kPciConfigAddress, 4) == SystemPorts::kPciConfigEnable);
    // pci_conf1_read(0, 0, devfn 0, PCI_CLASS_DEVICE = 0x0A, 2): address, then a word at 0xCFE.
    check_complete(rig.out(SystemPorts::kPciConfigAddress, 0x80000008, 4));
    CHECK(rig.in(static_cast<u16>(SystemPorts::kPciConfigData + 2), 2) == 0xFFFF);
    check_complete(rig.out(SystemPorts::kPciConfigAddress, saved, 4));
    CHECK(rig.in(SystemPorts::kPciConfigAddress, 4) == saved);
}

TEST_CASE("pc.system_ports.ranges_register_beside_the_pit_and_the_rtc") {
    FakeClock clock(0, 1'000'000);
    NullLines lines;
    Pit8254 pit(clock, lines);
    CmosRtc rtc(clock, lines);
    SystemPorts ports;
    virt::DeviceBus bus;
    CHECK(bus.add_ports(Pit8254::kFirstPort, Pit8254::kPortCount, pit).ok());
    CHECK(bus.add_ports(Pit8254::kSystemControlPort, 1, pit).ok());
    CHECK(bus.add_ports(CmosRtc::kIndexPort, CmosRtc::kPortCount, rtc).ok());
    for (const SystemPorts::Range& range : SystemPorts::kRanges)
        CHECK(bus.add_ports(range.first, range.count, ports).ok());
    for (u16 port : {0x60, 0x64, 0x80, 0x92, 0xCF8, 0xCF9, 0xCFC, 0xCFF}) CHECK(bus.port_range(port)->device == &ports);
    CHECK(bus.port_range(0x61)->device == &pit);
    CHECK(bus.port_range(0x71)->device == &rtc);
    CHECK(bus.port_range(0x62) == nullptr);
}

TEST_CASE("pc.system_ports.hostile_accesses_never_crash") {
    Rig rig;
    u64 seed = 0x2545F4914F6CDD1Dull;
    auto next = [&seed] {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        return seed;
    };
    const u16 ports[] = {0x5F, 0x60,  0x61,  0x63,  0x64,  0x65,  0x7F,  0x80,  0x81,  0x91,  0x92,
                         0x93, 0xCF7, 0xCF8, 0xCF9, 0xCFA, 0xCFB, 0xCFC, 0xCFD, 0xCFE, 0xCFF, 0xD00};
    usize resets = 0;
    for (int i = 0; i < 100000; ++i) {
        u16 port = ports[next() % (sizeof(ports) / sizeof(ports[0]))];
        u8 size = static_cast<u8>(next() % 6);  // 0-5: the bus sends 1, 2 and 4, and nothing else does harm
        u32 value = static_cast<u32>(next());
        virt::DeviceOutcome outcome;
        if (next() & 1) {
            outcome = rig.ports.io_write(port, size, value, rig.host);
        } else {
            outcome = rig.ports.io_read(port, size, value, rig.host);
        }
        REQUIRE(outcome.action != Action::fault);
        if (outcome.action == Action::stop) {
            REQUIRE(outcome.reason == virt::StopReason::reset);
            REQUIRE(outcome.code == virt::kResetStatus);
            ++resets;
        }
    }
    CHECK(resets > 0);
}
