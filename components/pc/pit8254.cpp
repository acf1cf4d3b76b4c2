#include "nestor/pc/pit8254.hpp"

#include "nestor/pc/byte_ports.hpp"

namespace nestor::pc {

namespace {

using u128 = unsigned __int128;

constexpr u64 kFullCount = 0x10000;  // a count of 0 counts 65536

u64 saturate(u128 value) { return value > ~u64{0} ? ~u64{0} : static_cast<u64>(value); }

u64 add_saturating(u64 a, u64 b) {
    u64 sum;
    return checked_add(a, b, sum) ? sum : ~u64{0};
}

// floor(tsc * kInputHz / hz), whole seconds and the rest apart: with hz below 2^42 every product
// fits (the seconds' in 128 bits, the rest's in 64), and no division needs more than 64 bits (the
// freestanding kernel has no 128-bit division).
u64 ticks_in(u64 tsc, u64 hz) {
    u128 ticks = static_cast<u128>(tsc / hz) * Pit8254::kInputHz + (tsc % hz) * Pit8254::kInputHz / hz;
    return saturate(ticks);
}

// ceil(ticks * hz / kInputHz): the first TSC delta at which `ticks` input ticks have passed.
u64 tsc_for(u64 ticks, u64 hz) {
    constexpr u64 k = Pit8254::kInputHz;
    u128 tsc = static_cast<u128>(ticks / k) * hz + ((ticks % k) * hz + k - 1) / k;
    return saturate(tsc);
}

// The refresh toggle's phase: floor(now * kInputHz / hz) / kRefreshTicks is odd. Computed modulo
// one refresh cycle so that it never saturates.
bool refresh_phase(u64 now, u64 hz) {
    constexpr u64 cycle = 2 * Pit8254::kRefreshTicks;
    u64 ticks = (now / hz % cycle) * (Pit8254::kInputHz % cycle) + (now % hz) * Pit8254::kInputHz / hz;
    return ticks % cycle >= Pit8254::kRefreshTicks;
}

bool triggered_mode(u8 mode) { return mode == 1 || mode == 5; }
bool periodic_mode(u8 mode) { return mode == 2 || mode == 3; }

}  // namespace

Pit8254::Pit8254(const GuestClock& clock, IrqLines& irqs) : clock_(clock), irqs_(irqs) {
    channels_[2].gate = false;  // port 0x61 starts with channel 2's gate low
}

u64 Pit8254::tsc_hz() const { return timer_tsc_hz(clock_); }

// ---- the ports ----

virt::DeviceOutcome Pit8254::io_read(u16 port, u8 size, u32& value, virt::DeviceHost&) {
    value = read_bytes(port, size, [this](u16 at) { return read_byte(at); });
    return {};
}

virt::DeviceOutcome Pit8254::io_write(u16 port, u8 size, u32 value, virt::DeviceHost&) {
    write_bytes(port, size, value, [this](u16 at, u8 byte) { write_byte(at, byte); });
    return {};
}

u8 Pit8254::read_byte(u16 port) {
    if (port == kSystemControlPort) return read_system_control();
    u16 offset = static_cast<u16>(port - kFirstPort);
    if (offset < kChannels) return read_counter(channels_[offset]);
    return 0xFF;  // the control word is write-only (the 8254 floats the bus), or not our port
}

void Pit8254::write_byte(u16 port, u8 value) {
    if (port == kSystemControlPort) return write_system_control(value);
    u16 offset = static_cast<u16>(port - kFirstPort);
    if (offset < kChannels) return write_counter(static_cast<u8>(offset), value);
    if (port == kControlPort) write_control(value);
}

// ---- counters ----

u8 Pit8254::read_counter(Channel& channel) {
    if (channel.status_latched) {
        channel.status_latched = false;
        return channel.latched_status;
    }
    if (channel.count_latched) {
        u8 high = static_cast<u8>(channel.latched_count >> 8);
        u8 low = static_cast<u8>(channel.latched_count);
        switch (channel.latch_flip) {
        case Flip::word_low: channel.latch_flip = Flip::word_high; return low;
        case Flip::word_high: channel.count_latched = false; return high;
        case Flip::high: channel.count_latched = false; return high;
        case Flip::low: channel.count_latched = false; return low;
        }
    }
    u16 count = counter_at(channel, clock_.now());
    switch (channel.read_flip) {
    case Flip::word_low: channel.read_flip = Flip::word_high; return static_cast<u8>(count);
    case Flip::word_high: channel.read_flip = Flip::word_low; return static_cast<u8>(count >> 8);
    case Flip::high: return static_cast<u8>(count >> 8);
    case Flip::low: return static_cast<u8>(count);
    }
    return 0xFF;
}

void Pit8254::write_counter(u8 index, u8 value) {
    Channel& channel = channels_[index];
    switch (channel.write_flip) {
    case Flip::low: return load_count(index, value);
    case Flip::high: return load_count(index, u32{value} << 8);
    case Flip::word_low:
        channel.low_byte = value;
        channel.write_flip = Flip::word_high;
        if (channel.mode == 0) {
            // Mode 0: the first byte of a new count stops the count and sets OUT low.
            channel.loaded = false;
            channel.counting = false;
            if (index == 0) next_irq_ = kNoDeadline;
        }
        return;
    case Flip::word_high:
        channel.write_flip = Flip::word_low;
        return load_count(index, channel.low_byte | u32{value} << 8);
    }
}

void Pit8254::load_count(u8 index, u32 value) {
    Channel& channel = channels_[index];
    if (channel.access == 0) return;  // no control word yet: the counter takes nothing
    u64 now = clock_.now();
    channel.reload = value == 0 ? kFullCount : value;
    channel.loaded = true;
    if (triggered_mode(channel.mode)) {
        // The count waits for the gate's next rising edge; a running one-shot carries on.
        channel.transfer_pending = true;
    } else {
        channel.count = channel.reload;
        channel.transfer = now;
        channel.start = now;
        channel.held_ticks = 0;
        channel.counting = channel.gate;
    }
    if (index == 0) rearm(now);
}

void Pit8254::write_control(u8 value) {
    if ((value & kReadBack) == kReadBack) return read_back(value);
    u8 index = value >> 6;
    Channel& channel = channels_[index];
    u8 access = value & kAccessWord;
    if (access == kAccessLatch) return latch_count(channel, clock_.now());

    u8 mode = (value >> 1) & 7;
    channel.mode = mode >= 6 ? static_cast<u8>(mode - 4) : mode;  // 6 and 7 are 2 and 3
    channel.access = access;
    Flip first = access == kAccessLow ? Flip::low : access == kAccessHigh ? Flip::high : Flip::word_low;
    channel.read_flip = first;
    channel.write_flip = first;
    channel.count_latched = false;
    channel.status_latched = false;
    channel.loaded = false;
    channel.triggered = false;
    channel.counting = false;
    channel.transfer_pending = false;
    channel.held_ticks = 0;
    if (index == 0) next_irq_ = kNoDeadline;
}

void Pit8254::latch_count(Channel& channel, u64 now) {
    if (channel.count_latched) return;  // a second latch before the first is read is ignored
    channel.count_latched = true;
    channel.latched_count = counter_at(channel, now);
    channel.latch_flip = channel.access == kAccessHigh   ? Flip::high
                         : channel.access == kAccessWord ? Flip::word_low
                                                         : Flip::low;
}

void Pit8254::read_back(u8 value) {
    u64 now = clock_.now();
    for (u8 index = 0; index < kChannels; ++index) {
        if ((value & (2u << index)) == 0) continue;
        Channel& channel = channels_[index];
        if ((value & kReadBackNoCount) == 0) latch_count(channel, now);
        if ((value & kReadBackNoStatus) == 0 && !channel.status_latched) {
            channel.status_latched = true;
            channel.latched_status = status_at(channel, now);
        }
    }
}

// ---- the counting element ----

u64 Pit8254::elapsed(const Channel& channel, u64 now) const {
    if (!channel.counting || now <= channel.start) return channel.held_ticks;
    return add_saturating(channel.held_ticks, ticks_in(now - channel.start, tsc_hz()));
}

bool Pit8254::out_at(const Channel& channel, u64 now) const {
    if (!channel.loaded) return channel.mode != 0;  // a control word sets OUT: low in mode 0, else high
    u64 n = channel.count;
    u64 d = elapsed(channel, now);
    switch (channel.mode) {
    case 0: return d >= n;
    case 1: return !channel.triggered || d >= n;
    case 2: return !channel.gate || n < 2 || d % n != n - 1;  // low for the tick before each reload
    case 3: return !channel.gate || d % n < (n + 1) / 2;      // high for the first (longer) half
    case 4: return d != n;                                    // low for the tick after terminal count
    case 5: return !channel.triggered || d != n;
    default: return true;
    }
}

u16 Pit8254::counter_at(const Channel& channel, u64 now) const {
    if (!channel.loaded || (triggered_mode(channel.mode) && !channel.triggered))
        return static_cast<u16>(channel.reload);
    u64 n = channel.count;
    u64 d = elapsed(channel, now);
    if (channel.mode == 2) return static_cast<u16>(n - d % n);
    if (channel.mode == 3) {
        // Counts down by two through each half: from n (even) or n - 1 (odd).
        u64 position = d % n;
        u64 high_half = (n + 1) / 2;
        u64 into_half = position < high_half ? position : position - high_half;
        return static_cast<u16>(n - n % 2 - 2 * into_half);
    }
    return static_cast<u16>(n - d);  // one-shots keep counting down through 0, modulo 65536
}

u8 Pit8254::status_at(const Channel& channel, u64 now) const {
    // Null count: the count written has not reached the counting element (one input tick later,
    // or at the trigger in modes 1 and 5).
    bool null_count = !channel.loaded || channel.transfer_pending || now < channel.transfer ||
                      ticks_in(now - channel.transfer, tsc_hz()) == 0;
    return static_cast<u8>((out_at(channel, now) ? kStatusOut : 0) | (null_count ? kStatusNullCount : 0) |
                           channel.access | channel.mode << 1);
}

// The input tick (counted as elapsed() does) of OUT's first rising edge after tick `ticks`.
bool Pit8254::next_edge(const Channel& channel, u64 ticks, u64& edge) const {
    if (!channel.counting) return false;
    u64 n = channel.count;
    switch (channel.mode) {
    case 0:
    case 1: edge = n; return ticks < edge;
    case 4:
    case 5: edge = n + 1; return ticks < edge;
    case 2:
    case 3: edge = add_saturating(ticks - ticks % n, n); return ticks < edge;
    default: return false;
    }
}

// ---- the gate and port 0x61 ----

void Pit8254::set_gate(Channel& channel, bool high) {
    if (channel.gate == high) return;
    u64 now = clock_.now();
    channel.gate = high;
    if (triggered_mode(channel.mode)) {
        if (!high || !channel.loaded) return;
        // A rising edge (re)starts the one-shot with the count last written.
        channel.count = channel.reload;
        channel.triggered = true;
        channel.transfer_pending = false;
        channel.transfer = now;
        channel.counting = true;
        channel.start = now;
        channel.held_ticks = 0;
        return;
    }
    if (!channel.loaded) return;
    if (!high) {
        // Low stops the count where it is (modes 2 and 3 also force OUT high).
        channel.held_ticks = elapsed(channel, now);
        channel.counting = false;
        return;
    }
    // High resumes modes 0 and 4 where they stopped, and restarts modes 2 and 3 from their count.
    if (periodic_mode(channel.mode)) channel.held_ticks = 0;
    channel.counting = true;
    channel.start = now;
}

u8 Pit8254::read_system_control() const {
    const Channel& channel = channels_[2];
    u64 now = clock_.now();
    return static_cast<u8>((channel.gate ? kGate2 : 0) | (speaker_data_ ? kSpeakerData : 0) | nmi_disables_ |
                           (refresh_phase(now, tsc_hz()) ? kRefresh : 0) | (out_at(channel, now) ? kOut2 : 0) |
                           (io_check_ ? kIochk : 0));
}

void Pit8254::write_system_control(u8 value) {
    speaker_data_ = (value & kSpeakerData) != 0;
    nmi_disables_ = value & (kSerrDisable | kIochkDisable);
    if ((value & kIochkDisable) != 0) io_check_ = false;
    set_gate(channels_[2], (value & kGate2) != 0);
}

bool Pit8254::io_channel_check() {
    if ((nmi_disables_ & kIochkDisable) != 0) return false;
    io_check_ = true;
    return true;
}

// ---- channel 0's interrupt ----

void Pit8254::rearm(u64 now) {
    const Channel& channel = channels_[0];
    u64 edge;
    if (!next_edge(channel, elapsed(channel, now), edge)) {
        next_irq_ = kNoDeadline;
        return;
    }
    // counting: edge > elapsed(now) >= held_ticks, and the deadline lies after now.
    next_irq_ = add_saturating(channel.start, tsc_for(edge - channel.held_ticks, tsc_hz()));
}

void Pit8254::advance(u64 now) {
    if (next_irq_ == kNoDeadline || now < next_irq_) return;
    irqs_.set_level(kIrqLine, true);
    irqs_.set_level(kIrqLine, false);
    rearm(now);
    // At most every kMinTimerPeriodUs: a count of 2 would otherwise ask for a timer every 1.7 us.
    u64 earliest = add_saturating(now, tsc_hz() / (1000000 / kMinTimerPeriodUs));
    if (next_irq_ != kNoDeadline && next_irq_ < earliest) next_irq_ = earliest;
}

}  // namespace nestor::pc
