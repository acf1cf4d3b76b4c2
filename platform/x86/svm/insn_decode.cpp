#include "nestor/x86/svm/insn_decode.hpp"

namespace nestor::x86 {
namespace {

using virt::CpuMode;

class Cursor {
public:
    Cursor(const u8* bytes, usize available) : bytes_(bytes), available_(available) {}

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

private:
    const u8* bytes_;
    usize available_;
    usize position_ = 0;
    InsnError error_ = InsnError::unsupported;
};

bool is_segment_prefix(u8 b) { return b == 0x26 || b == 0x2E || b == 0x36 || b == 0x3E || b == 0x64 || b == 0x65; }

// Skips a ModRM operand (ModRM byte already read) with its SIB and displacement.
bool skip_memory_operand(Cursor& c, u8 modrm, bool address16) {
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

}  // namespace

const char* insn_op_name(InsnOp op) {
    static const char* const names[] = {"cpuid",    "hlt",      "rdmsr",
                                        "wrmsr",    "rdtsc",    "rdtscp",
                                        "rdpmc",    "pause",    "invd",
                                        "wbinvd",   "xsetbv",   "xgetbv",
                                        "monitor",  "mwait",    "in",
                                        "out",      "ins",      "outs",
                                        "vmrun",    "vmmcall",  "vmload",
                                        "vmsave",   "stgi",     "clgi",
                                        "skinit",   "invlpga",  "vmcall",
                                        "vmlaunch", "vmresume", "vmxoff",
                                        "vmx",      "invlpg",   "descriptor-table",
                                        "msw",      "mov-cr",   "mov-dr",
                                        "swapgs"};
    static_assert(sizeof(names) / sizeof(names[0]) == static_cast<usize>(InsnOp::swapgs) + 1);
    return names[static_cast<usize>(op)];
}

const char* insn_error_name(InsnError error) {
    switch (error) {
    case InsnError::truncated: return "truncated";
    case InsnError::too_long: return "longer than 15 bytes";
    case InsnError::unsupported: return "unsupported instruction";
    }
    return "?";
}

Result<Insn, InsnError> decode_instruction(const u8* bytes, usize available, CpuMode mode) {
    Cursor c(bytes, available);
    Insn insn{};
    const bool long64 = mode == CpuMode::long64;

    // Legacy prefixes in any order, then (64-bit mode) REX, which counts only right before the opcode.
    for (;;) {
        if (!c.need(1)) return fail(c.error());
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
            break;
        c.skip(1);
        ++insn.prefix_count;
        insn.rex = 0;  // a legacy prefix after REX cancels it
    }

    bool address16 = false;
    switch (mode) {
    case CpuMode::real16:
    case CpuMode::protected16: address16 = !insn.address_size; break;
    case CpuMode::protected32: address16 = insn.address_size; break;
    case CpuMode::long64: address16 = false; break;
    }

    auto done = [&](InsnOp op) -> Result<Insn, InsnError> {
        insn.op = op;
        insn.length = static_cast<u8>(c.position());
        return insn;
    };

    u8 opcode = c.next();
    switch (opcode) {
    case 0xF4: return done(InsnOp::hlt);
    case 0x90:
        if (insn.rep) return done(InsnOp::pause);
        return fail(InsnError::unsupported);
    case 0xE4:
    case 0xE5:
    case 0xE6:
    case 0xE7:
        if (!c.need(1)) return fail(c.error());
        c.skip(1);  // imm8 port
        return done(opcode <= 0xE5 ? InsnOp::in : InsnOp::out);
    case 0xEC:
    case 0xED: return done(InsnOp::in);
    case 0xEE:
    case 0xEF: return done(InsnOp::out);
    case 0x6C:
    case 0x6D: return done(InsnOp::ins);
    case 0x6E:
    case 0x6F: return done(InsnOp::outs);
    case 0x0F: break;
    default: return fail(InsnError::unsupported);
    }

    if (!c.need(1)) return fail(c.error());
    u8 second = c.next();
    switch (second) {
    case 0xA2: return done(InsnOp::cpuid);
    case 0x30: return done(InsnOp::wrmsr);
    case 0x31: return done(InsnOp::rdtsc);
    case 0x32: return done(InsnOp::rdmsr);
    case 0x33: return done(InsnOp::rdpmc);
    case 0x08: return done(InsnOp::invd);
    case 0x09: return done(InsnOp::wbinvd);
    case 0x20:
    case 0x21:
    case 0x22:
    case 0x23:
        // MOV to/from CR/DR: the ModRM always names registers, whatever its mod field says.
        if (!c.need(1)) return fail(c.error());
        c.skip(1);
        return done(second == 0x20 || second == 0x22 ? InsnOp::mov_cr : InsnOp::mov_dr);
    case 0x78:
    case 0x79: {  // VMREAD, VMWRITE
        if (!c.need(1)) return fail(c.error());
        u8 modrm = c.next();
        if (!skip_memory_operand(c, modrm, address16)) return fail(c.error());
        return done(InsnOp::vmx_other);
    }
    case 0xC7: {  // group 9: /6 VMPTRLD, VMCLEAR, VMXON; /7 VMPTRST (memory forms)
        if (!c.need(1)) return fail(c.error());
        u8 modrm = c.next();
        u8 reg = (modrm >> 3) & 7;
        if ((modrm >> 6) == 3 || reg < 6) return fail(InsnError::unsupported);
        if (!skip_memory_operand(c, modrm, address16)) return fail(c.error());
        return done(InsnOp::vmx_other);
    }
    case 0x38: {  // 66 0F 38 80/81: INVEPT, INVVPID
        if (!c.need(1)) return fail(c.error());
        u8 third = c.next();
        if (third != 0x80 && third != 0x81) return fail(InsnError::unsupported);
        if (!c.need(1)) return fail(c.error());
        u8 modrm = c.next();
        if ((modrm >> 6) == 3) return fail(InsnError::unsupported);
        if (!skip_memory_operand(c, modrm, address16)) return fail(c.error());
        return done(InsnOp::vmx_other);
    }
    case 0x01: break;
    default: return fail(InsnError::unsupported);
    }

    // Group 7 (0F 01): register forms are whole instructions, memory forms take an operand.
    if (!c.need(1)) return fail(c.error());
    u8 modrm = c.next();
    if ((modrm >> 6) == 3) {
        switch (modrm) {
        case 0xC1: return done(InsnOp::vmcall);
        case 0xC2: return done(InsnOp::vmlaunch);
        case 0xC3: return done(InsnOp::vmresume);
        case 0xC4: return done(InsnOp::vmxoff);
        case 0xC8: return done(InsnOp::monitor);
        case 0xC9: return done(InsnOp::mwait);
        case 0xD0: return done(InsnOp::xgetbv);
        case 0xD1: return done(InsnOp::xsetbv);
        case 0xD8: return done(InsnOp::vmrun);
        case 0xD9: return done(InsnOp::vmmcall);
        case 0xDA: return done(InsnOp::vmload);
        case 0xDB: return done(InsnOp::vmsave);
        case 0xDC: return done(InsnOp::stgi);
        case 0xDD: return done(InsnOp::clgi);
        case 0xDE: return done(InsnOp::skinit);
        case 0xDF: return done(InsnOp::invlpga);
        case 0xF8:
            if (!long64) return fail(InsnError::unsupported);
            return done(InsnOp::swapgs);
        case 0xF9: return done(InsnOp::rdtscp);
        default: return fail(InsnError::unsupported);
        }
    }
    u8 reg = (modrm >> 3) & 7;
    InsnOp op;
    switch (reg) {
    case 0:
    case 1:
    case 2:
    case 3: op = InsnOp::descriptor_table; break;
    case 4:
    case 6: op = InsnOp::msw; break;
    case 7: op = InsnOp::invlpg; break;
    default: return fail(InsnError::unsupported);
    }
    if (!skip_memory_operand(c, modrm, address16)) return fail(c.error());
    return done(op);
}

}  // namespace nestor::x86
