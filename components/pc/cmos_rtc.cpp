#include "nestor/pc/cmos_rtc.hpp"

#include "nestor/pc/byte_ports.hpp"

namespace nestor::pc {

namespace {

using u128 = unsigned __int128;

constexpr i64 kSecondsPerDay = 86400;
constexpr u64 kTimeBaseHz = 32768;  // the periodic interrupt's time base
constexpr u32 kAlarmSearchSteps = 512;

struct Date {
    i64 year;
    u32 month;  // 1..12
    u32 day;    // 1..31
};

constexpr i64 floor_div(i64 a, i64 b) { return a / b - (a % b != 0 && a < 0 ? 1 : 0); }

// Days since 1970-01-01 of a proleptic Gregorian date, and back (H. Hinnant's algorithms).
constexpr i64 days_from_date(i64 year, u32 month, u32 day) {
    year -= month <= 2 ? 1 : 0;
    i64 era = floor_div(year, 400);
    u32 year_of_era = static_cast<u32>(year - era * 400);
    u32 day_of_year = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
    u32 day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    return era * 146097 + day_of_era - 719468;
}

Date date_from_days(i64 days) {
    days += 719468;
    i64 era = floor_div(days, 146097);
    u32 day_of_era = static_cast<u32>(days - era * 146097);
    u32 year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
    u32 day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    u32 shifted_month = (5 * day_of_year + 2) / 153;
    u32 day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    u32 month = shifted_month < 10 ? shifted_month + 3 : shifted_month - 9;
    return {year_of_era + era * 400 + (month <= 2 ? 1 : 0), month, day};
}

// The RTC counts years 0000 to 9999 (century and year registers).
constexpr i64 kMinSeconds = days_from_date(0, 1, 1) * kSecondsPerDay;
constexpr i64 kMaxSeconds = days_from_date(9999, 12, 31) * kSecondsPerDay + kSecondsPerDay - 1;

i64 clamp_seconds(i64 seconds) {
    return seconds < kMinSeconds ? kMinSeconds : seconds > kMaxSeconds ? kMaxSeconds : seconds;
}

u32 clamp(u32 value, u32 low, u32 high) { return value < low ? low : value > high ? high : value; }

u64 saturate(u128 value) { return value > ~u64{0} ? ~u64{0} : static_cast<u64>(value); }

u64 add_saturating(u64 a, u64 b) {
    u64 sum;
    return checked_add(a, b, sum) ? sum : ~u64{0};
}

// Cycles of the 32.768 kHz time base by guest TSC `tsc`: floor(tsc * 32768 / hz), whole seconds
// and the rest apart so that nothing overflows and no division needs more than 64 bits.
u128 time_base_cycles(u64 tsc, u64 hz) {
    return static_cast<u128>(tsc / hz) * kTimeBaseHz + (tsc % hz) * kTimeBaseHz / hz;
}

// ceil(cycles * hz / 32768): the first guest TSC by which `cycles` have passed.
u64 tsc_for_cycles(u128 cycles, u64 hz) {
    static_assert(kTimeBaseHz == u64{1} << 15);
    u128 whole = (cycles >> 15) * hz;
    u64 rest = static_cast<u64>(cycles & (kTimeBaseHz - 1)) * hz;
    return saturate(whole + (rest + kTimeBaseHz - 1) / kTimeBaseHz);
}

bool is_time_register(u8 index) {
    return index == CmosRtc::kSeconds || index == CmosRtc::kMinutes || index == CmosRtc::kHours ||
           index == CmosRtc::kDayOfWeek || index == CmosRtc::kDayOfMonth || index == CmosRtc::kMonth ||
           index == CmosRtc::kYear || index == CmosRtc::kCentury;
}

}  // namespace

CmosRtc::CmosRtc(const GuestClock& clock, IrqLines& irqs) : clock_(clock), irqs_(irqs) {
    ram_[kStatusA] = kPowerOnStatusA;
    ram_[kStatusB] = kPowerOnStatusB;
    host_tsc_ = clock.now();
    synced_ = host_tsc_;
    refresh_deadline();
}

u64 CmosRtc::tsc_hz() const { return timer_tsc_hz(clock_); }

// ---- the ports ----

virt::DeviceOutcome CmosRtc::io_read(u16 port, u8 size, u32& value, virt::DeviceHost&) {
    value = read_bytes(port, size, [this](u16 at) { return read_byte(at); });
    refresh_deadline();  // reading status C clears its flags
    return {};
}

virt::DeviceOutcome CmosRtc::io_write(u16 port, u8 size, u32 value, virt::DeviceHost&) {
    write_bytes(port, size, value, [this](u16 at, u8 byte) { write_byte(at, byte); });
    refresh_deadline();
    return {};
}

u8 CmosRtc::read_byte(u16 port) {
    if (port == kDataPort) return read_register(index_);
    return 0xFF;  // the index port is write-only
}

void CmosRtc::write_byte(u16 port, u8 value) {
    if (port == kIndexPort) {
        index_ = value & ~kNmiMask;  // 128 bytes: the index wraps to 7 bits
        nmi_masked_ = (value & kNmiMask) != 0;
    } else if (port == kDataPort) {
        write_register(index_, value);
    }
}

// ---- registers ----

u8 CmosRtc::read_register(u8 index) {
    u64 now = clock_.now();
    switch (index) {
    case kStatusA: return static_cast<u8>((ram_[kStatusA] & ~kUpdateInProgress) | (uip(now) ? kUpdateInProgress : 0));
    case kStatusC: {
        sync(now);
        u8 flags = ram_[kStatusC];
        ram_[kStatusC] = 0;
        update_irq();
        return flags;
    }
    case kStatusD: return kValidRam;
    default:
        if (is_time_register(index) && !frozen()) return time_register(index, time_at(now).seconds);
        return ram_[index];
    }
}

void CmosRtc::write_register(u8 index, u8 value) {
    u64 now = clock_.now();
    sync(now);  // every event so far, under the settings it happened with
    if (index == kStatusA || index == kStatusB) return write_status(index, value);
    if (index == kStatusC || index == kStatusD) return;  // read-only
    if (is_time_register(index) && !frozen()) {
        // A running clock takes the new value and counts on from it.
        snapshot(now);
        ram_[index] = value;
        return commit(now);
    }
    ram_[index] = value;
}

void CmosRtc::write_status(u8 index, u8 value) {
    u64 now = clock_.now();
    bool was_frozen = frozen();
    if (index == kStatusA) {
        ram_[kStatusA] = value & ~kUpdateInProgress;
    } else {
        if (value & kSet) value &= ~kUpdateEnable;
        ram_[kStatusB] = value;
    }
    if (!was_frozen && frozen()) snapshot(now);
    if (was_frozen && !frozen()) commit(now);
    update_irq();
}

// ---- time ----

CmosRtc::Moment CmosRtc::time_at(u64 now) const {
    u64 hz = tsc_hz();
    i64 host;
    u64 into;
    if (now >= host_tsc_) {
        u64 since = now - host_tsc_;
        host = host_seconds_ + static_cast<i64>(since / hz);
        into = since % hz;
    } else {
        u64 before = host_tsc_ - now;
        u64 rest = before % hz;
        host = host_seconds_ - static_cast<i64>(before / hz) - (rest != 0 ? 1 : 0);
        into = rest != 0 ? hz - rest : 0;
    }
    return {clamp_seconds(host + guest_offset_), into};
}

bool CmosRtc::frozen() const {
    return (ram_[kStatusB] & kSet) != 0 || (ram_[kStatusA] & kDividerMask) > kDividerNormal;
}

bool CmosRtc::periodic_runs() const {
    return (ram_[kStatusA] & kRateMask) != 0 && (ram_[kStatusA] & kDividerMask) <= kDividerNormal;
}

bool CmosRtc::uip(u64 now) const {
    if (frozen()) return false;
    u64 hz = tsc_hz();
    u64 window = (hz * kUpdateInProgressUs + 999999) / 1000000;
    return time_at(now).into_second >= hz - window;
}

namespace {

u8 encode(u32 value, bool binary) { return static_cast<u8>(binary ? value : (value / 10) << 4 | value % 10); }
u32 decode(u8 raw, bool binary) { return binary ? raw : (raw >> 4) * 10u + (raw & 0x0F); }

u8 encode_hour(u32 hour, u8 status_b) {
    bool binary = (status_b & CmosRtc::kBinary) != 0;
    if (status_b & CmosRtc::k24Hour) return encode(hour, binary);
    u32 twelve = hour % 12 == 0 ? 12 : hour % 12;
    return static_cast<u8>(encode(twelve, binary) | (hour >= 12 ? CmosRtc::kPm : 0));
}

u32 decode_hour(u8 raw, u8 status_b) {
    bool binary = (status_b & CmosRtc::kBinary) != 0;
    if (status_b & CmosRtc::k24Hour) return clamp(decode(raw, binary), 0, 23);
    u32 twelve = clamp(decode(raw & ~CmosRtc::kPm, binary), 1, 12);
    return twelve % 12 + ((raw & CmosRtc::kPm) ? 12 : 0);
}

}  // namespace

u8 CmosRtc::time_register(u8 index, i64 seconds) const {
    bool binary = (ram_[kStatusB] & kBinary) != 0;
    i64 days = floor_div(seconds, kSecondsPerDay);
    u32 of_day = static_cast<u32>(seconds - days * kSecondsPerDay);
    Date date = date_from_days(days);
    switch (index) {
    case kSeconds: return encode(of_day % 60, binary);
    case kMinutes: return encode(of_day / 60 % 60, binary);
    case kHours: return encode_hour(of_day / 3600, ram_[kStatusB]);
    case kDayOfWeek: return encode(static_cast<u32>((days % 7 + 11) % 7) + 1, binary);  // 1970-01-01: Thursday
    case kDayOfMonth: return encode(date.day, binary);
    case kMonth: return encode(date.month, binary);
    case kYear: return encode(static_cast<u32>(date.year % 100), binary);
    case kCentury: return encode(static_cast<u32>(date.year / 100), binary);
    default: return ram_[index];
    }
}

// The clock stops: its registers keep the time it stopped at, for the guest to read and change.
void CmosRtc::snapshot(u64 now) {
    static constexpr u8 kTimeRegisters[] = {kSeconds,    kMinutes, kHours, kDayOfWeek,
                                            kDayOfMonth, kMonth,   kYear,  kCentury};
    i64 seconds = time_at(now).seconds;
    for (u8 index : kTimeRegisters) ram_[index] = time_register(index, seconds);
}

// The clock runs again from what its registers hold (garbage is clamped to a valid time); the
// current second's phase stays the host's.
void CmosRtc::commit(u64 now) {
    u8 status_b = ram_[kStatusB];
    bool binary = (status_b & kBinary) != 0;
    i64 century = clamp(decode(ram_[kCentury], binary), 0, 99);
    i64 year = century * 100 + clamp(decode(ram_[kYear], binary), 0, 99);
    u32 month = clamp(decode(ram_[kMonth], binary), 1, 12);
    u32 day = clamp(decode(ram_[kDayOfMonth], binary), 1, 31);
    i64 hour = decode_hour(ram_[kHours], status_b);
    i64 minute = clamp(decode(ram_[kMinutes], binary), 0, 59);
    i64 seconds = days_from_date(year, month, day) * kSecondsPerDay + hour * 3600 + minute * 60 +
                  clamp(decode(ram_[kSeconds], binary), 0, 59);
    i64 host = time_at(now).seconds - guest_offset_;
    guest_offset_ = clamp_seconds(seconds) - host;
}

void CmosRtc::set_wall_clock(u64 unix_seconds, u64 at_guest_tsc) {
    sync(clock_.now());
    host_seconds_ = unix_seconds > static_cast<u64>(kMaxSeconds) ? kMaxSeconds : static_cast<i64>(unix_seconds);
    host_tsc_ = at_guest_tsc;
    refresh_deadline();
}

void CmosRtc::set_memory_size(u64 bytes_below_4g, u64 bytes_above_4g) {
    constexpr u64 kKiB = 1024;
    constexpr u64 kMiB = 1024 * kKiB;
    auto put = [this](u8 index, u64 value) {
        value = value > 0xFFFF ? 0xFFFF : value;
        ram_[index] = static_cast<u8>(value);
        ram_[index + 1] = static_cast<u8>(value >> 8);
    };
    u64 base = bytes_below_4g / kKiB;
    put(kBaseMemory, base > 640 ? 640 : base);
    u64 extended = bytes_below_4g > kMiB ? (bytes_below_4g - kMiB) / kKiB : 0;
    put(kExtendedMemory, extended);
    put(kExtendedMemory2, extended);
    put(kHighMemory, bytes_below_4g > 16 * kMiB ? (bytes_below_4g - 16 * kMiB) / (64 * kKiB) : 0);
    u64 above = bytes_above_4g / (64 * kKiB);
    above = above > 0xFFFFFF ? 0xFFFFFF : above;
    for (u8 i = 0; i < 3; ++i) ram_[kMemoryAbove4g + i] = static_cast<u8>(above >> (8 * i));
}

CmosRtc::Battery CmosRtc::battery() const {
    Battery kept{};
    for (u32 i = 0; i < kRamSize; ++i) kept.ram[i] = ram_[i];
    kept.guest_offset = guest_offset_;
    return kept;
}

void CmosRtc::restore_battery(const Battery& kept) {
    for (u32 i = 0; i < kRamSize; ++i) ram_[i] = kept.ram[i];
    guest_offset_ = kept.guest_offset;
    ram_[kStatusB] &= static_cast<u8>(~(kPeriodicEnable | kAlarmEnable | kUpdateEnable | kSquareWave));
    ram_[kStatusC] = 0;
    update_irq();
}

// ---- interrupts ----

namespace {

// The periodic rate's period in time-base cycles is 1 << shift (rates 1 and 2 are 8 and 9).
u32 periodic_shift(u8 status_a) {
    u32 rate = status_a & CmosRtc::kRateMask;
    return (rate <= 2 ? rate + 7 : rate) - 1;
}

}  // namespace

// Sets the flags of every event in (synced_, now]: once each, however many happened.
void CmosRtc::sync(u64 now) {
    if (now <= synced_) return;
    u64 hz = tsc_hz();
    u8 flags = 0;
    if (periodic_runs()) {
        u32 shift = periodic_shift(ram_[kStatusA]);
        if (time_base_cycles(now, hz) >> shift != time_base_cycles(synced_, hz) >> shift) flags |= kPeriodicFlag;
    }
    if (!frozen()) {
        i64 from = time_at(synced_).seconds;
        i64 to = time_at(now).seconds;
        if (to > from) flags |= kUpdateFlag;
        if (to > from && alarm_between(from, to)) flags |= kAlarmFlag;
    }
    synced_ = now;
    ram_[kStatusC] |= flags;
    update_irq();
}

// IRQF and the line follow PF.PIE + AF.AIE + UF.UIE.
void CmosRtc::update_irq() {
    constexpr u8 kEvents = kPeriodicFlag | kAlarmFlag | kUpdateFlag;
    bool level = (ram_[kStatusC] & ram_[kStatusB] & kEvents) != 0;
    ram_[kStatusC] = static_cast<u8>((ram_[kStatusC] & kEvents) | (level ? kIrqFlag : 0));
    if (level == irq_high_) return;
    irq_high_ = level;
    irqs_.set_level(kIrqLine, level);
}

bool CmosRtc::alarm_satisfiable() const {
    bool binary = (ram_[kStatusB] & kBinary) != 0;
    bool hour = false, minute = false, second = false;
    for (u32 value = 0; value < 60; ++value) {
        if (value < 24 && encode_hour(value, ram_[kStatusB]) == ram_[kHoursAlarm]) hour = true;
        if (encode(value, binary) == ram_[kMinutesAlarm]) minute = true;
        if (encode(value, binary) == ram_[kSecondsAlarm]) second = true;
    }
    auto any = [](u8 alarm) { return (alarm & kAlarmDontCare) == kAlarmDontCare; };
    return (hour || any(ram_[kHoursAlarm])) && (minute || any(ram_[kMinutesAlarm])) &&
           (second || any(ram_[kSecondsAlarm]));
}

// Seconds from `seconds` to the next time of day the alarm matches (1..86400), or 0 for never.
u64 CmosRtc::next_alarm_delay(i64 seconds) const {
    if (!alarm_satisfiable()) return 0;
    bool binary = (ram_[kStatusB] & kBinary) != 0;
    auto matches = [](u8 alarm, u8 value) { return (alarm & kAlarmDontCare) == kAlarmDontCare || alarm == value; };
    u64 start = static_cast<u64>(seconds - floor_div(seconds, kSecondsPerDay) * kSecondsPerDay);
    u64 t = start + 1;
    for (u32 step = 0; step < kAlarmSearchSteps && t <= start + kSecondsPerDay; ++step) {
        u32 of_day = static_cast<u32>(t % kSecondsPerDay);
        if (!matches(ram_[kHoursAlarm], encode_hour(of_day / 3600, ram_[kStatusB]))) {
            t += 3600 - of_day % 3600;
        } else if (!matches(ram_[kMinutesAlarm], encode(of_day / 60 % 60, binary))) {
            t += 60 - of_day % 60;
        } else if (!matches(ram_[kSecondsAlarm], encode(of_day % 60, binary))) {
            t += 1;
        } else {
            return t - start;
        }
    }
    return 0;
}

// Whether an update in (from, to] (seconds) matched the alarm.
bool CmosRtc::alarm_between(i64 from, i64 to) const {
    if (to - from >= kSecondsPerDay) return alarm_satisfiable();
    u64 delay = next_alarm_delay(from);
    return delay != 0 && delay <= static_cast<u64>(to - from);
}

u64 CmosRtc::periodic_deadline(u64 after) const {
    u64 hz = tsc_hz();
    u32 shift = periodic_shift(ram_[kStatusA]);
    u128 next_tick = ((time_base_cycles(after, hz) >> shift) + 1) << shift;
    return tsc_for_cycles(next_tick, hz);
}

u64 CmosRtc::alarm_deadline(u64 after) const {
    Moment moment = time_at(after);
    u64 delay = next_alarm_delay(moment.seconds);
    if (delay == 0) return kNoDeadline;
    u64 hz = tsc_hz();
    return add_saturating(after, hz - moment.into_second + (delay - 1) * hz);
}

u64 CmosRtc::compute_deadline() const {
    u8 status_b = ram_[kStatusB];
    u8 flags = ram_[kStatusC];
    u64 best = kNoDeadline;
    auto consider = [&best](u64 when) { best = when < best ? when : best; };
    // An event whose flag is still set changes nothing until the guest reads status C.
    if ((status_b & kPeriodicEnable) && !(flags & kPeriodicFlag) && periodic_runs())
        consider(periodic_deadline(synced_));
    if (frozen()) return best;
    if ((status_b & kUpdateEnable) && !(flags & kUpdateFlag))
        consider(add_saturating(synced_, tsc_hz() - time_at(synced_).into_second));
    if ((status_b & kAlarmEnable) && !(flags & kAlarmFlag)) consider(alarm_deadline(synced_));
    return best;
}

// Before the next enabled event nothing is due: the flags of the others are set as well by the
// sync a later read of status C does (an event is flagged once however late), so the platform's
// every entry costs a comparison.
void CmosRtc::advance(u64 now) {
    if (now < deadline_) return;
    sync(now);
    refresh_deadline();
}

}  // namespace nestor::pc
