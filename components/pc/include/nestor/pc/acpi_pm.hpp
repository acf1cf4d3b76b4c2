// The ACPI fixed-hardware power-management registers of the PC platform, as the FADT describes
// them (acpi_tables.hpp): a PM1a event block (status and enable), a PM1a control block and the
// PM timer, in one run of I/O ports. ACPI is always on (there is no SMI_CMD port: SCI_EN reads
// 1), and the only sleep state is S5 (soft off), whose SLP_TYP is the DSDT's \_S5
// (components/pc/acpi/dsdt.asl): entering it ends the domain. No event is ever generated, so
// the SCI (line 9) stays low; the timer's overflow status (TMR_STS) is kept for the guest to
// poll. Register layout from ACPI 6.x section 4.8 (fixed hardware programming model).
#pragma once

#include "nestor/pc/links.hpp"
#include "nestor/virt/device_bus.hpp"

namespace nestor::pc {

// Offsets from the block's base port, and the lengths the FADT gives.
inline constexpr u16 kPm1EventOffset = 0;  // PM1a_STS (2 bytes), then PM1a_EN (2 bytes)
inline constexpr u8 kPm1EventLength = 4;
inline constexpr u16 kPm1ControlOffset = 4;  // PM1a_CNT
inline constexpr u8 kPm1ControlLength = 2;
inline constexpr u16 kPmTimerOffset = 8;  // PM_TMR, 32 bits (the FADT sets TMR_VAL_EXT)
inline constexpr u8 kPmTimerLength = 4;
inline constexpr u16 kPmPortCount = 12;  // base .. base + 11; ports 6 and 7 are a hole
inline constexpr u16 kDefaultPmBase = 0x600;

// The PM timer's fixed rate (ACPI 6.x section 4.8.3.3).
inline constexpr u64 kPmTimerHz = 3579545;

// The SLP_TYP value of S5, the first element of the DSDT's \_S5 package.
inline constexpr u8 kSleepTypeS5 = 5;

// PM1 status bits (write 1 to clear) and enable bits.
inline constexpr u16 kPm1TimerStatus = 1u << 0;
inline constexpr u16 kPm1WakeStatus = 1u << 15;
inline constexpr u16 kPm1EnableMask = 0x4721;  // TMR_EN, GBL_EN, PWRBTN_EN, SLPBTN_EN, RTC_EN, PCIEXP_WAKE_DIS

// PM1 control bits.
inline constexpr u16 kPm1SciEnable = 1u << 0;
inline constexpr u16 kPm1BusMasterReload = 1u << 1;
inline constexpr u16 kPm1SleepTypeShift = 10;
inline constexpr u16 kPm1SleepTypeMask = 7u << kPm1SleepTypeShift;
inline constexpr u16 kPm1SleepEnable = 1u << 13;  // write-only: reads 0

class AcpiPm final : public virt::Device {
public:
    // `base` is the first port of the block (pm_base in AcpiConfig); the platform registers
    // kPmPortCount ports from it.
    AcpiPm(const GuestClock& clock, IrqLines& irqs, u16 base);

    // Any width at any offset: each byte of the access reaches its own register byte (as on
    // PIIX4/ICH, whose PM1 registers also take byte and dword accesses). Bytes outside the
    // registers (the hole, past the end) read all-ones and ignore writes; widths other than 1, 2
    // and 4 are ignored.
    virt::DeviceOutcome io_read(u16 port, u8 size, u32& value, virt::DeviceHost& host) override;
    virt::DeviceOutcome io_write(u16 port, u8 size, u32 value, virt::DeviceHost& host) override;

    u16 base() const { return base_; }
    // The PM timer's value now: guest TSC ticks scaled to 3.579545 MHz, modulo 2^32.
    u32 timer() const { return static_cast<u32>(timer_ticks()); }

private:
    // What one access sees: the timer sampled once, so that a wide read is consistent.
    struct Snapshot {
        u64 ticks;
    };

    u64 timer_ticks() const;
    u16 status(const Snapshot& now) const;
    u16 control() const;
    u8 read_byte(u32 offset, const Snapshot& now) const;
    // False when the byte starts S5.
    bool write_byte(u32 offset, u8 byte, const Snapshot& now);
    void clear_status(u16 bits, const Snapshot& now);
    bool write_control(u16 value);

    const GuestClock& clock_;
    [[maybe_unused]] IrqLines& irqs_;  // the SCI's line: no event raises it yet
    u16 base_;
    u16 enable_ = 0;
    u16 control_ = 0;          // BM_RLD and SLP_TYP; SCI_EN is added on read
    u64 timer_msb_epoch_ = 0;  // how many times bit 31 had toggled when TMR_STS was last cleared
};

}  // namespace nestor::pc
