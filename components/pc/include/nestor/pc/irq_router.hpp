// The platform's interrupt lines: a device's line reaches the 8259A pair (ISA lines 0-15) and the
// I/O APIC (GSIs 0-23) at once, whichever the guest has enabled, as on a PC's south bridge. The
// timer's IRQ 0 reaches I/O APIC pin 2, as the ACPI MADT's interrupt source override says; pin 0
// (the PIC's ExtINT on real boards) is driven by nothing, and line 2, the PIC's cascade, reaches
// neither the I/O APIC nor a device-driven PIC input.
#pragma once

#include "nestor/pc/io_apic.hpp"
#include "nestor/pc/links.hpp"
#include "nestor/pc/pic8259.hpp"

namespace nestor::pc {

// The MADT's interrupt source override: ISA IRQ 0 (the PIT) is GSI 2.
inline constexpr u8 kTimerIrq = 0;
inline constexpr u8 kTimerGsi = 2;

class IrqRouter final : public IrqLines {
public:
    IrqRouter(Pic8259Pair& pic, IoApic& io_apic) : pic_(pic), io_apic_(io_apic) {}

    // Lines beyond the I/O APIC's last pin are ignored.
    void set_level(u8 line, bool high) override;

private:
    Pic8259Pair& pic_;
    IoApic& io_apic_;
};

}  // namespace nestor::pc
