// How the PC platform's device models reach each other and the time they follow, as small
// interfaces: each model depends only on these, so Catch2 drives it with doubles, and the
// platform (pc_platform) wires the real ones together per domain. Modelled on the wiring of
// KVM's in-kernel irqchip and QEMU's PC: devices drive interrupt lines; the line router hands a
// line's level to the 8259A pair (lines 0-15) and the I/O APIC (lines 0-23); the I/O APIC and
// each local APIC send interrupt messages over the APIC bus; a local APIC's EOI of a
// level-triggered vector goes back to the I/O APIC.
#pragma once

#include "nestor/arch/apic_regs.hpp"
#include "nestor/lib/types.hpp"

namespace nestor::pc {

// The guest's time stamp counter, which every timer of the platform follows: a timer's deadline
// is a guest TSC value, so the host programs one timer for the earliest deadline of a domain.
class GuestClock {
public:
    virtual u64 now() const = 0;      // the guest's TSC now; never goes backwards
    virtual u64 tsc_khz() const = 0;  // guest TSC ticks per millisecond

protected:
    ~GuestClock() = default;
};

// A model with no timer armed reports this deadline.
inline constexpr u64 kNoDeadline = ~u64{0};
// Periodic timers fire at most this often (KVM's floor): a guest asking for a period of a few
// ticks would otherwise be interrupted before its handler ran, for ever.
inline constexpr u64 kMinTimerPeriodUs = 200;

// Interrupt lines: ISA IRQ 0-15 and the I/O APIC's GSIs 0-23 (the same numbers; IRQ 0 reaches
// GSI 2 through the MADT's override, which the router applies). A device raises and lowers its
// line; an edge-triggered device pulses it (high, then low).
class IrqLines {
public:
    virtual void set_level(u8 line, bool high) = 0;

protected:
    ~IrqLines() = default;
};

// The APIC's delivery modes (ICR and redirection-entry bits 10:8).
enum class DeliveryMode : u8 {
    fixed = apic_regs::kModeFixed,
    lowest_priority = apic_regs::kModeLowestPriority,
    smi = apic_regs::kModeSmi,
    nmi = apic_regs::kModeNmi,
    init = apic_regs::kModeInit,
    startup = apic_regs::kModeStartup,
    extint = apic_regs::kModeExtint,
};

// ICR bits 19:18.
enum class Shorthand : u8 { none = 0, self = 1, all_including_self = 2, all_excluding_self = 3 };

// One interrupt message on the APIC bus: from an I/O APIC redirection entry, or an IPI from a
// local APIC's ICR (with its sender, for the shorthands).
struct ApicMessage {
    u32 destination;  // physical: an APIC ID (0xFF in xAPIC, 0xFFFFFFFF in x2APIC: broadcast); logical: a mask
    u8 vector;
    DeliveryMode mode;
    bool logical;          // destination mode
    bool level_triggered;  // trigger mode (level-triggered fixed vectors set TMR and need an EOI broadcast)
    bool assert = true;    // level; an INIT with level de-assert (and trigger level) is ignored
    Shorthand shorthand = Shorthand::none;
    u32 source_apic = 0;  // the sender's APIC ID (IPIs)
};

// The domain's APIC bus: delivers a message to the local APICs it addresses.
class ApicBus {
public:
    virtual void deliver(const ApicMessage& message) = 0;

protected:
    ~ApicBus() = default;
};

// Hears a local APIC's EOI of a level-triggered vector (TMR set): the I/O APIC clears the remote
// IRR of the entries with that vector, and raises them again if their line is still high.
class EoiListener {
public:
    virtual void end_of_interrupt(u8 vector) = 0;

protected:
    ~EoiListener() = default;
};

}  // namespace nestor::pc
