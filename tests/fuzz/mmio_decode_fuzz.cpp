// libFuzzer target: guest-controlled bytes at CS:RIP through the MMIO operand decoder and the
// instruction-length decoder. The first input byte picks the CPU mode, the rest are the
// instruction bytes, ending exactly where the fuzzer's buffer ends, so a read past them is an ASan
// error. Whatever is decoded must be self-consistent: at most 15 bytes and no more than were
// given, the same result from exactly its own bytes and "truncated" from one byte fewer, sizes of
// 1, 2, 4 or 8, and completing the access touches only its register.
#include <cstdlib>

#include "nestor/virt/mmio_access.hpp"
#include "nestor/x86/insn_decode.hpp"

using namespace nestor;
using namespace nestor::virt;

namespace {

void require(bool condition) {
    if (!condition) std::abort();
}

bool is_size(u8 size) { return size == 1 || size == 2 || size == 4 || size == 8; }

u64 low_mask(u8 bytes) { return bytes >= 8 ? ~u64{0} : (u64{1} << (8 * bytes)) - 1; }

bool same(const MmioAccess& a, const MmioAccess& b) {
    return a.direction == b.direction && a.size == b.size && a.length == b.length && a.operand == b.operand &&
           a.reg == b.reg && a.high_byte == b.high_byte && a.register_size == b.register_size &&
           a.extension == b.extension && a.immediate == b.immediate;
}

void check_mmio(const u8* code, usize size, CpuMode mode) {
    auto decoded = decode_mmio_instruction(code, size, mode);
    if (!decoded) {
        // Fifteen bytes always settle an instruction: it is complete or too long.
        if (decoded.error() == MmioDecodeError::truncated) require(size < x86::kMaxInstructionLength);
        require(decoded.error() != MmioDecodeError::unreadable);
        return;
    }
    const MmioAccess& a = *decoded;
    require(a.length >= 1 && a.length <= x86::kMaxInstructionLength && a.length <= size);
    require(is_size(a.size) && is_size(a.register_size));
    require(static_cast<usize>(a.reg) < static_cast<usize>(Gpr::count));
    if (a.direction == MmioDirection::write) {
        require(a.register_size == a.size && a.extension == MmioExtension::zero);
        if (a.operand == MmioOperand::immediate) require((a.immediate & ~low_mask(a.size)) == 0);
    } else {
        require(a.operand == MmioOperand::gpr && a.register_size >= a.size);
    }
    if (a.high_byte)
        require(a.size == 1 && a.operand == MmioOperand::gpr && static_cast<u8>(a.reg) <= static_cast<u8>(Gpr::rbx));

    auto exact = decode_mmio_instruction(code, a.length, mode);
    require(exact && same(*exact, a));
    auto short_by_one = decode_mmio_instruction(code, a.length - 1u, mode);
    require(!short_by_one && short_by_one.error() == MmioDecodeError::truncated);

    VcpuState state{};
    for (usize i = 0; i < static_cast<usize>(Gpr::count); ++i) state.gpr[i] = 0x0101010101010101 * (i + 1);
    if (a.direction == MmioDirection::write) {
        require((mmio_store_value(a, state) & ~low_mask(a.size)) == 0);
    } else {
        VcpuState after = state;
        mmio_load_register(a, after, 0x8877665544332211);
        for (usize i = 0; i < static_cast<usize>(Gpr::count); ++i)
            if (i != static_cast<usize>(a.reg)) require(after.gpr[i] == state.gpr[i]);
    }
}

void check_length_decoder(const u8* code, usize size, CpuMode mode) {
    auto decoded = x86::decode_instruction(code, size, mode);
    if (!decoded) return;
    require(decoded->length >= 1 && decoded->length <= x86::kMaxInstructionLength && decoded->length <= size);
    auto exact = x86::decode_instruction(code, decoded->length, mode);
    require(exact && exact->length == decoded->length && exact->op == decoded->op);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const u8* data, usize size) {
    if (size == 0) return 0;
    const CpuMode mode = static_cast<CpuMode>(data[0] & 3);
    check_mmio(data + 1, size - 1, mode);
    check_length_decoder(data + 1, size - 1, mode);
    return 0;
}
