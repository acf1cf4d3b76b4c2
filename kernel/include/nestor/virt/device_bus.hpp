// The device bus of one VM: device models register the I/O-port ranges, guest-physical MMIO
// ranges and MSR ranges they serve, and an exit that touches one of them reaches its device by a
// lookup. Only I/O, MSR and nested-page-fault exits consult it (exit_handler.cpp); every other
// exit never looks. Each VM has its own bus and its own devices; the bus owns no hardware and
// allocates nothing (fixed capacity).
#pragma once

#include "nestor/lib/result.hpp"
#include "nestor/virt/exit_outcome.hpp"

namespace nestor::virt {

// What a device may ask of the world outside its VM (the kernel, or a test's double).
class DeviceHost {
public:
    // One complete line of the guest's console, without its newline.
    virtual void console_line(const char* text, usize length) = 0;
    // The start of a line not ended yet, printed now (a shell's prompt, the echo of what a user
    // types); what follows continues it. By default it is printed as a line of its own.
    virtual void console_part(const char* text, usize length) { console_line(text, length); }

protected:
    ~DeviceHost() = default;
};

// What a device's access does to the vCPU besides its value: the instruction completes (the
// default), or it completes and the guest stops, or it raises an exception and stays undone (as
// a fault does). Eight bytes, so that it comes back in a register: the console's every byte
// returns one.
struct DeviceOutcome {
    enum class Action : u8 { complete, stop, fault };
    Action action = Action::complete;
    StopReason reason = StopReason::none;  // stop
    u8 vector = 0;                         // fault
    bool has_error_code = false;           // fault
    u32 code = 0;                          // stop: the guest's exit status; fault: the error code

    static constexpr DeviceOutcome end_guest(StopReason reason, u32 status) {
        return {Action::stop, reason, 0, false, status};
    }
    static constexpr DeviceOutcome exception(u8 vector, bool has_error_code = false, u32 error_code = 0) {
        return {Action::fault, StopReason::none, vector, has_error_code, error_code};
    }
};
static_assert(sizeof(DeviceOutcome) == 8);

// A device model. The bus calls it only for the spaces and ranges it registered, with the
// absolute address of the access (a port, a guest-physical address, an MSR index) and its size
// in bytes (I/O: 1, 2 or 4; MMIO: 1, 2, 4 or 8). A read stores its value in `value`, which holds
// all-ones on entry (nothing drives the bus). The defaults are a device with nothing behind that
// space: reads float high, writes go nowhere.
class Device {
public:
    virtual DeviceOutcome io_read(u16 port, u8 size, u32& value, DeviceHost& host);
    virtual DeviceOutcome io_write(u16 port, u8 size, u32 value, DeviceHost& host);
    virtual DeviceOutcome mmio_read(u64 address, u8 size, u64& value, DeviceHost& host);
    virtual DeviceOutcome mmio_write(u64 address, u8 size, u64 value, DeviceHost& host);
    virtual DeviceOutcome msr_read(u32 index, u64& value, DeviceHost& host);
    virtual DeviceOutcome msr_write(u32 index, u64 value, DeviceHost& host);
    // The guest stops: hand on whatever the device still holds (a console's partial line).
    virtual void flush(DeviceHost& host);

protected:
    ~Device() = default;
};

enum class BusError : u8 {
    empty_range,     // a range with nothing in it
    wrapping_range,  // a range that runs past the end of its address space
    overlap,         // part of the range is already another registration's
    full,            // no room for another range of that space, or for another device
};

const char* bus_error_name(BusError error);

// [first, last] of one address space, served by `device`.
template <typename Address> struct BusRange {
    Address first;
    Address last;
    Device* device;

    // One comparison: below `first` the difference wraps to beyond any range's length.
    bool contains(Address address) const { return static_cast<Address>(address - first) <= last - first; }
};

// The ranges of one address space, in the order they were registered (the lookup tries them in
// that order: register the busiest first).
template <typename Address, usize kCapacity> class RangeTable {
public:
    const BusRange<Address>* find(Address address) const {
        for (usize i = 0; i < count_; ++i)
            if (ranges_[i].contains(address)) return &ranges_[i];
        return nullptr;
    }
    bool overlaps(Address first, Address last) const {
        for (usize i = 0; i < count_; ++i)
            if (first <= ranges_[i].last && ranges_[i].first <= last) return true;
        return false;
    }
    bool full() const { return count_ == kCapacity; }
    void clear() { count_ = 0; }
    void add(Address first, Address last, Device& device) { ranges_[count_++] = {first, last, &device}; }
    usize size() const { return count_; }

private:
    BusRange<Address> ranges_[kCapacity] = {};
    usize count_ = 0;
};

class DeviceBus {
public:
    static constexpr usize kMaxPortRanges = 16;
    static constexpr usize kMaxMmioRanges = 16;
    static constexpr usize kMaxMsrRanges = 16;  // a PC: the local APIC's 3 and the MSR file's 9
    static constexpr usize kMaxDevices = 16;

    constexpr DeviceBus() = default;
    // Devices and the bus refer to each other by address: neither may move once registered.
    DeviceBus(const DeviceBus&) = delete;
    DeviceBus& operator=(const DeviceBus&) = delete;

    // `device` serves ports [first, first + count), guest-physical [first, first + size) or MSRs
    // [first, first + count). Refused, and nothing registered, for an empty range, one that
    // wraps, one that overlaps a registered range of the same space, or when the space's ranges
    // or the bus's devices are at capacity.
    Status<BusError> add_ports(u16 first, u32 count, Device& device);
    Status<BusError> add_mmio(u64 first, u64 size, Device& device);
    Status<BusError> add_msrs(u32 first, u32 count, Device& device);

    // The range holding an address (its device serves it), or nullptr: nothing on the bus claims it.
    const BusRange<u16>* port_range(u16 port) const { return ports_.find(port); }
    const BusRange<u64>* mmio_range(u64 guest_physical) const { return mmio_.find(guest_physical); }
    const BusRange<u32>* msr_range(u32 index) const { return msrs_.find(index); }

    // The guest stops: every device hands on what it holds (Device::flush).
    void flush(DeviceHost& host);
    // A machine reset: nothing is registered any more (the devices are registered again).
    void clear();

private:
    Status<BusError> check_device(Device& device) const;
    void note_device(Device& device);

    RangeTable<u16, kMaxPortRanges> ports_;
    RangeTable<u64, kMaxMmioRanges> mmio_;
    RangeTable<u32, kMaxMsrRanges> msrs_;
    Device* devices_[kMaxDevices] = {};
    usize device_count_ = 0;
};

}  // namespace nestor::virt
