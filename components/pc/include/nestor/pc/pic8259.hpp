// The PC's two 8259A interrupt controllers, the slave's INT wired to the master's IR2, with the
// PIIX/ICH edge/level control registers (ELCR) at 0x4D0-0x4D1. Behaviour from the 8259A
// datasheet; where it is silent, as QEMU (hw/intc/i8259.c) and KVM (arch/x86/kvm/i8259.c) do:
//  - an edge request stays latched in IRR until acknowledged, even if its line falls first; a
//    level line's IRR bit follows the line, so a level request lowered before INTA is withdrawn;
//  - the cascade is hardwired as on PIIX: ICW3 is read and ignored, and single mode (ICW1 SNGL)
//    only shortens the init sequence; ICW1's LTIM is ignored (the ELCR replaces it);
//  - ICW1 also clears ISR and the rotation state, as QEMU does;
//  - a poll (OCW3 P) is answered by the next read of either port of that chip;
//  - an access wider than a byte is split into byte accesses of consecutive ports, as the ISA
//    bridge does: bytes on ports of neither chip nor ELCR read all-ones, their writes are dropped.
// Power-on state (which the datasheet leaves undefined): every line masked, vector base 0, so that
// nothing is delivered before the guest has programmed the pair.
#pragma once

#include "nestor/pc/links.hpp"
#include "nestor/virt/device_bus.hpp"

namespace nestor::pc {

// One 8259A: lines IR0-IR7 with rotating priority.
class Pic8259 {
public:
    static constexpr u8 kNone = 8;  // no IRQ

    // ICW1 bits.
    static constexpr u8 kIcw1NeedsIcw4 = 1u << 0;
    static constexpr u8 kIcw1Single = 1u << 1;
    static constexpr u8 kIcw1Select = 1u << 4;
    // OCW3 bits (OCW2 has neither bit 4 nor bit 3).
    static constexpr u8 kOcw3Select = 1u << 3;
    static constexpr u8 kOcw3ReadIsr = 1u << 0;
    static constexpr u8 kOcw3ReadRegister = 1u << 1;
    static constexpr u8 kOcw3Poll = 1u << 2;
    static constexpr u8 kOcw3SpecialMask = 1u << 5;
    static constexpr u8 kOcw3SetSpecialMask = 1u << 6;
    // ICW4 bits.
    static constexpr u8 kIcw4AutoEoi = 1u << 1;
    static constexpr u8 kIcw4SpecialFullyNested = 1u << 4;
    // The poll word's "interrupt pending" bit.
    static constexpr u8 kPollPending = 0x80;

    constexpr Pic8259(bool master, u8 elcr_mask) : master_(master), elcr_mask_(elcr_mask) {}

    void reset();
    // IR`irq`'s input changed (irq 0-7).
    void set_input(u8 irq, bool high);
    // The request the chip would hand to the CPU now, or kNone: the highest-priority unmasked
    // request, if it outranks every level in service.
    u8 pending() const;
    // The INTA cycle for `irq`: into ISR (unless auto-EOI), out of IRR if edge-triggered.
    void acknowledge(u8 irq);
    u8 vector(u8 irq) const { return static_cast<u8>(base_ | irq); }

    // A0 selects the port: 0 is the command port, 1 the data port.
    u8 read(bool a0);
    void write(bool a0, u8 value);
    u8 elcr() const { return elcr_; }
    void write_elcr(u8 value);

private:
    enum class InitStep : u8 { ready, icw2, icw3, icw4 };

    void initialize(u8 icw1);
    void write_data(u8 value);
    void operation2(u8 ocw2);
    void operation3(u8 ocw3);
    void end_of_interrupt(u8 irq, bool rotate);
    u8 poll();
    // 0 for the highest-priority bit set in `mask`, 7 for the lowest, kNone for an empty mask.
    u8 priority(u8 mask) const;
    u8 irq_of(u8 priority) const { return static_cast<u8>((priority + highest_) & 7); }

    bool master_;
    u8 elcr_mask_;
    u8 input_ = 0;  // the lines' levels
    u8 irr_ = 0;
    u8 isr_ = 0;
    u8 imr_ = 0xFF;
    u8 elcr_ = 0;
    u8 base_ = 0;
    u8 highest_ = 0;  // the IRQ of highest priority (rotation)
    InitStep step_ = InitStep::ready;
    bool needs_icw4_ = false;
    bool single_ = false;
    bool auto_eoi_ = false;
    bool rotate_on_auto_eoi_ = false;
    bool special_fully_nested_ = false;
    bool special_mask_ = false;
    bool read_isr_ = false;
    bool poll_ = false;
};

class Pic8259Pair final : public virt::Device {
public:
    // What the platform registers on the bus for this device: three ranges of kRangePorts ports.
    static constexpr u16 kMasterBase = 0x20;
    static constexpr u16 kSlaveBase = 0xA0;
    static constexpr u16 kElcrBase = 0x4D0;  // the master's ELCR, then the slave's
    static constexpr u16 kRangePorts = 2;

    static constexpr u8 kLines = 16;
    static constexpr u8 kCascadeIrq = 2;   // the master's input the slave drives
    static constexpr u8 kSpuriousIrq = 7;  // what an INTA with no request left reads
    // Lines 0, 1, 2 (timer, keyboard, cascade), 8 (RTC) and 13 (FPU) are always edge-triggered.
    static constexpr u8 kMasterElcrMask = 0xF8;
    static constexpr u8 kSlaveElcrMask = 0xDE;

    virt::DeviceOutcome io_read(u16 port, u8 size, u32& value, virt::DeviceHost& host) override;
    virt::DeviceOutcome io_write(u16 port, u8 size, u32 value, virt::DeviceHost& host) override;

    // Line 0-15's level. Line 2 is the slave's INT inside the pair: a device cannot drive it.
    void set_level(u8 line, bool high);
    // The master's INT pin.
    bool interrupt_output() const { return master_.pending() != Pic8259::kNone; }
    // The INTA cycle: the vector the CPU reads. With nothing to deliver the master answers with
    // its IRQ 7 and nothing in service; if the slave's request went away after the master saw
    // it, the master puts IRQ 2 in service and the slave answers with its IRQ 7 (IRQ 15).
    u8 acknowledge();
    void reset();

private:
    // The chip whose command (A0 = 0) or data (A0 = 1) port `port` is, and the chip whose ELCR
    // it is; nullptr for neither.
    Pic8259* chip_at(u16 port);
    Pic8259* elcr_owner(u16 port);
    // Bytes of ports this device does not serve read all-ones.
    u8 read_byte(u16 port);
    void write_byte(u16 port, u8 value);
    // The slave's INT drives the master's IR2: called after anything that may change it.
    void update_cascade();

    Pic8259 master_{true, kMasterElcrMask};
    Pic8259 slave_{false, kSlaveElcrMask};
};

}  // namespace nestor::pc
