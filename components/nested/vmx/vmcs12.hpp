// vmcs12: the VMCS an L1 hypervisor hands VMPTRLD. Its region is a page of L1's memory in a
// format of the component's own (the SDM leaves the format to the implementation): a header with
// the revision identifier, the abort indicator and the launch state, then one 8-byte slot per
// supported field, in the order of the field table (vmcs12.cpp). The table is the one place that
// says which field encodings exist (VMREAD / VMWRITE of any other: VM-instruction error 12), how
// wide each is and whether it is read-only (VM-exit information: error 13), and it gives
// IA32_VMX_VMCS_ENUM its highest index.
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

struct FieldInfo {
    u32 encoding;  // the "full" encoding (access type 0)
    u16 offset;    // of its slot in the region
    FieldWidth width;
    bool read_only;  // a VM-exit information field
};

inline constexpr usize kVmcs12FieldCount = 125;

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

FieldAccess find_field(u64 encoding);
const FieldInfo* field_table(usize& count);
// The highest index (bits 9:1 of an encoding) of any supported field: IA32_VMX_VMCS_ENUM.
u32 highest_field_index();

u64 read_field(const Vmcs12& vmcs, FieldAccess access);
// The value is cut to the field's width; a high access replaces bits 63:32 only.
void write_field(Vmcs12& vmcs, FieldAccess access, u64 value);
// The full field `encoding`, for the component's own use (it must be in the table).
u64 read_field(const Vmcs12& vmcs, u32 encoding);
void write_field(Vmcs12& vmcs, u32 encoding, u64 value);

}  // namespace nestor::nested::vmx
