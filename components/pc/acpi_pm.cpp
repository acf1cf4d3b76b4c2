#include "nestor/pc/acpi_pm.hpp"

#include "nestor/pc/byte_ports.hpp"

namespace nestor::pc {

namespace {

using u128 = unsigned __int128;

// n / d for a quotient known to fit 64 bits, by shift and subtract: the freestanding kernel has
// no __udivti3, and this path runs only for divisors beyond any real TSC.
u64 divide_wide(u128 n, u64 d) {
    u128 remainder = 0;
    u64 quotient = 0;
    for (int bit = 127; bit >= 0; --bit) {
        remainder = (remainder << 1) | ((n >> bit) & 1);
        if (remainder >= d) {
            remainder -= d;
            quotient |= u64{1} << (bit & 63);
        }
    }
    return quotient;
}

// floor(value * multiplier / divisor) modulo 2^64, exactly: the 128-bit product split as
// (q * divisor + r) * multiplier, whose second part's quotient is below `multiplier`.
u64 scale(u64 value, u64 multiplier, u64 divisor) {
    u64 whole = (value / divisor) * multiplier;
    u128 rest = static_cast<u128>(value % divisor) * multiplier;
    u64 part = (rest >> 64) == 0 ? static_cast<u64>(rest) / divisor : divide_wide(rest, divisor);
    return whole + part;
}

constexpr u8 byte_of(u64 value, u32 index) { return static_cast<u8>(value >> (8 * index)); }

constexpr u16 with_byte(u16 value, u32 index, u8 byte) {
    u16 shift = static_cast<u16>(8 * index);
    return static_cast<u16>((value & ~(0xFFu << shift)) | (u32{byte} << shift));
}

constexpr bool valid_width(u8 size) { return size == 1 || size == 2 || size == 4; }

}  // namespace

AcpiPm::AcpiPm(const GuestClock& clock, IrqLines& irqs, u16 base) : clock_(clock), irqs_(irqs), base_(base) {
    timer_msb_epoch_ = timer_ticks() >> 31;
}

u64 AcpiPm::timer_ticks() const {
    u64 hz;
    if (__builtin_mul_overflow(clock_.tsc_khz(), u64{1000}, &hz) || hz == 0) return 0;
    return scale(clock_.now(), kPmTimerHz, hz);
}

// TMR_STS is set each time bit 31 of the (32-bit) timer toggles: whenever the count of 2^31
// tick periods has moved on since the guest last cleared it.
u16 AcpiPm::status(const Snapshot& now) const {
    return (now.ticks >> 31) != timer_msb_epoch_ ? kPm1TimerStatus : u16{0};
}

u16 AcpiPm::control() const { return static_cast<u16>(control_ | kPm1SciEnable); }

u8 AcpiPm::read_byte(u32 offset, const Snapshot& now) const {
    switch (offset) {
    case kPm1EventOffset:
    case kPm1EventOffset + 1: return byte_of(status(now), offset - kPm1EventOffset);
    case kPm1EventOffset + 2:
    case kPm1EventOffset + 3: return byte_of(enable_, offset - kPm1EventOffset - 2);
    case kPm1ControlOffset:
    case kPm1ControlOffset + 1: return byte_of(control(), offset - kPm1ControlOffset);
    case kPmTimerOffset:
    case kPmTimerOffset + 1:
    case kPmTimerOffset + 2:
    case kPmTimerOffset + 3: return byte_of(now.ticks, offset - kPmTimerOffset);
    default: return 0xFF;
    }
}

bool AcpiPm::write_byte(u32 offset, u8 byte, const Snapshot& now) {
    switch (offset) {
    case kPm1EventOffset:
    case kPm1EventOffset + 1: clear_status(with_byte(0, offset - kPm1EventOffset, byte), now); return true;
    case kPm1EventOffset + 2:
    case kPm1EventOffset + 3:
        enable_ = with_byte(enable_, offset - kPm1EventOffset - 2, byte) & kPm1EnableMask;
        return true;
    case kPm1ControlOffset:
    case kPm1ControlOffset + 1: return write_control(with_byte(control_, offset - kPm1ControlOffset, byte));
    default: return true;  // the timer is read-only; the hole and beyond hold nothing
    }
}

void AcpiPm::clear_status(u16 bits, const Snapshot& now) {
    if (bits & kPm1TimerStatus) timer_msb_epoch_ = now.ticks >> 31;
}

// GBL_RLS (an SMI to firmware there is none of) and SLP_EN are write-only; SCI_EN cannot be
// cleared. SLP_EN with S5's type powers off; other sleep types are not supported (the DSDT
// names none) and leave the guest running.
bool AcpiPm::write_control(u16 value) {
    control_ = value & (kPm1BusMasterReload | kPm1SleepTypeMask);
    u16 sleep_type = (value & kPm1SleepTypeMask) >> kPm1SleepTypeShift;
    return !((value & kPm1SleepEnable) && sleep_type == kSleepTypeS5);
}

virt::DeviceOutcome AcpiPm::io_read(u16 port, u8 size, u32& value, virt::DeviceHost&) {
    if (!valid_width(size)) return {};
    Snapshot now{timer_ticks()};
    value = read_bytes(port, size, [&](u16 at) { return read_byte(static_cast<u16>(at - base_), now); });
    return {};
}

virt::DeviceOutcome AcpiPm::io_write(u16 port, u8 size, u32 value, virt::DeviceHost&) {
    if (!valid_width(size)) return {};
    Snapshot now{timer_ticks()};
    bool powered_off = false;
    write_bytes(port, size, value,
                [&](u16 at, u8 byte) { powered_off |= !write_byte(static_cast<u16>(at - base_), byte, now); });
    return powered_off ? virt::DeviceOutcome::end_guest(virt::StopReason::shutdown, 0) : virt::DeviceOutcome{};
}

}  // namespace nestor::pc
