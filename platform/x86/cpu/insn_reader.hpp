// The pieces of x86 instruction decoding that the instruction-length decoder (insn_decode.cpp)
// and the MMIO operand decoder (mmio_decode.cpp) share: a bounded reader over guest-controlled
// bytes, the legacy prefixes and REX, and the length of a ModRM memory operand. Private to
// platform/x86/cpu.
#pragma once

#include "nestor/x86/insn_decode.hpp"

namespace nestor::x86 {

// Reads instruction bytes: every read is checked first against the bytes given and the 15-byte
// architectural limit, so guest bytes can never make the decoder read past its buffer.
class InsnReader {
public:
    InsnReader(const u8* bytes, usize available) : bytes_(bytes), available_(available) {}

    // Whether `n` more bytes exist; sets the error otherwise.
    bool need(usize n) {
        if (position_ + n > kMaxInstructionLength) {
            error_ = InsnError::too_long;
            return false;
        }
        if (position_ + n > available_) {
            error_ = InsnError::truncated;
            return false;
        }
        return true;
    }
    u8 peek() const { return bytes_[position_]; }
    u8 next() { return bytes_[position_++]; }
    void skip(usize n) { position_ += n; }
    usize position() const { return position_; }
    InsnError error() const { return error_; }
    // Little-endian value of the `n` bytes (n <= 8) at the position, which need(n) checked.
    u64 next_value(usize n) {
        u64 value = 0;
        for (usize i = 0; i < n; ++i) value |= u64{bytes_[position_ + i]} << (8 * i);
        position_ += n;
        return value;
    }

private:
    const u8* bytes_;
    usize available_;
    usize position_ = 0;
    InsnError error_ = InsnError::unsupported;
};

inline bool is_segment_prefix(u8 b) {
    return b == 0x26 || b == 0x2E || b == 0x36 || b == 0x3E || b == 0x64 || b == 0x65;
}

// Reads the legacy prefixes (any order) and, in 64-bit mode, REX, which counts only right before
// the opcode; fills the prefix fields of `insn`. False (with the reader's error) if the bytes end.
inline bool read_prefixes(InsnReader& c, virt::CpuMode mode, Insn& insn) {
    const bool long64 = mode == virt::CpuMode::long64;
    for (;;) {
        if (!c.need(1)) return false;
        u8 b = c.peek();
        if (b == 0x66)
            insn.operand_size = true;
        else if (b == 0x67)
            insn.address_size = true;
        else if (b == 0xF3)
            insn.rep = true;
        else if (b == 0xF2)
            insn.repne = true;
        else if (b == 0xF0)
            insn.lock = true;
        else if (is_segment_prefix(b))
            insn.segment = b;
        else if (long64 && (b & 0xF0) == 0x40) {
            c.skip(1);
            ++insn.prefix_count;
            insn.rex = b;
            continue;
        } else
            return true;
        c.skip(1);
        ++insn.prefix_count;
        insn.rex = 0;  // a legacy prefix after REX cancels it
    }
}

// Whether ModRM memory operands use the 16-bit forms (BX+SI, ...) in `mode` with or without 67.
inline bool uses_16bit_addressing(virt::CpuMode mode, bool address_size_prefix) {
    switch (mode) {
    case virt::CpuMode::real16:
    case virt::CpuMode::protected16: return !address_size_prefix;
    case virt::CpuMode::protected32: return address_size_prefix;
    case virt::CpuMode::long64: return false;
    }
    return false;
}

// Skips a ModRM operand (ModRM byte already read) with its SIB and displacement.
inline bool skip_memory_operand(InsnReader& c, u8 modrm, bool address16) {
    u8 mod = modrm >> 6, rm = modrm & 7;
    if (mod == 3) return true;
    usize displacement = 0;
    if (address16) {
        if (mod == 0 && rm == 6)
            displacement = 2;
        else if (mod == 1)
            displacement = 1;
        else if (mod == 2)
            displacement = 2;
    } else {
        if (rm == 4) {
            if (!c.need(1)) return false;
            u8 sib = c.next();
            if (mod == 0 && (sib & 7) == 5) displacement = 4;
        }
        if (mod == 0 && rm == 5)
            displacement = 4;  // disp32 (RIP-relative in 64-bit mode)
        else if (mod == 1)
            displacement = 1;
        else if (mod == 2)
            displacement = 4;
    }
    if (!c.need(displacement)) return false;
    c.skip(displacement);
    return true;
}

}  // namespace nestor::x86
