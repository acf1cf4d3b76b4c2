// An L1's application processor in 64-bit mode (ap_long_mode.S): the BSP starts it with
// INIT-SIPI-SIPI at a function of the guest's image, on a stack of its own, with the BSP's page
// tables, GDT layout and IDT. The guest is in a PC domain with two vCPUs, the BSP in x2APIC mode.
#pragma once

#include "nestor/apic.hpp"
#include "nestor/guest.hpp"

extern "C" const nestor::guest::u8 ap_long_mode_start[], ap_long_mode_end[];
extern "C" const nestor::guest::u8 ap_long_mode_cr3[], ap_long_mode_stack[], ap_long_mode_entry[], ap_long_mode_idtr[];

namespace ap_long_mode {

using namespace nestor;
using namespace nestor::guest;
using namespace nestor::guest::apic;

inline constexpr u64 kBase = 0x70000;  // AP_LONG_MODE_BASE
inline constexpr u8 kStartupVector = kBase >> 12;

// Where a symbol of the trampoline is in its copy at kBase.
inline u64 at(const u8* symbol) { return kBase + static_cast<u64>(symbol - ap_long_mode_start); }

// The copy at kBase set to call `entry` on `stack_top`.
inline void prepare(void (*entry)(), u64 stack_top) {
    u8* page = reinterpret_cast<u8*>(kBase);
    for (const u8* p = ap_long_mode_start; p < ap_long_mode_end; ++p) *page++ = *p;
    u64 cr3 = 0;
    asm volatile("mov %%cr3, %0" : "=r"(cr3));
    *reinterpret_cast<volatile u64*>(at(ap_long_mode_cr3)) = cr3;
    *reinterpret_cast<volatile u64*>(at(ap_long_mode_stack)) = stack_top;
    *reinterpret_cast<volatile u64*>(at(ap_long_mode_entry)) = reinterpret_cast<u64>(entry);
    asm volatile("sidt %0" : "=m"(*reinterpret_cast<u8*>(at(ap_long_mode_idtr))) : : "memory");
}

inline void send_init(u32 apic_id) { send_ipi(apic_id, kIcrInit | kIcrAssert); }
inline void send_startup(u32 apic_id) { send_ipi(apic_id, kIcrStartup | kIcrAssert | kStartupVector); }

// Starts `apic_id` at `entry` (INIT, then two startup IPIs, as the MP protocol sends them).
inline void start(u32 apic_id, void (*entry)(), u64 stack_top) {
    prepare(entry, stack_top);
    send_init(apic_id);
    send_startup(apic_id);
    send_startup(apic_id);
}

}  // namespace ap_long_mode
