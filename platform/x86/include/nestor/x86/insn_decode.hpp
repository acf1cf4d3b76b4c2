// Instruction decoding for the instructions that exit to the hypervisor, in any vendor's backend:
// where the CPU does not say where the next instruction starts (SVM without NRIP save, as under
// QEMU TCG) the backend reads the bytes at the guest's CS:RIP and decodes prefixes and opcode
// itself. The MMIO operand decoder (mmio_decode.cpp) shares its prefix and ModRM reading. Pure
// logic: no hardware access, tested on the host.
#pragma once

#include "nestor/lib/result.hpp"
#include "nestor/virt/vcpu_state.hpp"

namespace nestor::x86 {

inline constexpr usize kMaxInstructionLength = 15;

enum class InsnOp : u8 {
    cpuid,
    hlt,
    rdmsr,
    wrmsr,
    rdtsc,
    rdtscp,
    rdpmc,
    pause,
    invd,
    wbinvd,
    xsetbv,
    xgetbv,
    monitor,
    mwait,
    in,
    out,
    ins,
    outs,
    vmrun,
    vmmcall,
    vmload,
    vmsave,
    stgi,
    clgi,
    skinit,
    invlpga,
    vmcall,
    vmlaunch,
    vmresume,
    vmxoff,
    vmx_other,  // VMX instructions (VMREAD, VMPTRLD, INVEPT, ...)
    invlpg,
    descriptor_table,
    msw,  // 0F 01 memory forms: SGDT..LIDT, SMSW/LMSW
    mov_cr,
    mov_dr,
    swapgs,
};

const char* insn_op_name(InsnOp op);

enum class InsnError : u8 {
    truncated,    // the bytes end before the instruction does
    too_long,     // more than 15 bytes (the CPU raises #GP)
    unsupported,  // not an instruction this decoder knows
};

const char* insn_error_name(InsnError error);

struct Insn {
    u8 length;
    InsnOp op;
    u8 prefix_count;    // legacy prefixes and REX
    bool operand_size;  // 66
    bool address_size;  // 67
    bool rep;           // F3
    bool repne;         // F2
    bool lock;          // F0
    u8 segment;         // segment override prefix byte (26, 2E, 36, 3E, 64, 65) or 0
    u8 rex;             // the effective REX byte (64-bit mode) or 0
};

// Decodes the instruction starting at bytes[0]; `available` bytes can be read.
Result<Insn, InsnError> decode_instruction(const u8* bytes, usize available, virt::CpuMode mode);

}  // namespace nestor::x86
