#include "vmcs12.hpp"

namespace nestor::nested::vmx {
namespace {

using namespace vmcs12_layout;

constexpr u32 kAccessHigh = 1u << 0;

struct FieldTable {
    FieldInfo fields[kVmcs12FieldCount];
};

constexpr FieldTable make_table() {
    FieldTable t{};
    for (usize i = 0; i < kVmcs12FieldCount; ++i) {
        u32 e = kEncodings[i];
        t.fields[i] = FieldInfo{e, static_cast<u16>(__builtin_offsetof(Vmcs12, slots) + 8 * i), width_of(e),
                                type_of(e) == kTypeReadOnly};
    }
    return t;
}
constexpr FieldTable kTable = make_table();

constexpr bool index_finds_every_field() {
    for (usize i = 0; i < kVmcs12FieldCount; ++i) {
        u32 e = kEncodings[i];
        if (((e >> kIndexShift) & kIndexMask) >= kIndexLimit || kSlotIndex.slot[key_of(e)] != i) return false;
    }
    return true;
}
static_assert(index_finds_every_field());

usize slot_of(const FieldInfo* field) { return static_cast<usize>(field - kTable.fields); }

}  // namespace

FieldAccess find_field(u64 encoding) {
    if (encoding >> 32) return {nullptr, false};
    u32 e = static_cast<u32>(encoding);
    bool high = e & kAccessHigh;
    u32 full = e & ~kAccessHigh;
    u32 slot = slot_of_full(full);
    if (slot == kNoSlot) return {nullptr, false};
    const FieldInfo& f = kTable.fields[slot];
    if (high && f.width != FieldWidth::bits64) return {nullptr, false};  // only 64-bit fields have a high half
    return {&f, high};
}

const FieldInfo* field_table(usize& count) {
    count = kVmcs12FieldCount;
    return kTable.fields;
}

u32 highest_field_index() {
    u32 highest = 0;
    for (u32 e : kEncodings) {
        u32 index = (e >> kIndexShift) & kIndexMask;
        if (index > highest) highest = index;
    }
    return highest;
}

u64 read_field(const Vmcs12& vmcs, FieldAccess access) {
    u64 value = vmcs.slots[slot_of(access.field)];
    return access.high ? value >> 32 : value;
}

void write_field(Vmcs12& vmcs, FieldAccess access, u64 value) {
    u64& slot = vmcs.slots[slot_of(access.field)];
    if (access.high)
        slot = (slot & 0xFFFFFFFF) | (value << 32);
    else
        slot = value & width_mask(access.field->width);
}

}  // namespace nestor::nested::vmx
