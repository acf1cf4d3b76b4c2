// The Nestor guest SDK: a small runtime for bare-metal 64-bit test guests.
//
// A guest defines `extern "C" int guest_main(const nestor_guest_boot* boot)`. The runtime boots it
// from multiboot v1 into long mode (identity map of the first 4 GiB), installs handlers for the 32
// exception vectors, calls guest_main and exits with its return value. See docs/guest-sdk.md.
//
// Freestanding: no heap, no exceptions, no standard library. Everything here is usable before and
// after guest_main; nothing needs initialising by the guest.
#pragma once

#include <stdint.h>

#include "nestor/abi/abi.h"
#include "nestor/arch/x86_regs.hpp"

namespace nestor::guest {

using u8 = uint8_t;
using u16 = uint16_t;
using u32 = uint32_t;
using u64 = uint64_t;
using i64 = int64_t;

// The control-register, EFER, RFLAGS and XCR0 bits.
using namespace x86_regs;

// ---- Console: the 16550 UART at 0x3F8 ----------------------------------------------------------

struct Hex {
    u64 value;
    u8 digits;  // at least this many digits (zero-padded)
};
constexpr Hex hex(u64 value, u8 digits = 0) { return {value, digits}; }

void print(char c);
void print(const char* text);
void print(bool value);  // "true" / "false"
void print(Hex value);   // 0x..., lower case
void print_hex(u64 value, u8 digits = 0);
void print_dec(u64 value);
void print_signed(i64 value);

// Any integer prints in decimal; wrap it in hex() for hexadecimal.
template <typename T>
    requires(__is_integral(T) && !__is_same(T, bool) && !__is_same(T, char))
void print(T value) {
    if constexpr (__is_signed(T))
        print_signed(static_cast<i64>(value));
    else
        print_dec(static_cast<u64>(value));
}

// println("x=", 5, " at ", hex(addr)) prints one line.
template <typename... Args> void println(const Args&... args) {
    (print(args), ...);
    print('\n');
}

// ---- Exit ----------------------------------------------------------------------------------------

// Ends the guest with `status` through the exit port 0xF4 (isa-debug-exit under QEMU, the
// domain's exit port under Nestor); halts forever if nothing is listening there.
[[noreturn]] void exit(u8 status);

// The status a guest ends with when an exception hits it outside probe()/try_run().
inline constexpr u8 kUnexpectedExceptionStatus = 0x7f;

// ---- Checks --------------------------------------------------------------------------------------

// Prints "ok: what" or "FAIL: what" and counts; returns cond.
bool check(bool cond, const char* what);
u32 check_failures();
// Prints "checks: N passed, M failed" and returns the exit status a test guest should end with
// (0 when nothing failed, 1 otherwise): `return check_summary();` at the end of guest_main.
int check_summary();

// ---- Exceptions ----------------------------------------------------------------------------------

inline constexpr u8 kVectorDE = 0;
inline constexpr u8 kVectorDB = 1;
inline constexpr u8 kVectorNMI = 2;
inline constexpr u8 kVectorBP = 3;
inline constexpr u8 kVectorUD = 6;
inline constexpr u8 kVectorDF = 8;
inline constexpr u8 kVectorSS = 12;
inline constexpr u8 kVectorGP = 13;
inline constexpr u8 kVectorPF = 14;
inline constexpr u8 kVectorAC = 17;
inline constexpr u8 kNoException = 0xFF;  // ExceptionRecord::vector when nothing was raised

struct ExceptionRecord {
    bool raised = false;
    u8 vector = kNoException;
    u64 error_code = 0;  // 0 for vectors without one
    u64 rip = 0;         // of the faulting instruction
    u64 cr2 = 0;         // the faulting address, for #PF
};

// Runs fn; if it raises an exception, the handler records it and resumes here, abandoning the
// rest of fn. Probes nest.
ExceptionRecord probe(void (*fn)());
ExceptionRecord probe(void (*fn)(void*), void* context);

// try_run([&] { ... }): probe() for lambdas.
template <typename F> ExceptionRecord try_run(const F& fn) {
    return probe([](void* f) { (*static_cast<const F*>(f))(); }, const_cast<F*>(&fn));
}

const char* exception_name(u8 vector);  // "#UD invalid opcode"

// ---- Boot information (multiboot v1, parsed and bounds-checked at start) -------------------------

struct MemoryRange {
    u64 base;
    u64 length;
    u32 type;  // multiboot: 1 usable, 3 ACPI, 4 preserve, 5 bad, anything else reserved
    bool usable() const { return type == 1; }
};

struct Module {
    u64 start;
    u64 end;              // exclusive
    const char* cmdline;  // never null
};

struct BootInfo {
    static constexpr u32 kMaxMemoryRanges = 32;
    static constexpr u32 kMaxModules = 16;
    static constexpr u32 kMaxCmdline = 1024;

    u32 magic;                  // EAX at entry (0x2BADB002 from a multiboot v1 loader)
    u64 info_address;           // EBX at entry
    bool valid;                 // magic matched and the information block was read
    bool truncated;             // more ranges/modules (or a longer command line) than the tables hold
    char cmdline[kMaxCmdline];  // "" when none was given
    u32 memory_range_count;
    MemoryRange memory_ranges[kMaxMemoryRanges];
    u32 module_count;
    Module modules[kMaxModules];

    u64 usable_bytes() const;
    // True if the command line holds `word` as a whole space-separated word.
    bool cmdline_has(const char* word) const;
    // The value of "key=value" on the command line, or null; `key` without the '='.
    const char* cmdline_value(const char* key, char* buffer, u32 size) const;
};

// The boot information guest_main also receives.
const BootInfo& boot_info();

// ---- Hypercalls (sdk/include/nestor/abi/hypercall.h) ---------------------------------------------

struct HypercallResult {
    u64 status = NESTOR_E_OK;  // NESTOR_E_*
    u64 value[NESTOR_HYPERCALL_VALUES] = {};
    bool ok() const { return status == NESTOR_E_OK; }
};

enum class HypercallInstruction : u8 { vmmcall, vmcall };
// VMMCALL on AMD, VMCALL otherwise; chosen once at start from the CPUID vendor.
HypercallInstruction hypercall_instruction();

// Registers: number in RAX, arguments in RDI, RSI, RDX, R10, R8, R9; the status comes back in RAX
// and the values in RDI, RSI, RDX (docs/guest-sdk.md). Unused arguments must be zero.
HypercallResult hypercall(u64 number, u64 a0 = 0, u64 a1 = 0, u64 a2 = 0, u64 a3 = 0, u64 a4 = 0, u64 a5 = 0);

HypercallResult console_write(const char* text, u64 length);
HypercallResult yield();
// Waits for a signal on the domain's own notification (NESTOR_GUEST_SLOT_NOTIFICATION): polls it
// and, while nothing is pending, halts with interrupts enabled, which Nestor treats as "run me
// again when a signal arrives". Returns the accumulated badges; 0 if polling failed. Under Nestor
// only: on bare hardware nothing would wake the HLT.
u64 wait_for_signal();
// Signals as interrupts: while a signal is pending on the domain's own notification, Nestor
// raises external interrupt `vector` (32..255; 0: none) once the guest has interrupts enabled;
// polling the notification (wait_for_signal, poll_signals) re-arms it (NESTOR_HC_NOTIFICATION_SET_VECTOR).
HypercallResult set_signal_vector(u8 vector);
// Takes the pending signals without waiting: the accumulated badges, 0 if none.
u64 poll_signals();
// Runs `handler` (with interrupts disabled) when interrupt `vector` (32..255) arrives; nullptr
// removes it. An interrupt without a handler is reported and ends the guest.
using InterruptHandler = void (*)(u8 vector);
void set_interrupt_handler(u8 vector, InterruptHandler handler);
inline void enable_interrupts() { asm volatile("sti" ::: "memory"); }
inline void disable_interrupts() { asm volatile("cli" ::: "memory"); }
HypercallResult physcaps();     // value[0] = NESTOR_PHYSCAP_* bits
HypercallResult abi_version();  // value[0] = NESTOR_ABI_VERSION
HypercallResult shutdown(u64 reason);
// A capability invocation: `number` acts on the object `cap` names (NESTOR_HC_CAP_*, _UNTYPED_*, ...).
HypercallResult invoke(u64 number, nestor_cptr_t cap, u64 a1 = 0, u64 a2 = 0, u64 a3 = 0, u64 a4 = 0, u64 a5 = 0);

// True when CPUID leaf 0x40000000 carries the "NestorNestor" signature.
bool running_on_nestor();

// ---- CPU helpers ---------------------------------------------------------------------------------

struct CpuidResult {
    u32 eax, ebx, ecx, edx;
};

inline CpuidResult cpuid(u32 leaf, u32 subleaf = 0) {
    CpuidResult r;
    asm volatile("cpuid" : "=a"(r.eax), "=b"(r.ebx), "=c"(r.ecx), "=d"(r.edx) : "a"(leaf), "c"(subleaf));
    return r;
}

inline u64 rdtsc() {
    u32 lo, hi;
    asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (u64{hi} << 32) | lo;
}

inline u64 rdmsr(u32 index) {
    u32 lo, hi;
    asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(index));
    return (u64{hi} << 32) | lo;
}

inline void wrmsr(u32 index, u64 value) {
    asm volatile("wrmsr" ::"c"(index), "a"(static_cast<u32>(value)), "d"(static_cast<u32>(value >> 32)));
}

inline u8 inb(u16 port) {
    u8 v;
    asm volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
inline u16 inw(u16 port) {
    u16 v;
    asm volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
inline u32 inl(u16 port) {
    u32 v;
    asm volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
inline void outb(u16 port, u8 v) { asm volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }
inline void outw(u16 port, u16 v) { asm volatile("outw %0, %1" ::"a"(v), "Nd"(port)); }
inline void outl(u16 port, u32 v) { asm volatile("outl %0, %1" ::"a"(v), "Nd"(port)); }

inline u64 read_cr0() {
    u64 v;
    asm volatile("mov %%cr0, %0" : "=r"(v));
    return v;
}
inline u64 read_cr2() {
    u64 v;
    asm volatile("mov %%cr2, %0" : "=r"(v));
    return v;
}
inline u64 read_cr3() {
    u64 v;
    asm volatile("mov %%cr3, %0" : "=r"(v));
    return v;
}
inline u64 read_cr4() {
    u64 v;
    asm volatile("mov %%cr4, %0" : "=r"(v));
    return v;
}
inline u64 read_cr8() {
    u64 v;
    asm volatile("mov %%cr8, %0" : "=r"(v));
    return v;
}

inline void pause() { asm volatile("pause"); }

// Small string helpers (no standard library here).
u64 string_length(const char* s);
bool string_equal(const char* a, const char* b);

}  // namespace nestor::guest

using nestor_guest_boot = nestor::guest::BootInfo;

// Defined by the guest. Its return value (0..255) is the guest's exit status.
extern "C" int guest_main(const nestor_guest_boot* boot);
