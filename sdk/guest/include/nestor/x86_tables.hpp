// The x86-64 system tables a guest builds for itself when the SDK's own are not enough (a TSS
// with interrupt stacks, an IDT of its own): their hardware layouts, nothing more.
#pragma once

#include "nestor/guest.hpp"

namespace nestor::guest::x86 {

// The 64-bit task-state segment.
struct [[gnu::packed]] Tss {
    u32 reserved0;
    u64 rsp[3];
    u64 reserved1;
    u64 ist[7];
    u64 reserved2;
    u16 reserved3;
    u16 iomap_base;
};
static_assert(sizeof(Tss) == 104);

// The operand of LGDT/LIDT and SGDT/SIDT.
struct [[gnu::packed]] TablePointer {
    u16 limit;
    u64 base;
};

// A 64-bit IDT gate.
struct IdtGate {
    u16 offset_low;
    u16 selector;
    u8 ist;
    u8 type;
    u16 offset_mid;
    u32 offset_high;
    u32 reserved;
};
static_assert(sizeof(IdtGate) == 16);

inline constexpr u8 kInterruptGate = 0x8E;  // present, DPL 0, 64-bit interrupt gate

// An interrupt gate to `handler` in the code segment `selector`.
inline IdtGate interrupt_gate(u64 handler, u16 selector) {
    return {static_cast<u16>(handler),       selector, 0, kInterruptGate, static_cast<u16>(handler >> 16),
            static_cast<u32>(handler >> 32), 0};
}

}  // namespace nestor::guest::x86
