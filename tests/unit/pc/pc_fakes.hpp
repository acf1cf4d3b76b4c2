// The doubles of the links (links.hpp) and of the device host that the PC model tests share.
#pragma once

#include "nestor/pc/links.hpp"
#include "nestor/virt/device_bus.hpp"

namespace nestor::pc::testing {

// A TSC the test sets by hand.
class FakeClock final : public GuestClock {
public:
    explicit FakeClock(u64 start = 0, u64 khz_ = 2'000'000) : tsc(start), khz(khz_) {}
    u64 now() const override { return tsc; }
    u64 tsc_khz() const override { return khz; }
    u64 tsc;
    u64 khz;
};

// Interrupt lines nobody listens to.
class NullLines final : public IrqLines {
public:
    void set_level(u8, bool) override {}
};

// An EOI nobody hears.
class NullEoi final : public EoiListener {
public:
    void end_of_interrupt(u8) override {}
};

// A device host whose console goes nowhere.
class NullHost final : public virt::DeviceHost {
public:
    void console_line(const char*, usize) override {}
};

}  // namespace nestor::pc::testing
