// Fake physical memory for the host tests: readable byte segments (what a boot loader left) and
// lazily created 4 KiB frames (what the allocator and page tables write).
#pragma once

#include <array>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

#include "nestor/x86/page_table_builder.hpp"
#include "nestor/x86/physical_memory.hpp"

namespace test {

using namespace nestor;
using namespace nestor::x86;

class FakePhysical final : public PhysicalReader, public PhysicalMemory {
public:
    // Makes [address, address + size) readable with these bytes. Segments must not overlap.
    void place(paddr address, const void* data, size_t size) {
        auto& segment = segments_[address];
        segment.assign(static_cast<const u8*>(data), static_cast<const u8*>(data) + size);
    }
    void place(paddr address, const std::vector<u8>& bytes) { place(address, bytes.data(), bytes.size()); }

    bool read(paddr address, void* out, usize size) const override {
        auto it = segments_.upper_bound(address);
        if (it == segments_.begin()) return false;
        --it;
        const u64 offset = address - it->first;
        if (offset > it->second.size() || it->second.size() - offset < size) return false;
        std::memcpy(out, it->second.data() + offset, size);
        return true;
    }

    // Frames at or above this address are unreachable (like beyond the early identity map).
    void set_reach_limit(paddr limit) { reach_limit_ = limit; }

    u64* frame(paddr address) override {
        if (address % kPageSize != 0 || address >= reach_limit_) return nullptr;
        auto& slot = frames_[address];
        if (!slot) {
            slot = std::make_unique<std::array<u64, 512>>();
            slot->fill(0xDEADBEEFDEADBEEFull);  // garbage, as real memory would hold
        }
        return slot->data();
    }

    size_t frames_touched() const { return frames_.size(); }

private:
    std::map<paddr, std::vector<u8>> segments_;
    std::map<paddr, std::unique_ptr<std::array<u64, 512>>> frames_;
    paddr reach_limit_ = ~paddr{0};
};

// Little-endian byte builder for crafting loader tables.
class Bytes {
public:
    Bytes& u32(nestor::u32 value) { return raw(&value, sizeof(value)); }
    Bytes& u64(nestor::u64 value) { return raw(&value, sizeof(value)); }
    Bytes& str(const char* s) { return raw(s, std::strlen(s) + 1); }
    Bytes& zeros(size_t n) {
        data_.insert(data_.end(), n, 0);
        return *this;
    }
    Bytes& align(size_t a) {
        while (data_.size() % a != 0) data_.push_back(0);
        return *this;
    }
    Bytes& raw(const void* p, size_t n) {
        auto b = static_cast<const u8*>(p);
        data_.insert(data_.end(), b, b + n);
        return *this;
    }
    void patch_u32(size_t offset, nestor::u32 value) { std::memcpy(data_.data() + offset, &value, 4); }
    size_t size() const { return data_.size(); }
    const std::vector<u8>& bytes() const { return data_; }

private:
    std::vector<u8> data_;
};

}  // namespace test
