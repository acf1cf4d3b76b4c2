// vmcs12: the VMCS an L1 hypervisor hands VMPTRLD. Its region is a page of L1's memory in a
// format of the component's own (the SDM leaves the format to the implementation): a header with
// the revision identifier, the abort indicator and the launch state, then one 8-byte slot per
// supported field, in the order of the field table (vmcs12_layout::kEncodings, below). The table
// is the one place that says which field encodings exist (VMREAD / VMWRITE of any other:
// VM-instruction error 12), how wide each is and whether it is read-only (VM-exit information:
// error 13), and it gives IA32_VMX_VMCS_ENUM its highest index.
//
// The current VMCS is cached in L0 memory (KVM's cached_vmcs12): VMPTRLD reads the region once,
// VMREAD / VMWRITE and the VMLAUNCH / VMRESUME checks use only the cache, and VMCLEAR, a VMPTRLD
// of another region and VMXOFF write it back. L1 changing the region in between changes nothing
// (the SDM makes such writes undefined), so a check and the use that follows see the same value.
#pragma once

#include "nestor/lib/types.hpp"

namespace nestor::nested::vmx {

// Bit 31 clear (not a shadow VMCS); "NV" and a format number.
inline constexpr u32 kVmcs12Revision = 0x4E560001;
inline constexpr u32 kLaunchStateClear = 0;
inline constexpr u32 kLaunchStateLaunched = 1;

// Field widths, as bits 14:13 of an encoding number them.
enum class FieldWidth : u8 { bits16 = 0, bits64 = 1, bits32 = 2, natural = 3 };
inline constexpr u32 kFieldWidthShift = 13;
constexpr FieldWidth width_of(u32 encoding) { return static_cast<FieldWidth>((encoding >> kFieldWidthShift) & 3); }
constexpr u64 width_mask(FieldWidth width) {
    switch (width) {
    case FieldWidth::bits16: return 0xFFFF;
    case FieldWidth::bits32: return 0xFFFFFFFF;
    case FieldWidth::bits64:
    case FieldWidth::natural: break;
    }
    return ~u64{0};
}

struct FieldInfo {
    u32 encoding;  // the "full" encoding (access type 0)
    u16 offset;    // of its slot in the region
    FieldWidth width;
    bool read_only;  // a VM-exit information field
};

inline constexpr usize kVmcs12FieldCount = 127;

struct Vmcs12 {
    u32 revision;
    u32 abort;
    u32 launch_state;  // kLaunchStateClear / kLaunchStateLaunched
    u32 reserved;
    u64 slots[kVmcs12FieldCount];
};
static_assert(sizeof(Vmcs12) <= 4096, "vmcs12 must fit its page");
inline constexpr u64 kLaunchStateOffset = __builtin_offsetof(Vmcs12, launch_state);

// A VMREAD / VMWRITE operand: the field and whether the encoding names its high 32 bits (bit 0,
// allowed only for 64-bit fields).
struct FieldAccess {
    const FieldInfo* field;  // nullptr: the encoding names no supported field
    bool high;
};

namespace vmcs12_layout {

// Every field the component supports (SDM appendix B): those of the features its capability
// MSRs offer (vmx_capabilities.cpp), and the ones every VMCS has. Not here, so error 12: the
// fields of posted interrupts and APIC virtualization, VM functions, PML, PAT and
// PERF_GLOBAL_CTRL loading, the executive-VMCS pointer and SMBASE, VMCS shadowing, XSS, TSC
// scaling, SPP, ENCLS and the rest not offered.
inline constexpr u32 kEncodings[] = {
    // 16-bit control, guest state, host state
    0x0000,  // VPID
    0x0800,
    0x0802,
    0x0804,
    0x0806,
    0x0808,
    0x080A,
    0x080C,
    0x080E,  // guest ES..TR selectors
    0x0C00,
    0x0C02,
    0x0C04,
    0x0C06,
    0x0C08,
    0x0C0A,
    0x0C0C,  // host ES..TR selectors
    // 64-bit control: I/O bitmaps A/B, MSR bitmaps, exit MSR-store / -load, entry MSR-load, TSC
    // offset, virtual-APIC address, EPT pointer
    0x2000,
    0x2002,
    0x2004,
    0x2006,
    0x2008,
    0x200A,
    0x2010,
    0x2012,
    0x201A,
    0x2400,  // guest-physical address (read-only)
    // 64-bit guest state: VMCS link pointer, DEBUGCTL, EFER, PDPTE0-3
    0x2800,
    0x2802,
    0x2806,
    0x280A,
    0x280C,
    0x280E,
    0x2810,
    0x2C02,  // host EFER
    // 32-bit control
    0x4000,
    0x4002,
    0x4004,
    0x4006,
    0x4008,
    0x400A,
    0x400C,
    0x400E,
    0x4010,
    0x4012,
    0x4014,
    0x4016,
    0x4018,
    0x401A,
    0x401C,  // TPR threshold
    0x401E,
    // 32-bit read-only: instruction error, exit reason, interruption info / error code, IDT
    // vectoring info / error code, instruction length, instruction information
    0x4400,
    0x4402,
    0x4404,
    0x4406,
    0x4408,
    0x440A,
    0x440C,
    0x440E,
    // 32-bit guest state: limits ES..IDTR, access rights ES..TR, interruptibility, activity,
    // SYSENTER_CS, preemption timer value
    0x4800,
    0x4802,
    0x4804,
    0x4806,
    0x4808,
    0x480A,
    0x480C,
    0x480E,
    0x4810,
    0x4812,
    0x4814,
    0x4816,
    0x4818,
    0x481A,
    0x481C,
    0x481E,
    0x4820,
    0x4822,
    0x4824,
    0x4826,
    0x482A,
    0x482E,
    0x4C00,  // host SYSENTER_CS
    // natural-width control: CR0/CR4 guest/host masks and read shadows, CR3-target values 0-3
    0x6000,
    0x6002,
    0x6004,
    0x6006,
    0x6008,
    0x600A,
    0x600C,
    0x600E,
    // natural-width read-only: exit qualification, I/O RCX, RSI, RDI, RIP, guest-linear address
    0x6400,
    0x6402,
    0x6404,
    0x6406,
    0x6408,
    0x640A,
    // natural-width guest state: CR0, CR3, CR4, ES..TR bases, GDTR/IDTR bases, DR7, RSP, RIP,
    // RFLAGS, pending debug exceptions, SYSENTER_ESP/EIP
    0x6800,
    0x6802,
    0x6804,
    0x6806,
    0x6808,
    0x680A,
    0x680C,
    0x680E,
    0x6810,
    0x6812,
    0x6814,
    0x6816,
    0x6818,
    0x681A,
    0x681C,
    0x681E,
    0x6820,
    0x6822,
    0x6824,
    0x6826,
    // natural-width host state: CR0, CR3, CR4, FS/GS/TR/GDTR/IDTR bases, SYSENTER_ESP/EIP, RSP, RIP
    0x6C00,
    0x6C02,
    0x6C04,
    0x6C06,
    0x6C08,
    0x6C0A,
    0x6C0C,
    0x6C0E,
    0x6C10,
    0x6C12,
    0x6C14,
    0x6C16,
};
static_assert(sizeof(kEncodings) / sizeof(kEncodings[0]) == kVmcs12FieldCount);

inline constexpr u32 kTypeShift = 10;  // bits 11:10: control, read-only data, guest state, host state
inline constexpr u32 kTypeControl = 0;
inline constexpr u32 kTypeReadOnly = 1;
inline constexpr u32 kTypeHostState = 3;
inline constexpr u32 kIndexShift = 1;
inline constexpr u32 kIndexMask = 0x1FF;

// Every VMREAD / VMWRITE and every field the component reads or writes looks its slot up: by
// width, type and index (bits 14:13, 11:10 and 9:1 of the encoding) in a table of slot numbers,
// instead of a search of the 127 fields. No supported field has an index of 32 or more.
inline constexpr u32 kTypeMask = 3;
inline constexpr u32 kIndexLimit = 32;
inline constexpr u32 kKeyCount = 4 * 4 * kIndexLimit;
inline constexpr u32 kNoSlot = 0xFF;
inline constexpr u32 kKeyBits = (3u << kFieldWidthShift) | (kTypeMask << kTypeShift) | (kIndexMask << kIndexShift);
static_assert(kVmcs12FieldCount < kNoSlot);

constexpr u32 type_of(u32 encoding) { return (encoding >> kTypeShift) & kTypeMask; }

constexpr u32 key_of(u32 full) {
    return ((full >> kFieldWidthShift) & 3) * 4 * kIndexLimit + ((full >> kTypeShift) & kTypeMask) * kIndexLimit +
           ((full >> kIndexShift) & kIndexMask);
}

struct SlotIndex {
    u8 slot[kKeyCount];
};

constexpr SlotIndex make_index() {
    SlotIndex index{};
    for (u8& s : index.slot) s = kNoSlot;
    for (usize i = 0; i < kVmcs12FieldCount; ++i) index.slot[key_of(kEncodings[i])] = static_cast<u8>(i);
    return index;
}
inline constexpr SlotIndex kSlotIndex = make_index();

// The slot of the full field `full` (access type 0), kNoSlot if the table has none.
constexpr u32 slot_of_full(u32 full) {
    if ((full & ~kKeyBits) || ((full >> kIndexShift) & kIndexMask) >= kIndexLimit) return kNoSlot;
    return kSlotIndex.slot[key_of(full)];
}

}  // namespace vmcs12_layout

// The slots of a list of full fields the component fixes at compile time (each must be in the
// table), and the widths their values are cut to: copies of such a list look nothing up.
template <usize N> struct FieldList {
    u8 slots[N];
    u64 masks[N];
};

template <usize N> consteval FieldList<N> field_list(const u32 (&encodings)[N]) {
    FieldList<N> list{};
    for (usize i = 0; i < N; ++i) {
        usize slot = 0;
        while (slot < kVmcs12FieldCount && vmcs12_layout::kEncodings[slot] != encodings[i]) ++slot;
        if (slot == kVmcs12FieldCount) __builtin_unreachable();  // not a field of the table: no constant
        list.slots[i] = static_cast<u8>(slot);
        list.masks[i] = width_mask(width_of(encodings[i]));
    }
    return list;
}

// A field's slot number in the region (0 .. kVmcs12FieldCount - 1).
inline usize slot_number(const FieldInfo& field) {
    return (field.offset - __builtin_offsetof(Vmcs12, slots)) / sizeof(u64);
}

// A set of fields, one bit per slot.
struct FieldSet {
    u64 words[(kVmcs12FieldCount + 63) / 64];
    void add(const FieldInfo& field) { words[slot_number(field) / 64] |= u64{1} << (slot_number(field) % 64); }
    void clear() {
        for (u64& word : words) word = 0;
    }
};

FieldAccess find_field(u64 encoding);
const FieldInfo* field_table(usize& count);
// The highest index (bits 9:1 of an encoding) of any supported field: IA32_VMX_VMCS_ENUM.
u32 highest_field_index();

u64 read_field(const Vmcs12& vmcs, FieldAccess access);
// The value is cut to the field's width; a high access replaces bits 63:32 only.
void write_field(Vmcs12& vmcs, FieldAccess access, u64 value);
// The full field `encoding`, for the component's own use (it must be in the table: one that is
// not, a bug since its names are constants, reads 0 and takes no write). Inline, so that a
// constant encoding's slot is found at compile time.
inline u64 read_field(const Vmcs12& vmcs, u32 encoding) {
    u32 slot = vmcs12_layout::slot_of_full(encoding);
    return slot == vmcs12_layout::kNoSlot ? 0 : vmcs.slots[slot];
}
inline void write_field(Vmcs12& vmcs, u32 encoding, u64 value) {
    u32 slot = vmcs12_layout::slot_of_full(encoding);
    if (slot != vmcs12_layout::kNoSlot) vmcs.slots[slot] = value & width_mask(width_of(encoding));
}
// The fields of a FieldList at once, as the two above.
template <usize N> void read_fields(const Vmcs12& vmcs, const FieldList<N>& list, u64* values) {
    for (usize i = 0; i < N; ++i) values[i] = vmcs.slots[list.slots[i]];
}
template <usize N> void write_fields(Vmcs12& vmcs, const FieldList<N>& list, const u64* values) {
    for (usize i = 0; i < N; ++i) vmcs.slots[list.slots[i]] = values[i] & list.masks[i];
}

}  // namespace nestor::nested::vmx
