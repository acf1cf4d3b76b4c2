// The operands of L1's VMX instructions: what L1's CPU looked like when the instruction exited
// (read once from the backend, L1Cpu), and the memory operand the VM-exit instruction-information
// field and the exit qualification describe (SDM 28.2.5), with the segment and canonical checks
// the instruction makes before it touches memory (SDM vol. 3C ch. 31, "Protected Mode
// Exceptions" / "64-Bit Mode Exceptions").
#pragma once

#include "nestor/virt/vcpu_state.hpp"
#include "nestor/x86/vmx/nested_hardware.hpp"

namespace nestor::nested::vmx {

inline constexpr u32 kSegmentSs = 2;

// L1's CPU at the exit of one VMX instruction, read once; every check of the instruction uses
// this copy.
struct L1Cpu {
    u64 cr0;  // as L1 sees it (its read shadow)
    u64 cr4;
    u64 efer;
    u64 rflags;
    virt::CpuMode mode;
    u64 interruptibility;
    x86::vmx::InstructionExit exit;
    x86::vmx::GuestSegment segments[6];  // ES, CS, SS, DS, FS, GS
    u32 physical_address_bits;

    bool long_mode64() const { return mode == virt::CpuMode::long64; }
    u32 cpl() const;  // SS.DPL
};

// The VM-exit instruction-information field (SDM table 28-13 / 28-14), decoded.
struct InstructionInfo {
    u32 scaling;       // index << scaling
    u32 reg1;          // VMREAD / VMWRITE register operand (when register_operand)
    u32 address_size;  // 0: 16-bit, 1: 32-bit, 2: 64-bit
    bool register_operand;
    u32 segment;  // 0-5: ES, CS, SS, DS, FS, GS
    u32 index;
    bool index_valid;
    u32 base;
    bool base_valid;
    u32 reg2;  // VMREAD / VMWRITE: the field encoding; INVEPT / INVVPID: the type
};

InstructionInfo decode_information(u32 information);

enum class OperandFault : u8 { none, general_protection, stack };

struct MemoryOperand {
    u64 linear;
    OperandFault fault;
};

// The linear address of the memory operand, checked for an access of `bytes` (a write when
// `write`): #GP for a non-canonical address (#SS through SS) in 64-bit mode; outside it a code
// segment written or an execute-only one read (#GP), an unusable segment or an offset beyond its
// limit (#GP, #SS through SS). Flat segments skip the limit check, as on every VMX CPU.
MemoryOperand memory_operand(const InstructionInfo& info, const L1Cpu& cpu, const virt::VcpuState& state, usize bytes,
                             bool write);

bool is_canonical(u64 address);

}  // namespace nestor::nested::vmx
