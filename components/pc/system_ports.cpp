#include "nestor/pc/system_ports.hpp"

#include "nestor/pc/byte_ports.hpp"

namespace nestor::pc {

namespace {

constexpr virt::DeviceOutcome reset() {
    return virt::DeviceOutcome::end_guest(virt::StopReason::reset, virt::kResetStatus);
}

u32 all_ones(u8 size) { return size >= 4 ? 0xFFFFFFFF : (u32{1} << (8 * size)) - 1; }

bool in_pci_ports(u16 port) {
    return static_cast<u16>(port - SystemPorts::kPciConfigPorts) < SystemPorts::kPciConfigPortCount;
}

// Pulse commands 0xF0-0xFF pulse the output-port bits whose mask bit is clear; bit 0 is reset.
bool pulses_reset(u8 command) { return (command & 0xF0) == 0xF0 && (command & 0x01) == 0; }

}  // namespace

virt::DeviceOutcome SystemPorts::io_read(u16 port, u8 size, u32& value, virt::DeviceHost&) {
    size = size > 4 ? 4 : size;
    if (in_pci_ports(port)) {
        // The address register as a whole; the reset control register as a byte; the rest floats.
        if (port == kPciConfigAddress && size == 4)
            value = pci_address_ & ~kPciConfigReservedBits;
        else if (port == kResetControl && size == 1)
            value = reset_control_;
        else
            value = all_ones(size);  // the data window: no device at any address
        return {};
    }
    value = read_bytes(port, size, [this](u16 at) { return read_byte(at); });
    return {};
}

virt::DeviceOutcome SystemPorts::io_write(u16 port, u8 size, u32 value, virt::DeviceHost&) {
    size = size > 4 ? 4 : size;
    if (in_pci_ports(port)) {
        if (port == kPciConfigAddress && size == 4) pci_address_ = value;
        if (port == kResetControl && size == 1) {
            reset_control_ = value & (kHardReset | kFullReset);
            if (value & kResetCpu) return reset();
        }
        return {};
    }
    // Byte registers: a wider write reaches its bytes in order, and stops at a reset.
    for (u8 i = 0; i < size; ++i) {
        virt::DeviceOutcome outcome = write_byte(static_cast<u16>(port + i), static_cast<u8>(value >> (8 * i)));
        if (outcome.action != virt::DeviceOutcome::Action::complete) return outcome;
    }
    return {};
}

u8 SystemPorts::read_byte(u16 port) const {
    switch (port) {
    case kKeyboardDataPort: return 0;
    case kKeyboardStatusPort: return keyboard_status_;
    case kSystemControlPortA: return port_a_;
    default: return 0xFF;  // the POST-code port, and bytes beyond our ports
    }
}

virt::DeviceOutcome SystemPorts::write_byte(u16 port, u8 value) {
    switch (port) {
    case kKeyboardDataPort: keyboard_status_ = kKeyboardStatus; return {};
    case kKeyboardStatusPort:
        keyboard_status_ = kKeyboardStatus | kKeyboardCommandFlag;
        return pulses_reset(value) ? reset() : virt::DeviceOutcome{};
    case kSystemControlPortA: port_a_ = value & kFastA20; return (value & kFastReset) ? reset() : virt::DeviceOutcome{};
    default: return {};  // the POST-code port, and bytes beyond our ports
    }
}

}  // namespace nestor::pc
