#include "vmx_operand.hpp"

#include "nestor/arch/vmx_vmcs.hpp"

namespace nestor::nested::vmx {
namespace {

namespace ar = intel_vmx::access_rights;

constexpr u32 kTypeCode = 1u << 3;
constexpr u32 kTypeWritableOrReadable = 1u << 1;  // data: writable; code: readable
constexpr u32 kTypeExpandDown = 1u << 2;          // data only
constexpr u32 kTypeMask = 0xF;

u64 sign_extend(u64 value, u32 bits) {
    u32 shift = 64 - bits;
    return static_cast<u64>(static_cast<i64>(value << shift) >> shift);
}

bool type_forbids(u32 type, bool write) {
    bool code = type & kTypeCode;
    if (write) return code || !(type & kTypeWritableOrReadable);  // code, or read-only data
    return code && !(type & kTypeWritableOrReadable);             // execute-only code
}

bool beyond_limit(const x86::vmx::GuestSegment& s, u64 offset, usize bytes) {
    u32 type = s.access_rights & kTypeMask;
    bool expand_down = !(type & kTypeCode) && (type & kTypeExpandDown);
    bool flat = s.base == 0 && s.limit == 0xFFFFFFFF && !expand_down;
    if (flat) return false;
    u64 last = offset + bytes - 1;
    if (!expand_down) return last > s.limit;
    u64 upper = (s.access_rights & ar::default32) ? 0xFFFFFFFF : 0xFFFF;
    return offset <= s.limit || last > upper;
}

}  // namespace

u32 L1Cpu::cpl() const { return (segments[kSegmentSs].access_rights >> ar::dpl_shift) & 3; }

InstructionInfo decode_information(u32 i) {
    return InstructionInfo{
        .scaling = i & 3,
        .reg1 = (i >> 3) & 15,
        .address_size = (i >> 7) & 7,
        .register_operand = ((i >> 10) & 1) != 0,
        .segment = (i >> 15) & 7,
        .index = (i >> 18) & 15,
        .index_valid = ((i >> 22) & 1) == 0,
        .base = (i >> 23) & 15,
        .base_valid = ((i >> 27) & 1) == 0,
        .reg2 = (i >> 28) & 15,
    };
}

bool is_canonical(u64 address) { return sign_extend(address, 48) == address; }

MemoryOperand memory_operand(const InstructionInfo& info, const L1Cpu& cpu, const virt::VcpuState& state, usize bytes,
                             bool write) {
    u64 offset = cpu.exit.qualification;  // the displacement
    if (info.address_size == 1) offset = sign_extend(offset, 32);
    if (info.address_size == 0) offset = sign_extend(offset, 16);
    if (info.base_valid) offset += state.gpr[info.base];
    if (info.index_valid) offset += state.gpr[info.index] << info.scaling;
    if (info.address_size == 1) offset &= 0xFFFFFFFF;
    if (info.address_size == 0) offset &= 0xFFFF;
    OperandFault segment_fault = info.segment == kSegmentSs ? OperandFault::stack : OperandFault::general_protection;
    if (info.segment > 5) return {0, OperandFault::general_protection};
    const x86::vmx::GuestSegment& s = cpu.segments[info.segment];
    if (cpu.long_mode64()) {
        // Only FS and GS have a base in 64-bit mode.
        constexpr u32 kFs = 4, kGs = 5;
        u64 linear = (info.segment == kFs || info.segment == kGs) ? s.base + offset : offset;
        bool canonical = is_canonical(linear) && is_canonical(linear + bytes - 1);
        return {linear, canonical ? OperandFault::none : segment_fault};
    }
    u64 linear = (s.base + offset) & 0xFFFFFFFF;
    if (type_forbids(s.access_rights & kTypeMask, write)) return {linear, OperandFault::general_protection};
    if ((s.access_rights & ar::unusable) || beyond_limit(s, offset, bytes)) return {linear, segment_fault};
    return {linear, OperandFault::none};
}

}  // namespace nestor::nested::vmx
