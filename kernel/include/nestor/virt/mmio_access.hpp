// An MMIO access: what the instruction at the guest's CS:RIP does with the memory operand that
// hit a device's guest-physical range (a nested page fault). The x86 decoder of the MOV forms
// (platform/x86/cpu/mmio_decode.cpp) produces it; the exit handler applies it to the device and
// the registers (mmio_store_value, mmio_load_register).
#pragma once

#include "nestor/lib/result.hpp"
#include "nestor/virt/vcpu_state.hpp"
#include "nestor/virt/virt_ops.hpp"

namespace nestor::virt {

enum class MmioDirection : u8 { read, write };
enum class MmioOperand : u8 { gpr, immediate };  // a store's source
enum class MmioExtension : u8 { zero, sign };    // a load into a wider register (MOVZX / MOVSX)

struct MmioAccess {
    u8 length;         // the instruction's length: RIP steps over it once the access is done
    u8 size;           // bytes the memory operand accesses: 1, 2, 4 or 8
    u8 register_size;  // the register operand's size (MOVZX/MOVSX: wider than `size`)
    MmioDirection direction;
    MmioOperand operand;
    MmioExtension extension;
    Gpr reg;         // the register operand (a load's destination, a store's source)
    bool high_byte;  // the register is AH, CH, DH or BH (reg is then rax..rbx)
    u64 immediate;   // a store of an immediate: its value (sign-extended to 8 bytes where the CPU does)
};

enum class MmioDecodeError : u8 {
    unreadable,         // the bytes at CS:RIP could not be read
    truncated,          // the readable bytes end before the instruction does
    too_long,           // more than 15 bytes
    unsupported,        // not a MOV form the decoder knows
    no_memory_operand,  // a register form: it touches no memory
};

const char* mmio_decode_error_name(MmioDecodeError error);

// The value a store writes to the device, in its low `size` bytes.
u64 mmio_store_value(const MmioAccess& access, const VcpuState& state);
// Writes a loaded value into the register as the CPU would: a 32-bit register zero-extends into
// the whole register, 8- and 16-bit ones leave the rest of it unchanged.
void mmio_load_register(const MmioAccess& access, VcpuState& state, u64 value);

// Decodes the instruction starting at bytes[0] (`available` bytes readable) in `mode`.
Result<MmioAccess, MmioDecodeError> decode_mmio_instruction(const u8* bytes, usize available, CpuMode mode);
// Reads the instruction at the guest's CS:RIP through the backend and decodes it.
Result<MmioAccess, MmioDecodeError> decode_mmio_at_rip(const VirtOps& ops, VcpuHandle vcpu, const VcpuState& state);

}  // namespace nestor::virt
