#include "nestor/virt/mmio_access.hpp"

namespace nestor::virt {
namespace {

constexpr u64 low_mask(u8 bytes) { return bytes >= 8 ? ~u64{0} : (u64{1} << (8 * bytes)) - 1; }

constexpr u64 sign_extend(u64 value, u8 bytes) {
    if (bytes >= 8) return value;
    const u64 sign = u64{1} << (8 * bytes - 1);
    return ((value & low_mask(bytes)) ^ sign) - sign;
}

}  // namespace

const char* mmio_decode_error_name(MmioDecodeError error) {
    switch (error) {
    case MmioDecodeError::unreadable: return "code at CS:RIP not readable";
    case MmioDecodeError::truncated: return "truncated";
    case MmioDecodeError::too_long: return "longer than 15 bytes";
    case MmioDecodeError::unsupported: return "unsupported instruction";
    case MmioDecodeError::no_memory_operand: return "no memory operand";
    }
    return "?";
}

u64 mmio_store_value(const MmioAccess& access, const VcpuState& state) {
    if (access.operand == MmioOperand::immediate) return access.immediate & low_mask(access.size);
    u64 source = state.reg(access.reg);
    if (access.high_byte) source >>= 8;
    return source & low_mask(access.size);
}

void mmio_load_register(const MmioAccess& access, VcpuState& state, u64 value) {
    value &= low_mask(access.size);
    if (access.extension == MmioExtension::sign) value = sign_extend(value, access.size);
    u64& reg = state.reg(access.reg);
    switch (access.register_size) {
    case 8: reg = value; break;
    case 4: reg = value & 0xFFFFFFFF; break;  // a 32-bit destination clears bits 63:32
    case 2: reg = (reg & ~u64{0xFFFF}) | (value & 0xFFFF); break;
    default:
        if (access.high_byte)
            reg = (reg & ~u64{0xFF00}) | ((value & 0xFF) << 8);
        else
            reg = (reg & ~u64{0xFF}) | (value & 0xFF);
        break;
    }
}

}  // namespace nestor::virt
