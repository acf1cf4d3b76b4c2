#include "nestor/x86/insn_decode.hpp"

#include "insn_reader.hpp"

namespace nestor::x86 {

using virt::CpuMode;

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
    InsnReader c(bytes, available);
    Insn insn{};
    const bool long64 = mode == CpuMode::long64;
    if (!read_prefixes(c, mode, insn)) return fail(c.error());
    const bool address16 = uses_16bit_addressing(mode, insn.address_size);

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
