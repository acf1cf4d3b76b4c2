// The x86 side of MMIO emulation (nestor/virt/mmio_access.hpp): the MOV forms compilers emit for
// device register accesses (Linux's readb..readq and writeb..writeq among them), with every
// prefix they can carry. Other instructions are refused by name, never approximated: a device
// model acting on a misread operand would corrupt the guest silently.
#include "nestor/virt/mmio_access.hpp"

#include "insn_reader.hpp"

namespace nestor::x86 {
namespace {

using virt::CpuMode;
using virt::Gpr;
using virt::MmioAccess;
using virt::MmioDecodeError;
using virt::MmioDirection;
using virt::MmioExtension;
using virt::MmioOperand;

constexpr u8 kRexW = 8, kRexR = 4;
constexpr u8 kModRegister = 3;

MmioDecodeError from_insn_error(InsnError error) {
    switch (error) {
    case InsnError::truncated: return MmioDecodeError::truncated;
    case InsnError::too_long: return MmioDecodeError::too_long;
    case InsnError::unsupported: return MmioDecodeError::unsupported;
    }
    return MmioDecodeError::unsupported;
}

// The operand size of a full-width (not byte) operand: REX.W, then 66 against the mode's default.
u8 operand_size(CpuMode mode, const Insn& prefixes) {
    if (prefixes.rex & kRexW) return 8;
    const bool default16 = mode == CpuMode::real16 || mode == CpuMode::protected16;
    return default16 != prefixes.operand_size ? 2 : 4;
}

// The width of a moffs address (A0-A3): the address size.
usize offset_size(CpuMode mode, const Insn& prefixes) {
    if (mode == CpuMode::long64) return prefixes.address_size ? 4 : 8;
    return uses_16bit_addressing(mode, prefixes.address_size) ? 2 : 4;
}

// The register a ModRM reg field names. Byte registers 4-7 are AH, CH, DH, BH without any REX
// prefix and SPL, BPL, SIL, DIL with one.
void set_register(MmioAccess& access, u8 modrm, const Insn& prefixes, bool byte_register) {
    u8 number = static_cast<u8>(((modrm >> 3) & 7) | ((prefixes.rex & kRexR) ? 8 : 0));
    access.high_byte = byte_register && prefixes.rex == 0 && number >= 4 && number <= 7;
    access.reg = static_cast<Gpr>(access.high_byte ? number - 4 : number);
}

// The common case: MOV r32/r64 to or from memory (89 /r, 8B /r) with at most a REX prefix and
// 32- or 64-bit addressing, as readl, writel and their kin compile. Its length is the ModRM's,
// SIB's and displacement's, without the general decoder's prefix and operand work (a fifth of
// an xAPIC access's cost). False: the general decoder's turn.
bool plain_mov(const u8* bytes, usize available, CpuMode mode, MmioAccess& access) {
    if (mode != CpuMode::long64 && mode != CpuMode::protected32) return false;
    const u8 rex = (mode == CpuMode::long64 && available > 0 && (bytes[0] & 0xF0) == 0x40) ? bytes[0] : 0;
    const usize at = rex ? 1 : 0;
    if (available < at + 2 || (bytes[at] != 0x89 && bytes[at] != 0x8B)) return false;
    const u8 modrm = bytes[at + 1];
    const u8 mod = modrm >> 6, rm = modrm & 7;
    if (mod == kModRegister) return false;
    usize length = at + 2;
    u8 base = rm;
    if (rm == 4) {  // a SIB byte
        if (available < length + 1) return false;
        base = bytes[length] & 7;
        ++length;
    }
    length += mod == 1 ? 1 : mod == 2 ? 4 : base == 5 ? 4 : 0;  // mod 0, base 5: disp32 (RIP-relative)
    if (available < length) return false;
    access = MmioAccess{};
    access.length = static_cast<u8>(length);
    access.size = (rex & kRexW) ? 8 : 4;
    access.register_size = access.size;
    access.direction = bytes[at] == 0x89 ? MmioDirection::write : MmioDirection::read;
    access.operand = MmioOperand::gpr;
    access.extension = MmioExtension::zero;
    access.reg = static_cast<Gpr>(((modrm >> 3) & 7) | ((rex & kRexR) ? 8 : 0));
    return true;
}

}  // namespace
}  // namespace nestor::x86

namespace nestor::virt {

namespace {

// Every form with its prefixes.
[[gnu::noinline]] Result<MmioAccess, MmioDecodeError> decode_any_mov(const u8* bytes, usize available, CpuMode mode) {
    using namespace nestor::x86;
    InsnReader c(bytes, available);
    Insn prefixes{};
    if (!read_prefixes(c, mode, prefixes)) return fail(from_insn_error(c.error()));
    // LOCK makes a MOV #UD; REP/REPNE turn some of these opcodes into other instructions
    // (XRELEASE MOV, and F3 0F B8 is POPCNT): none of them is a plain device access.
    if (prefixes.lock || prefixes.rep || prefixes.repne) return fail(MmioDecodeError::unsupported);
    const bool address16 = uses_16bit_addressing(mode, prefixes.address_size);
    const u8 full_size = operand_size(mode, prefixes);

    MmioAccess access{};
    access.operand = MmioOperand::gpr;
    access.extension = MmioExtension::zero;

    // Reads the ModRM byte and its memory operand; a register form touches no memory.
    u8 modrm = 0;
    auto memory_operand = [&]() -> Status<MmioDecodeError> {
        if (!c.need(1)) return fail(from_insn_error(c.error()));
        modrm = c.next();
        if ((modrm >> 6) == kModRegister) return fail(MmioDecodeError::no_memory_operand);
        if (!skip_memory_operand(c, modrm, address16)) return fail(from_insn_error(c.error()));
        return {};
    };
    auto done = [&]() -> Result<MmioAccess, MmioDecodeError> {
        access.length = static_cast<u8>(c.position());
        return access;
    };

    const u8 opcode = c.next();
    switch (opcode) {
    case 0x88:    // MOV r/m8, r8
    case 0x89:    // MOV r/m, r
    case 0x8A:    // MOV r8, r/m8
    case 0x8B: {  // MOV r, r/m
        if (auto operand = memory_operand(); !operand) return fail(operand.error());
        const bool byte = opcode == 0x88 || opcode == 0x8A;
        access.direction = opcode <= 0x89 ? MmioDirection::write : MmioDirection::read;
        access.size = byte ? 1 : full_size;
        access.register_size = access.size;
        set_register(access, modrm, prefixes, byte);
        return done();
    }
    case 0xC6:    // MOV r/m8, imm8
    case 0xC7: {  // MOV r/m, imm16/imm32 (sign-extended with REX.W)
        // Only /0 is a MOV (C6 F8 is XABORT, C7 F8 XBEGIN).
        if (c.need(1) && ((c.peek() >> 3) & 7) != 0) return fail(MmioDecodeError::unsupported);
        if (auto operand = memory_operand(); !operand) return fail(operand.error());
        access.direction = MmioDirection::write;
        access.operand = MmioOperand::immediate;
        access.size = opcode == 0xC6 ? 1 : full_size;
        access.register_size = access.size;
        const usize immediate_size = access.size == 8 ? 4 : access.size;
        if (!c.need(immediate_size)) return fail(from_insn_error(c.error()));
        u64 immediate = c.next_value(immediate_size);
        if (access.size == 8) immediate = static_cast<u64>(static_cast<i64>(static_cast<i32>(immediate)));
        access.immediate = immediate;
        return done();
    }
    case 0xA0:    // MOV AL, moffs8
    case 0xA1:    // MOV rAX, moffs
    case 0xA2:    // MOV moffs8, AL
    case 0xA3: {  // MOV moffs, rAX
        const usize offset = offset_size(mode, prefixes);
        if (!c.need(offset)) return fail(from_insn_error(c.error()));
        c.skip(offset);
        access.direction = opcode <= 0xA1 ? MmioDirection::read : MmioDirection::write;
        access.size = (opcode & 1) ? full_size : 1;
        access.register_size = access.size;
        access.reg = Gpr::rax;
        return done();
    }
    case 0x63: {  // MOVSXD r, r/m32 (64-bit mode; elsewhere ARPL)
        if (mode != CpuMode::long64) return fail(MmioDecodeError::unsupported);
        if (auto operand = memory_operand(); !operand) return fail(operand.error());
        access.direction = MmioDirection::read;
        access.size = full_size == 8 ? 4 : full_size;
        access.register_size = full_size;
        access.extension = MmioExtension::sign;
        set_register(access, modrm, prefixes, false);
        return done();
    }
    case 0x0F: break;
    default: return fail(MmioDecodeError::unsupported);
    }

    if (!c.need(1)) return fail(from_insn_error(c.error()));
    const u8 second = c.next();
    switch (second) {
    case 0xB6:    // MOVZX r, r/m8
    case 0xB7:    // MOVZX r, r/m16
    case 0xBE:    // MOVSX r, r/m8
    case 0xBF: {  // MOVSX r, r/m16
        if (auto operand = memory_operand(); !operand) return fail(operand.error());
        access.direction = MmioDirection::read;
        access.size = (second & 1) ? 2 : 1;
        access.register_size = full_size;
        access.extension = second >= 0xBE ? MmioExtension::sign : MmioExtension::zero;
        set_register(access, modrm, prefixes, false);
        return done();
    }
    default: return fail(MmioDecodeError::unsupported);
    }
}

}  // namespace

Result<MmioAccess, MmioDecodeError> decode_mmio_instruction(const u8* bytes, usize available, CpuMode mode) {
    if (MmioAccess plain; x86::plain_mov(bytes, available, mode, plain)) return plain;
    return decode_any_mov(bytes, available, mode);
}

Result<MmioAccess, MmioDecodeError> decode_mmio_at_rip(const VirtOps& ops, VcpuHandle vcpu, const VcpuState& state) {
    u8 scratch[x86::kMaxInstructionLength];
    const GuestCode code = ops.guest_code ? ops.guest_code(vcpu, state, scratch, sizeof(scratch)) : GuestCode{};
    if (code.available == 0) return fail(MmioDecodeError::unreadable);
    return decode_mmio_instruction(code.bytes, code.available, state.mode);
}

}  // namespace nestor::virt
