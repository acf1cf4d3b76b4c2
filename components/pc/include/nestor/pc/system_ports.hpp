// The PC's small system ports, each only as far as an operating system or a BIOS touches it on a
// machine with nothing behind it:
// - 0x80, the POST-code port: writes go nowhere (it is a delay for port I/O), reads 0xFF.
// - 0x92, system control port A: bit 1 (fast A20) is kept and reads back (guest memory never
//   wraps at 1 MiB whatever it says); writing bit 0 set resets the machine.
// - The 8042 keyboard controller (0x60 data, 0x64 status/command), only as far as reset: no
//   keyboard or mouse, so no byte ever waits (0x60 reads 0) and the status reads what QEMU's i8042
//   shows after the BIOS's self-test with its buffers empty, plus the command/data bit of the last
//   write. Command 0xFE (pulse the reset line) resets, and so does any pulse command 0xF0-0xFF
//   with bit 0 clear (bit 0 of the pulse mask is the reset line, as QEMU does); other commands,
//   and data bytes, are ignored.
// - 0xCF9, the PIIX/ICH reset control register: a byte write with bit 2 set resets; bits 1 (hard
//   reset) and 3 (full reset) are kept and read back. Only a 1-byte access at 0xCF9 reaches it.
// - PCI configuration mechanism #1 with no device anywhere: 0xCF8 is the 32-bit address register
//   (a 4-byte access at 0xCF8 only; its reserved bits 1:0 read 0), 0xCFC-0xCFF reads all-ones at
//   any width and ignores writes. Any other access within 0xCF8-0xCFB goes to nothing (the ISA
//   bus, on the PIIX): reads all-ones, writes ignored.
// A reset ends the guest with StopReason::reset and kResetStatus.
#pragma once

#include "nestor/virt/device_bus.hpp"

namespace nestor::pc {

class SystemPorts final : public virt::Device {
public:
    static constexpr u16 kKeyboardDataPort = 0x60;
    static constexpr u16 kKeyboardStatusPort = 0x64;  // status (read), command (write)
    static constexpr u16 kPostCodePort = 0x80;
    static constexpr u16 kSystemControlPortA = 0x92;
    static constexpr u16 kPciConfigPorts = 0xCF8;  // 0xCF8-0xCFF, with the reset control register at 0xCF9
    static constexpr u16 kPciConfigPortCount = 8;

    // The ranges to register (0x61 between the keyboard controller's ports is the PIT's).
    struct Range {
        u16 first;
        u16 count;
    };
    static constexpr Range kRanges[] = {
        {kKeyboardDataPort, 1},
        {kKeyboardStatusPort, 1},
        {kPostCodePort, 1},
        {kSystemControlPortA, 1},
        {kPciConfigPorts, kPciConfigPortCount},
    };

    static constexpr u16 kPciConfigAddress = 0xCF8;
    static constexpr u16 kResetControl = 0xCF9;
    static constexpr u16 kPciConfigData = 0xCFC;

    // Port 0x92.
    static constexpr u8 kFastReset = 0x01;
    static constexpr u8 kFastA20 = 0x02;
    // Port 0x64 status: no output byte, input buffer empty, system flag (self-test passed),
    // keyboard not inhibited; kKeyboardCommandFlag says the last write was a command.
    static constexpr u8 kKeyboardStatus = 0x14;
    static constexpr u8 kKeyboardCommandFlag = 0x08;
    static constexpr u8 kKeyboardPulseReset = 0xFE;  // pulse output-port bit 0 (the reset line) low
    // Port 0xCF9.
    static constexpr u8 kHardReset = 0x02;
    static constexpr u8 kResetCpu = 0x04;
    static constexpr u8 kFullReset = 0x08;
    // Port 0xCF8: the enable bit and the register number's reserved low bits.
    static constexpr u32 kPciConfigEnable = 0x80000000;
    static constexpr u32 kPciConfigReservedBits = 0x3;

    virt::DeviceOutcome io_read(u16 port, u8 size, u32& value, virt::DeviceHost& host) override;
    virt::DeviceOutcome io_write(u16 port, u8 size, u32 value, virt::DeviceHost& host) override;

    bool a20_enabled() const { return (port_a_ & kFastA20) != 0; }

private:
    u8 read_byte(u16 port) const;
    virt::DeviceOutcome write_byte(u16 port, u8 value);

    u8 port_a_ = kFastA20;  // A20 on: nothing masks it
    u8 keyboard_status_ = kKeyboardStatus | kKeyboardCommandFlag;
    u8 reset_control_ = 0;
    u32 pci_address_ = 0;
};

}  // namespace nestor::pc
