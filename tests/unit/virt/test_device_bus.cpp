#include <catch2/catch.hpp>
#include <utility>

#include "nestor/virt/device_bus.hpp"

using namespace nestor;
using namespace nestor::virt;

namespace {

class NullDevice final : public Device {};

template <typename Address> Device* device_of(const BusRange<Address>* range) {
    return range ? range->device : nullptr;
}

class CountingHost final : public DeviceHost {
public:
    void console_line(const char*, usize) override { ++lines; }
    int lines = 0;
};

class FlushCounter final : public Device {
public:
    void flush(DeviceHost&) override { ++flushes; }
    int flushes = 0;
};

}  // namespace

TEST_CASE("bus.refuses_empty_and_wrapping_ranges") {
    DeviceBus bus;
    NullDevice device;
    auto empty = bus.add_ports(0x60, 0, device);
    REQUIRE_FALSE(empty.ok());
    CHECK(empty.error() == BusError::empty_range);
    auto wraps = bus.add_ports(0xFFF0, 0x11, device);
    REQUIRE_FALSE(wraps.ok());
    CHECK(wraps.error() == BusError::wrapping_range);
    CHECK(bus.add_ports(0xFFF0, 0x10, device).ok());  // up to the last port: fine
    CHECK(device_of(bus.port_range(0xFFFF)) == &device);
    CHECK(device_of(bus.port_range(0xFFEF)) == nullptr);

    auto mmio_empty = bus.add_mmio(0xFEE00000, 0, device);
    REQUIRE_FALSE(mmio_empty.ok());
    CHECK(mmio_empty.error() == BusError::empty_range);
    auto mmio_wraps = bus.add_mmio(~u64{0} - 0xFFF, 0x2000, device);
    REQUIRE_FALSE(mmio_wraps.ok());
    CHECK(mmio_wraps.error() == BusError::wrapping_range);
    CHECK(bus.add_mmio(~u64{0} - 0xFFF, 0x1000, device).ok());
    CHECK(bus.mmio_range(~u64{0}) != nullptr);

    auto msr_wraps = bus.add_msrs(0xFFFFFF00, 0x101, device);
    REQUIRE_FALSE(msr_wraps.ok());
    CHECK(msr_wraps.error() == BusError::wrapping_range);
    auto msr_empty = bus.add_msrs(0x800, 0, device);
    REQUIRE_FALSE(msr_empty.ok());
    CHECK(msr_empty.error() == BusError::empty_range);
    CHECK(bus_error_name(BusError::overlap) != bus_error_name(BusError::full));
}

TEST_CASE("bus.refuses_overlaps_in_the_same_space_only") {
    DeviceBus bus;
    NullDevice pic, other;
    REQUIRE(bus.add_ports(0x20, 2, pic).ok());
    for (auto [first, count] : {std::pair<u16, u32>{0x21, 1}, {0x1F, 2}, {0x10, 0x100}, {0x20, 2}}) {
        auto refused = bus.add_ports(first, count, other);
        REQUIRE_FALSE(refused.ok());
        CHECK(refused.error() == BusError::overlap);
    }
    CHECK(bus.add_ports(0x1F, 1, other).ok());  // touching is not overlapping
    CHECK(bus.add_ports(0x22, 1, other).ok());
    // The same numbers in another space are another address.
    CHECK(bus.add_mmio(0x20, 2, other).ok());
    CHECK(bus.add_msrs(0x20, 2, other).ok());
    auto mmio_overlap = bus.add_mmio(0x21, 0x10, pic);
    REQUIRE_FALSE(mmio_overlap.ok());
    CHECK(mmio_overlap.error() == BusError::overlap);
    CHECK(device_of(bus.port_range(0x20)) == &pic);
    CHECK(device_of(bus.port_range(0x21)) == &pic);
    CHECK(device_of(bus.port_range(0x1F)) == &other);
    CHECK(device_of(bus.port_range(0x22)) == &other);
}

TEST_CASE("bus.lookup_at_range_edges") {
    DeviceBus bus;
    NullDevice apic, hpet, x2apic;
    REQUIRE(bus.add_mmio(0xFEE00000, 0x1000, apic).ok());
    REQUIRE(bus.add_mmio(0xFED00000, 0x400, hpet).ok());
    REQUIRE(bus.add_msrs(0x800, 0x100, x2apic).ok());
    CHECK(bus.mmio_range(0xFEDFFFFF) == nullptr);
    REQUIRE(bus.mmio_range(0xFEE00000) != nullptr);
    CHECK(bus.mmio_range(0xFEE00000)->device == &apic);
    CHECK(bus.mmio_range(0xFEE00FFF)->device == &apic);
    CHECK(bus.mmio_range(0xFEE00FFF)->last == 0xFEE00FFF);
    CHECK(bus.mmio_range(0xFEE01000) == nullptr);
    CHECK(bus.mmio_range(0xFED00000)->device == &hpet);
    CHECK(bus.mmio_range(0xFED003FF)->device == &hpet);
    CHECK(bus.mmio_range(0xFED00400) == nullptr);
    CHECK(bus.mmio_range(0) == nullptr);
    CHECK(device_of(bus.msr_range(0x7FF)) == nullptr);
    CHECK(device_of(bus.msr_range(0x800)) == &x2apic);
    CHECK(device_of(bus.msr_range(0x8FF)) == &x2apic);
    CHECK(device_of(bus.msr_range(0x900)) == nullptr);
    CHECK(device_of(bus.port_range(0x800)) == nullptr);  // an MSR range claims no port
}

TEST_CASE("bus.full_refuses_and_keeps_what_it_has") {
    DeviceBus bus;
    NullDevice device;
    for (usize i = 0; i < DeviceBus::kMaxMsrRanges; ++i) REQUIRE(bus.add_msrs(static_cast<u32>(i * 2), 1, device).ok());
    auto full = bus.add_msrs(0x100, 1, device);
    REQUIRE_FALSE(full.ok());
    CHECK(full.error() == BusError::full);
    CHECK(device_of(bus.msr_range(0x100)) == nullptr);
    CHECK(device_of(bus.msr_range(0)) == &device);
    // Other spaces have room of their own.
    CHECK(bus.add_ports(0x100, 1, device).ok());

    DeviceBus devices_bus;
    NullDevice many[DeviceBus::kMaxDevices + 1];
    for (usize i = 0; i < DeviceBus::kMaxDevices; ++i)
        REQUIRE(devices_bus.add_ports(static_cast<u16>(i), 1, many[i]).ok());
    auto no_room = devices_bus.add_mmio(0x1000, 0x1000, many[DeviceBus::kMaxDevices]);
    REQUIRE_FALSE(no_room.ok());
    CHECK(no_room.error() == BusError::full);
    CHECK(devices_bus.mmio_range(0x1000) == nullptr);
    // A device already on the bus may add ranges.
    CHECK(devices_bus.add_mmio(0x1000, 0x1000, many[0]).ok());
}

TEST_CASE("bus.flush_reaches_each_device_once") {
    DeviceBus bus;
    FlushCounter uart, other;
    REQUIRE(bus.add_ports(0x3F8, 8, uart).ok());
    REQUIRE(bus.add_ports(0x2F8, 8, uart).ok());
    REQUIRE(bus.add_mmio(0x1000, 0x10, uart).ok());
    REQUIRE(bus.add_msrs(0x10, 1, other).ok());
    CountingHost host;
    bus.flush(host);
    CHECK(uart.flushes == 1);
    CHECK(other.flushes == 1);
}

// A machine reset empties the bus: nothing answers, a flush reaches no device, and the same
// ranges and devices can be registered again, to capacity.
TEST_CASE("bus.clear_forgets_every_range_and_device") {
    DeviceBus bus;
    FlushCounter device;
    REQUIRE(bus.add_ports(0x3F8, 8, device).ok());
    REQUIRE(bus.add_mmio(0xFEE00000, 0x1000, device).ok());
    REQUIRE(bus.add_msrs(0x800, 0x100, device).ok());
    bus.clear();
    CHECK(bus.port_range(0x3F8) == nullptr);
    CHECK(bus.mmio_range(0xFEE00000) == nullptr);
    CHECK(bus.msr_range(0x800) == nullptr);
    CountingHost host;
    bus.flush(host);
    CHECK(device.flushes == 0);
    for (u16 i = 0; i < DeviceBus::kMaxPortRanges; ++i)
        REQUIRE(bus.add_ports(static_cast<u16>(0x100 + i), 1, device).ok());
    CHECK(device_of(bus.port_range(0x100)) == &device);
    bus.flush(host);
    CHECK(device.flushes == 1);
}
