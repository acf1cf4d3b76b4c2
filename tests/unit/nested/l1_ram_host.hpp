// The kernel's Host as the nested fakes give L1's memory: kL1Bytes of RAM at guest-physical 0,
// each page backed by a made-up host frame (kHostFrameBase plus its address). The L0 memory the
// component asks for (allocate, release, pointer) is each fake's own. The MSRs its devices serve
// are `device_msrs`: a write with a bit of `device_msr_reserved` set is refused, as a device's
// #GP. No Catch2: the fuzzers use it too.
#pragma once

#include <cstring>
#include <map>
#include <vector>

#include "nestor/nested/nested_ops.hpp"

namespace nested_test {

using namespace nestor;

class L1RamHost : public nested::Host {
public:
    static constexpr u64 kL1Bytes = 1u << 20;
    static constexpr u64 kHostFrameBase = 0x40000000;

    L1RamHost() : ram(kL1Bytes) {}
    bool read(u64 gpa, void* out, usize bytes) override {
        if (!inside(gpa, bytes)) return false;
        std::memcpy(out, ram.data() + gpa, bytes);
        return true;
    }
    bool write(u64 gpa, const void* in, usize bytes) override {
        if (!inside(gpa, bytes)) return false;
        std::memcpy(ram.data() + gpa, in, bytes);
        return true;
    }
    nested::GuestPage page(u64 gpa) override {
        if (gpa >= kL1Bytes) return {false, 0, false, false};
        return {true, kHostFrameBase + (gpa & ~u64{0xFFF}), true, true};
    }
    u8* window(u64 gpa, usize bytes, bool) override { return inside(gpa, bytes) ? ram.data() + gpa : nullptr; }
    bool set_bits(u64 gpa, u64 bits) override {
        u64 v = 0;
        if (!read(gpa, &v, 8)) return false;
        v |= bits;
        return write(gpa, &v, 8);
    }

    bool device_msr_read(nested::NestedVcpu& vcpu, u32 index, u64& value) override {
        auto msr = device_msrs.find(index);
        if (msr == device_msrs.end()) return false;
        device_msr_vcpu = &vcpu;
        value = msr->second;
        return true;
    }
    bool device_msr_write(nested::NestedVcpu& vcpu, u32 index, u64 value) override {
        auto msr = device_msrs.find(index);
        if (msr == device_msrs.end() || (value & device_msr_reserved)) return false;
        device_msr_vcpu = &vcpu;
        msr->second = value;
        return true;
    }

    std::vector<u8> ram;
    std::map<u32, u64> device_msrs;
    u64 device_msr_reserved = 0;
    const nested::NestedVcpu* device_msr_vcpu = nullptr;  // the vCPU of the last access served

protected:
    ~L1RamHost() = default;
    static bool inside(u64 gpa, usize bytes) { return gpa < kL1Bytes && kL1Bytes - gpa >= bytes; }
};

}  // namespace nested_test
