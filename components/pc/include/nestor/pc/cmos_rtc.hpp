// The PC's CMOS RAM and real-time clock (a Motorola MC146818: 128 bytes behind an index port at
// 0x70 and a data port at 0x71). The clock follows the guest's TSC from the wall-clock time the
// host gives (set_wall_clock), plus the offset the guest sets with status B's SET bit; its
// registers are computed from the time at each read, so nothing runs between accesses. The
// periodic, alarm and update-ended interrupts reach IRQ line 8 as a level that reading status C
// lowers; the platform arms a timer for deadline() and calls advance().
//
// Modelled after the datasheet, with these choices:
// - Time is kept in whole seconds, with the host's second boundaries: UIP is set for the 244 us
//   before each boundary, the registers change at the boundary and UF (and AF on a match) with
//   them. A divider reset (status A's DV = 11x) stops the clock as SET does; leaving it resumes
//   with the host's phase (the datasheet's first update 500 ms later is not modelled).
// - Day of week is derived from the date (a value the guest writes there is not kept).
// - DSE is kept but no daylight-saving change is made (as QEMU does).
// - Writing SET clears UIE (datasheet, QEMU). IRQF is PF.PIE + AF.AIE + UF.UIE at all times.
// - Missed periodic ticks are coalesced: PF is set once however many ticks passed, and while a
//   flag is set (until the guest reads status C) its event arms no deadline; once read, the next
//   deadline is the first tick after the read.
// - The 32.768 kHz time base is taken to run for DV = 000, 001 and 010 (as QEMU does).
// - The century register is 0x32 (ACPI FADT's default), encoded like the other registers.
#pragma once

#include "nestor/pc/links.hpp"
#include "nestor/virt/device_bus.hpp"

namespace nestor::pc {

class CmosRtc final : public virt::Device {
public:
    static constexpr u16 kIndexPort = 0x70;
    static constexpr u16 kDataPort = 0x71;
    static constexpr u16 kPortCount = 2;  // register 2 ports from kIndexPort
    static constexpr u8 kIrqLine = 8;
    static constexpr u8 kNmiMask = 0x80;  // index port bit 7
    static constexpr u8 kRamSize = 128;

    // Registers (indices).
    static constexpr u8 kSeconds = 0x00;
    static constexpr u8 kSecondsAlarm = 0x01;
    static constexpr u8 kMinutes = 0x02;
    static constexpr u8 kMinutesAlarm = 0x03;
    static constexpr u8 kHours = 0x04;
    static constexpr u8 kHoursAlarm = 0x05;
    static constexpr u8 kDayOfWeek = 0x06;  // 1 = Sunday
    static constexpr u8 kDayOfMonth = 0x07;
    static constexpr u8 kMonth = 0x08;
    static constexpr u8 kYear = 0x09;
    static constexpr u8 kStatusA = 0x0A;
    static constexpr u8 kStatusB = 0x0B;
    static constexpr u8 kStatusC = 0x0C;
    static constexpr u8 kStatusD = 0x0D;
    static constexpr u8 kCentury = 0x32;
    // Memory sizes, as SeaBIOS reads them and QEMU writes them (little-endian byte pairs).
    static constexpr u8 kBaseMemory = 0x15;       // KiB below 640 KiB
    static constexpr u8 kExtendedMemory = 0x17;   // KiB above 1 MiB, at most 65535
    static constexpr u8 kExtendedMemory2 = 0x30;  // the same again
    static constexpr u8 kHighMemory = 0x34;       // 64 KiB units above 16 MiB, at most 65535
    static constexpr u8 kMemoryAbove4g = 0x5B;    // 64 KiB units above 4 GiB, three bytes

    // Status A.
    static constexpr u8 kUpdateInProgress = 0x80;  // read-only
    static constexpr u8 kDividerMask = 0x70;
    static constexpr u8 kDividerNormal = 0x20;  // 32.768 kHz time base
    static constexpr u8 kRateMask = 0x0F;
    static constexpr u64 kUpdateInProgressUs = 244;
    // Status B.
    static constexpr u8 kSet = 0x80;
    static constexpr u8 kPeriodicEnable = 0x40;
    static constexpr u8 kAlarmEnable = 0x20;
    static constexpr u8 kUpdateEnable = 0x10;
    static constexpr u8 kSquareWave = 0x08;
    static constexpr u8 kBinary = 0x04;  // DM: binary rather than BCD
    static constexpr u8 k24Hour = 0x02;
    static constexpr u8 kDaylightSaving = 0x01;
    static constexpr u8 kPm = 0x80;  // hours register bit 7 in 12-hour mode
    // Status C (read-only; reading clears it).
    static constexpr u8 kIrqFlag = 0x80;
    static constexpr u8 kPeriodicFlag = 0x40;
    static constexpr u8 kAlarmFlag = 0x20;
    static constexpr u8 kUpdateFlag = 0x10;
    // Status D (read-only).
    static constexpr u8 kValidRam = 0x80;
    // An alarm byte with both top bits set matches any value.
    static constexpr u8 kAlarmDontCare = 0xC0;

    static constexpr u8 kPowerOnStatusA = 0x26;  // 32.768 kHz, 1024 Hz periodic rate
    static constexpr u8 kPowerOnStatusB = 0x02;  // 24-hour, BCD

    // The clock and the lines must outlive the device. The time starts at the Unix epoch at the
    // clock's now, until set_wall_clock.
    CmosRtc(const GuestClock& clock, IrqLines& irqs);

    // Byte registers: a wider access reaches its bytes one after the other (as the ISA bus splits
    // it: a word write at 0x70 selects the index, then writes the data); bytes that fall on ports
    // the RTC does not serve read all-ones and are not written.
    virt::DeviceOutcome io_read(u16 port, u8 size, u32& value, virt::DeviceHost& host) override;
    virt::DeviceOutcome io_write(u16 port, u8 size, u32 value, virt::DeviceHost& host) override;

    // The host's time: `unix_seconds` at guest TSC `at_guest_tsc`, a second boundary. The offset
    // the guest set stays.
    void set_wall_clock(u64 unix_seconds, u64 at_guest_tsc);
    // Fills the memory-size bytes for `bytes_below_4g` of RAM below 4 GiB and `bytes_above_4g`
    // from 4 GiB, as QEMU does for SeaBIOS.
    void set_memory_size(u64 bytes_below_4g, u64 bytes_above_4g = 0);

    // What a machine reset leaves alone: the RTC and its RAM are battery-backed, so its 128 bytes
    // and the time the guest set stay (as on a PC, and in QEMU's model). The RTC of a PC built
    // again at a reset takes them from the one before (battery, then restore_battery, which does
    // what the chip's RESET pin does: PIE, AIE, UIE and SQWE cleared, and the flags of status C).
    struct Battery {
        u8 ram[kRamSize];
        i64 guest_offset;
    };
    Battery battery() const;
    void restore_battery(const Battery& kept);

    bool nmi_masked() const { return nmi_masked_; }
    // The guest TSC of the next event that would raise IRQ 8, or kNoDeadline.
    u64 deadline() const { return deadline_; }
    // Sets the flags of the events due at `now` (once each, however late) and raises IRQ 8 if an
    // enabled one is set.
    void advance(u64 now);

private:
    struct Moment {
        i64 seconds;      // the RTC's time, seconds since the Unix epoch
        u64 into_second;  // TSC ticks since that second's boundary
    };

    u8 read_byte(u16 port);
    void write_byte(u16 port, u8 value);
    u8 read_register(u8 index);
    void write_register(u8 index, u8 value);
    void write_status(u8 index, u8 value);

    u64 tsc_hz() const;
    Moment time_at(u64 now) const;
    bool frozen() const;
    bool periodic_runs() const;
    u8 time_register(u8 index, i64 seconds) const;
    void snapshot(u64 now);
    void commit(u64 now);
    bool uip(u64 now) const;

    void sync(u64 now);
    void update_irq();
    bool alarm_between(i64 from, i64 to) const;
    bool alarm_satisfiable() const;
    u64 next_alarm_delay(i64 seconds) const;
    u64 periodic_deadline(u64 after) const;
    u64 alarm_deadline(u64 after) const;
    u64 compute_deadline() const;
    void refresh_deadline() { deadline_ = compute_deadline(); }

    const GuestClock& clock_;
    IrqLines& irqs_;
    u8 ram_[kRamSize] = {};  // CMOS bytes; the time registers' hold their values only while frozen
    u8 index_ = 0;
    bool nmi_masked_ = false;
    i64 host_seconds_ = 0;  // the host's time at host_tsc_
    u64 host_tsc_ = 0;
    i64 guest_offset_ = 0;  // the RTC's time minus the host's
    u64 synced_ = 0;        // status C holds every event up to this guest TSC
    bool irq_high_ = false;
    u64 deadline_ = kNoDeadline;  // deadline(), worked out again after every change
};

}  // namespace nestor::pc
