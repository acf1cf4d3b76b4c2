// A PC guest whose manifest says on_reset = "restart" (tests/boot/pc.cmake): it counts its boots
// in CMOS RAM, which is battery-backed and survives a reset, and checks at each boot that nothing
// else of the boot before did: its memory holds its image as loaded (an initialised variable as
// the image has it, a zeroed one zero, a word it wrote far from the image zero), and every device
// it changed before the reset is as at power-on (local APIC, I/O APIC, 8259A, 16550A, ACPI PM,
// reset control, MTRRs, TSC_ADJUST), while the TSC has run on and the RTC kept its settings but
// for the interrupt enables its RESET pin clears. The first boot resets through port 0xCF9, the
// second through the keyboard controller, the third powers off.
#include "nestor/apic.hpp"
#include "nestor/guest.hpp"

using namespace nestor::guest;
using namespace nestor::guest::apic;

namespace {

constexpr u64 kIoApicBase = 0xFEC00000;
constexpr u32 kIoApicMasked = 1u << 16;
constexpr u16 kCmosIndex = 0x70, kCmosData = 0x71;
constexpr u8 kCmosStatusB = 0x0B, kPowerOnStatusB = 0x02, kBinaryStatusB = 0x06, kPeriodicEnable = 0x40;
constexpr u8 kBootCount = 0x40;  // NVRAM: how many times this guest has booted
constexpr u8 kSavedTsc = 0x41;   // NVRAM: 8 bytes, the TSC just before the last reset
constexpr u16 kPicMasterData = 0x21;
constexpr u8 kPicImrReset = 0xFF;
constexpr u16 kScratch = 0x3FF;  // the 16550A's scratch register
constexpr u16 kPmEnable = 0x602, kPmControl = 0x604;
constexpr u16 kPmTimerEnable = 1u << 0;
constexpr u16 kSleepS5 = (5u << 10) | (1u << 13);  // SLP_TYP 5, SLP_EN
constexpr u16 kResetControl = 0xCF9;
constexpr u8 kResetHard = 0x06;  // SYS_RST (hard reset) and RST_CPU
constexpr u16 kKeyboardCommand = 0x64;
constexpr u8 kPulseReset = 0xFE;
constexpr u64 kMtrrEnabledWriteBack = 0x806;
constexpr u64 kTscAdjustBy = u64{1} << 40;  // moves the TSC forward: a reset must not take it back
constexpr u64 kFarWord = 0xA00000;          // guest RAM the image does not cover
constexpr u32 kBoots = 3;

// The image as loaded: this variable has its initial value and the zeroed one is 0 at every
// boot, though each boot changes them.
volatile u32 loaded = 0x600DB007;
volatile u32 zeroed = 0;

volatile u32& xapic(u32 offset) { return *reinterpret_cast<volatile u32*>(kXapicBase + offset); }
volatile u64& far_word() { return *reinterpret_cast<volatile u64*>(kFarWord); }

u8 cmos_read(u8 index) {
    outb(kCmosIndex, index);
    return inb(kCmosData);
}

void cmos_write(u8 index, u8 value) {
    outb(kCmosIndex, index);
    outb(kCmosData, value);
}

u64 saved_tsc() {
    u64 value = 0;
    for (u8 i = 0; i < 8; ++i) value |= u64{cmos_read(static_cast<u8>(kSavedTsc + i))} << (8 * i);
    return value;
}

void save_tsc(u64 value) {
    for (u8 i = 0; i < 8; ++i) cmos_write(static_cast<u8>(kSavedTsc + i), static_cast<u8>(value >> (8 * i)));
}

u32 io_apic_read(u32 index) {
    *reinterpret_cast<volatile u32*>(kIoApicBase) = index;
    return *reinterpret_cast<volatile u32*>(kIoApicBase + 0x10);
}

void io_apic_write(u32 index, u32 value) {
    *reinterpret_cast<volatile u32*>(kIoApicBase) = index;
    *reinterpret_cast<volatile u32*>(kIoApicBase + 0x10) = value;
}

bool has_tsc_adjust() { return (cpuid(7, 0).ebx & (1u << 1)) != 0; }

// What this boot finds: the image as loaded and every device as at power-on.
void check_as_at_power_on(u32 boot) {
    check(loaded == 0x600DB007 && zeroed == 0, "its image as loaded: initialised data as built, zeroed data 0");
    check(far_word() == 0, "memory outside the image is zero");
    check(xapic(kXapicSvr) == kSvrReset && xapic(kXapicTpr) == 0, "local APIC: SVR and TPR at their reset values");
    check(io_apic_read(0x10 + 2 * 4) & kIoApicMasked, "I/O APIC: pin 4 masked");
    check(inb(kPicMasterData) == kPicImrReset, "8259A: every line masked");
    if (boot == 1)
        check(cmos_read(kCmosStatusB) == kPowerOnStatusB, "RTC: status B at its power-on value");
    else
        check(cmos_read(kCmosStatusB) == kBinaryStatusB,
              "RTC: status B kept (battery-backed) but its interrupt enables");
    check(inb(kScratch) == 0, "16550A: scratch register 0");
    check(inw(kPmEnable) == 0, "ACPI PM: no event enabled");
    check(inb(kResetControl) == 0, "reset control register 0");
    check(rdmsr(kMsrMtrrDefType) == 0, "MTRRs disabled");
    if (has_tsc_adjust()) check(rdmsr(kMsrTscAdjust) == 0, "TSC_ADJUST 0");
    if (boot > 1) check(rdtsc() >= saved_tsc(), "the TSC ran on through the reset");
}

// Changes everything the next boot must find as at power-on.
void scribble() {
    loaded = 0xBAD;
    zeroed = 0xBAD;
    far_word() = 0xDEADBEEF;
    xapic(kXapicSvr) = kSvrEnabled;
    xapic(kXapicTpr) = 0x20;
    io_apic_write(0x10 + 2 * 4, 0x34);  // pin 4 unmasked, vector 0x34
    outb(kPicMasterData, 0xFB);
    cmos_write(kCmosStatusB, kBinaryStatusB | kPeriodicEnable);
    outb(kScratch, 0x5A);
    outw(kPmEnable, kPmTimerEnable);
    wrmsr(kMsrMtrrDefType, kMtrrEnabledWriteBack);
    if (has_tsc_adjust()) wrmsr(kMsrTscAdjust, kTscAdjustBy);
    save_tsc(rdtsc());
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    u32 boot = cmos_read(kBootCount) + 1u;
    cmos_write(kBootCount, static_cast<u8>(boot));
    println("reset: boot ", boot);
    check_as_at_power_on(boot);
    if (boot > kBoots) {
        println("FAIL: booted more often than asked");
        return 1;
    }
    if (boot < kBoots) scribble();
    if (boot == 1) {
        println("reset: resetting through port 0xCF9");
        outb(kResetControl, kResetHard);
        println("FAIL: still running after the reset through port 0xCF9");
        return 1;
    }
    if (boot == 2) {
        println("reset: resetting through the keyboard controller");
        outb(kKeyboardCommand, kPulseReset);
        println("FAIL: still running after the keyboard controller's reset");
        return 1;
    }
    int status = check_summary();
    if (status != 0) return status;
    println("reset: powering off through ACPI S5");
    outw(kPmControl, kSleepS5);
    println("FAIL: still running after S5");
    return 1;
}
