// The host's wall clock, read from its CMOS real-time clock: what a PC domain's RTC starts from.
#include "nestor/platform.hpp"
#include "nestor/x86/cpu.hpp"

namespace nestor::platform {
namespace {

constexpr u16 kCmosIndex = 0x70;
constexpr u16 kCmosData = 0x71;
constexpr u8 kNmiDisable = 0x80;  // keep NMIs off while the index is set, as firmware does
enum CmosRegister : u8 {
    seconds = 0,
    minutes = 2,
    hours = 4,
    day = 7,
    month = 8,
    year = 9,
    status_a = 0x0A,
    status_b = 0x0B,
    century = 0x32
};
constexpr u8 kUpdateInProgress = 0x80;  // status A
constexpr u8 kBinary = 0x04;            // status B: values in binary, not BCD
constexpr u8 kHours24 = 0x02;           // status B
constexpr u8 kPm = 0x80;                // the hours byte in 12-hour mode

u8 cmos(CmosRegister r) {
    x86::outb(kCmosIndex, static_cast<u8>(kNmiDisable | r));
    return x86::inb(kCmosData);
}

u64 days_from_civil(u64 y, u64 m, u64 d) {
    // Howard Hinnant's days_from_civil, for years from 1970 on.
    y -= m <= 2;
    u64 era = y / 400;
    u64 yoe = y - era * 400;
    u64 doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    u64 doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

}  // namespace

u64 wall_clock() {
    while (cmos(status_a) & kUpdateInProgress) {
    }
    u8 b = cmos(status_b);
    auto value = [b](u8 raw) -> u64 { return (b & kBinary) ? raw : (raw & 0x0F) + (raw >> 4) * 10; };
    u64 s = value(cmos(seconds)), min = value(cmos(minutes));
    u8 raw_hours = cmos(hours);
    u64 h = value(raw_hours & static_cast<u8>(~kPm));
    if (!(b & kHours24)) h = (h % 12) + ((raw_hours & kPm) ? 12 : 0);
    u64 d = value(cmos(day)), mon = value(cmos(month)), y = value(cmos(year));
    u64 c = value(cmos(century));
    u64 full_year = (c >= 19 && c <= 21) ? c * 100 + y : 2000 + y;
    if (mon < 1 || mon > 12 || d < 1 || d > 31 || full_year < 1970) return 0;
    return days_from_civil(full_year, mon, d) * 86400 + h * 3600 + min * 60 + s;
}

}  // namespace nestor::platform
