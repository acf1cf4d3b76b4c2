#include "nestor/virt/device_bus.hpp"

namespace nestor::virt {

DeviceOutcome Device::io_read(u16, u8, u32&, DeviceHost&) { return {}; }
DeviceOutcome Device::io_write(u16, u8, u32, DeviceHost&) { return {}; }
DeviceOutcome Device::mmio_read(u64, u8, u64&, DeviceHost&) { return {}; }
DeviceOutcome Device::mmio_write(u64, u8, u64, DeviceHost&) { return {}; }
DeviceOutcome Device::msr_read(u32, u64&, DeviceHost&) { return {}; }
DeviceOutcome Device::msr_write(u32, u64, DeviceHost&) { return {}; }
void Device::flush(DeviceHost&) {}

const char* bus_error_name(BusError error) {
    switch (error) {
    case BusError::empty_range: return "empty range";
    case BusError::wrapping_range: return "range wraps around its address space";
    case BusError::overlap: return "range overlaps a registered one";
    case BusError::full: return "bus full";
    }
    return "?";
}

namespace {

// Checks [first, first + count) of an address space whose last address is `top`, and adds it.
template <typename Address, typename Table>
Status<BusError> add_range(Table& table, u64 first, u64 count, u64 top, Device& device) {
    if (count == 0) return fail(BusError::empty_range);
    if (count - 1 > top - first) return fail(BusError::wrapping_range);
    Address low = static_cast<Address>(first);
    Address high = static_cast<Address>(first + (count - 1));
    if (table.overlaps(low, high)) return fail(BusError::overlap);
    if (table.full()) return fail(BusError::full);
    table.add(low, high, device);
    return {};
}

}  // namespace

void DeviceBus::clear() {
    ports_.clear();
    mmio_.clear();
    msrs_.clear();
    device_count_ = 0;
}

Status<BusError> DeviceBus::check_device(Device& device) const {
    for (usize i = 0; i < device_count_; ++i)
        if (devices_[i] == &device) return {};
    if (device_count_ == kMaxDevices) return fail(BusError::full);
    return {};
}

void DeviceBus::note_device(Device& device) {
    for (usize i = 0; i < device_count_; ++i)
        if (devices_[i] == &device) return;
    devices_[device_count_++] = &device;
}

Status<BusError> DeviceBus::add_ports(u16 first, u32 count, Device& device) {
    if (auto room = check_device(device); !room) return room;
    auto added = add_range<u16>(ports_, first, count, 0xFFFF, device);
    if (added) note_device(device);
    return added;
}

Status<BusError> DeviceBus::add_mmio(u64 first, u64 size, Device& device) {
    if (auto room = check_device(device); !room) return room;
    auto added = add_range<u64>(mmio_, first, size, ~u64{0}, device);
    if (added) note_device(device);
    return added;
}

Status<BusError> DeviceBus::add_msrs(u32 first, u32 count, Device& device) {
    if (auto room = check_device(device); !room) return room;
    auto added = add_range<u32>(msrs_, first, count, 0xFFFFFFFF, device);
    if (added) note_device(device);
    return added;
}

void DeviceBus::flush(DeviceHost& host) {
    for (usize i = 0; i < device_count_; ++i) devices_[i]->flush(host);
}

}  // namespace nestor::virt
