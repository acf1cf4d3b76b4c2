// The Intel 8254 programmable interval timer of the PC (ports 0x40-0x43) and system control port
// B (port 0x61), which gates its channel 2 and shows that channel's OUT. Everything follows the
// guest's TSC: a channel's count and OUT are computed from the time since it was loaded, so
// nothing runs between accesses, and channel 0's interrupt is a deadline the platform arms a
// timer for (deadline(), advance()).
//
// Modelled after the datasheet (Intel 82C54), with these choices:
// - BCD counting is refused: a control word's BCD bit is dropped (the channel counts in binary,
//   and the read-back status shows bit 0 clear), as no PC software counts in BCD.
// - A new count written in modes 2 and 3 restarts the period at once (as QEMU and KVM do), not
//   at the end of the current period.
// - Channel 0's OUT reaches IRQ line 0 as a pulse (high, then low) at each rising edge of OUT:
//   mode 0 at terminal count, modes 2 and 3 at each period's start, mode 4 when its strobe ends.
//   The gates of channels 0 and 1 are tied high (as on the PC), so modes 1 and 5 never start
//   there.
// - Until its first control word a channel ignores counts written to it, so channel 0 raises
//   nothing before the guest (its BIOS or its kernel) programs it.
// - The TSC rate is taken as at least 1 kHz and at most 2^32 kHz (clock.tsc_khz()).
// - Missed ticks are coalesced: a periodic channel 0 that fell many periods behind raises IRQ 0
//   once and re-arms for the first period boundary after now (the boundaries stay on the grid the
//   counter reads follow), so the next deadline is always at least one TSC tick ahead.
#pragma once

#include "nestor/pc/links.hpp"
#include "nestor/virt/device_bus.hpp"

namespace nestor::pc {

class Pit8254 final : public virt::Device {
public:
    // The counters and the control word: register kPortCount ports from kFirstPort.
    static constexpr u16 kFirstPort = 0x40;  // channel n at 0x40 + n
    static constexpr u16 kPortCount = 4;
    static constexpr u16 kControlPort = 0x43;
    // System control port B: register this one port too.
    static constexpr u16 kSystemControlPort = 0x61;

    static constexpr u64 kInputHz = 1193182;  // the PIT's input clock
    static constexpr u8 kIrqLine = 0;         // channel 0's OUT
    static constexpr u8 kChannels = 3;

    // Port 0x61.
    static constexpr u8 kGate2 = 0x01;         // channel 2's gate (read/write)
    static constexpr u8 kSpeakerData = 0x02;   // speaker enable (read/write; no sound is made)
    static constexpr u8 kSerrDisable = 0x04;   // PCI SERR# NMI disabled (read/write; no device raises SERR#)
    static constexpr u8 kIochkDisable = 0x08;  // IOCHK# NMI disabled (read/write); setting it clears kIochk
    static constexpr u8 kIochk = 0x40;         // IOCHK# was asserted (read-only): the NMI's reason
    static constexpr u8 kRefresh = 0x10;       // DRAM refresh toggle (read-only)
    static constexpr u8 kOut2 = 0x20;          // channel 2's OUT (read-only)
    // The refresh bit flips every 18 input ticks (15.085 us), as the PC's refresh request does.
    static constexpr u64 kRefreshTicks = 18;

    // Control word fields (port 0x43).
    static constexpr u8 kReadBack = 0xC0;          // channel field 3: the read-back command
    static constexpr u8 kAccessLatch = 0x00;       // access field 0: the counter-latch command
    static constexpr u8 kAccessLow = 0x10;         // low byte only
    static constexpr u8 kAccessHigh = 0x20;        // high byte only
    static constexpr u8 kAccessWord = 0x30;        // low byte, then high byte
    static constexpr u8 kReadBackNoCount = 0x20;   // read-back: do not latch the counts
    static constexpr u8 kReadBackNoStatus = 0x10;  // read-back: do not latch the status
    // Read-back status byte.
    static constexpr u8 kStatusOut = 0x80;
    static constexpr u8 kStatusNullCount = 0x40;

    // The clock and the lines must outlive the device.
    Pit8254(const GuestClock& clock, IrqLines& irqs);

    // Byte registers: a wider access reaches its bytes one after the other (as the ISA bus splits
    // it); bytes that fall on ports the PIT does not serve read all-ones and are not written.
    virt::DeviceOutcome io_read(u16 port, u8 size, u32& value, virt::DeviceHost& host) override;
    virt::DeviceOutcome io_write(u16 port, u8 size, u32 value, virt::DeviceHost& host) override;

    // The guest TSC of channel 0's next IRQ 0 edge, or kNoDeadline.
    u64 deadline() const { return next_irq_; }
    // Raises IRQ 0 if its deadline is due at `now` (once, however late), and re-arms.
    void advance(u64 now);

    // IOCHK# asserted on the ISA bus: port 0x61 shows it (kIochk) until the guest sets
    // kIochkDisable. True: the NMI goes out (kIochkDisable clear); the CMOS mask gates it next.
    bool io_channel_check();

private:
    enum class Flip : u8 { low, high, word_low, word_high };  // which byte an access moves next

    struct Channel {
        u8 mode = 0;
        u8 access = 0;                  // kAccessLow/High/Word, 0 before the first control word
        bool gate = true;               // tied high, except channel 2's (port 0x61)
        u32 count = 0x10000;            // the count the channel runs with (1..65536)
        u32 reload = 0x10000;           // the count last written (modes 1 and 5 take it at a trigger)
        bool loaded = false;            // a count was written since the control word
        bool triggered = false;         // modes 1 and 5: a gate edge started the count
        bool counting = false;          // its counting element runs
        bool transfer_pending = false;  // modes 1 and 5: the count waits for a trigger (null count)
        u64 start = 0;                  // guest TSC when the counting element (re)started
        u64 held_ticks = 0;             // ticks counted before `start` (modes 0 and 4 paused by the gate)
        u64 transfer = 0;               // guest TSC when the count was written or triggered
        Flip read_flip = Flip::low;
        Flip write_flip = Flip::low;
        u8 low_byte = 0;  // word writes: the low byte, waiting for the high one
        Flip latch_flip = Flip::low;
        bool count_latched = false;
        u16 latched_count = 0;
        bool status_latched = false;
        u8 latched_status = 0;
    };

    u8 read_byte(u16 port);
    void write_byte(u16 port, u8 value);
    u8 read_counter(Channel& channel);
    void write_counter(u8 index, u8 value);
    void write_control(u8 value);
    void read_back(u8 value);
    void latch_count(Channel& channel, u64 now);
    void load_count(u8 index, u32 value);
    void set_gate(Channel& channel, bool high);
    u8 read_system_control() const;
    void write_system_control(u8 value);
    void rearm(u64 now);

    u64 tsc_hz() const;
    u64 elapsed(const Channel& channel, u64 now) const;
    bool out_at(const Channel& channel, u64 now) const;
    u16 counter_at(const Channel& channel, u64 now) const;
    u8 status_at(const Channel& channel, u64 now) const;
    bool next_edge(const Channel& channel, u64 ticks, u64& edge) const;

    const GuestClock& clock_;
    IrqLines& irqs_;
    Channel channels_[kChannels];
    bool speaker_data_ = false;
    u8 nmi_disables_ = 0;  // kSerrDisable, kIochkDisable
    bool io_check_ = false;
    u64 next_irq_ = kNoDeadline;
};

}  // namespace nestor::pc
