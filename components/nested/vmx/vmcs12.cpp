#include "vmcs12.hpp"

namespace nestor::nested::vmx {
namespace {

// Every field the component supports (SDM appendix B): those of the features its capability
// MSRs offer (vmx_capabilities.cpp), and the ones every VMCS has. Not here, so error 12: the
// fields of posted interrupts, the TPR shadow and APIC virtualization, VM functions, PML, PAT and
// PERF_GLOBAL_CTRL loading, the executive-VMCS pointer and SMBASE, VMCS shadowing, XSS, TSC
// scaling, SPP, ENCLS and the rest not offered.
constexpr u32 kEncodings[] = {
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
    // offset, EPT pointer
    0x2000,
    0x2002,
    0x2004,
    0x2006,
    0x2008,
    0x200A,
    0x2010,
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

constexpr u32 kAccessHigh = 1u << 0;
constexpr u32 kTypeShift = 10;  // bits 11:10: control, read-only data, guest state, host state
constexpr u32 kTypeReadOnly = 1;
constexpr u32 kWidthShift = 13;
constexpr u32 kIndexShift = 1;
constexpr u32 kIndexMask = 0x1FF;

constexpr FieldWidth width_of(u32 encoding) { return static_cast<FieldWidth>((encoding >> kWidthShift) & 3); }

struct FieldTable {
    FieldInfo fields[kVmcs12FieldCount];
};

constexpr FieldTable make_table() {
    FieldTable t{};
    for (usize i = 0; i < kVmcs12FieldCount; ++i) {
        u32 e = kEncodings[i];
        t.fields[i] = FieldInfo{e, static_cast<u16>(__builtin_offsetof(Vmcs12, slots) + 8 * i), width_of(e),
                                ((e >> kTypeShift) & 3) == kTypeReadOnly};
    }
    return t;
}
constexpr FieldTable kTable = make_table();

constexpr u64 width_mask(FieldWidth width) {
    switch (width) {
    case FieldWidth::bits16: return 0xFFFF;
    case FieldWidth::bits32: return 0xFFFFFFFF;
    case FieldWidth::bits64:
    case FieldWidth::natural: break;
    }
    return ~u64{0};
}

usize slot_of(const FieldInfo* field) { return static_cast<usize>(field - kTable.fields); }

}  // namespace

FieldAccess find_field(u64 encoding) {
    if (encoding >> 32) return {nullptr, false};
    u32 e = static_cast<u32>(encoding);
    bool high = e & kAccessHigh;
    u32 full = e & ~kAccessHigh;
    for (const FieldInfo& f : kTable.fields) {
        if (f.encoding != full) continue;
        if (high && f.width != FieldWidth::bits64) break;  // only 64-bit fields have a high half
        return {&f, high};
    }
    return {nullptr, false};
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

// A field the component names that is not in the table (a bug: its names are constants) reads 0
// and takes no write.
u64 read_field(const Vmcs12& vmcs, u32 encoding) {
    FieldAccess access = find_field(encoding);
    return access.field ? read_field(vmcs, access) : 0;
}
void write_field(Vmcs12& vmcs, u32 encoding, u64 value) {
    FieldAccess access = find_field(encoding);
    if (access.field) write_field(vmcs, access, value);
}

}  // namespace nestor::nested::vmx
