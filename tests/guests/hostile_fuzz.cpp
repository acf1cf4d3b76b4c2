// A hostile-guest fuzzer: a deterministic, seeded guest that runs short random instruction
// streams against the hypervisor beside healthy domains (tests/boot/fuzz.cmake).
//
// Each iteration writes a stream of 1..kMaxInstructions random instructions into a scratch code
// page, biased toward what exits or touches the virtual CPU's state: CPUID with random leaves,
// RDMSR/WRMSR of interesting and random MSRs, RDTSC(P), RDPMC, RDPID, the hypercall (VMMCALL and
// VMCALL) with random numbers and arguments, IN/OUT on interesting and random ports, STI;HLT,
// MOV to and from CR0/2/3/4/8 and DR0-7, XSETBV/XGETBV, INVLPG, INVLPGA, INVPCID, INT n, INT3,
// INTO, INT1, UD0/1/2, the 0F 00 and 0F 01 groups with random ModRM, SVM and VMX instructions,
// SYSCALL/SYSRET/SYSENTER, random two-byte opcodes and ordinary one-byte ones, all with random
// legacy and REX prefixes and ModRM/SIB/displacement bytes. The stream starts from random but
// bounded registers (mostly pointers into the scratch data pages, small numbers, ports, MSR
// numbers) and random flags (IF always set, so HLT waits rather than ends the domain).
//
// However a stream ends (its last jump, an exception, an interrupt), hostile_fuzz_stream.S puts
// the guest's critical state back from a read-only copy and the next iteration runs. The guest
// runs on page tables of its own, in a read-only page with its GDT, TSS and IDT: its image is
// mapped (code read-only, data writable), the scratch code page at 4 MiB (writable, executable)
// and 60 KiB of scratch data after it (writable, not executable); nothing else is mapped, so a wild
// access is a #PF of its own instead of a nested page fault that would end the domain.
//
// Filtered, because they would only wreck the guest itself: LTR (see emit_group_0f00), LGDT and
// LIDT (replaced by SGDT and SIDT), MOV to CR3 of anything but its own tables (with random PWT/PCD), MOV to CR0 of
// anything but up to two flipped bits a CPU accepts in long mode, DR6/DR7 with bits 63:32 (DR7's data and I/O
// breakpoints, always: see emit_mov_dr), MOV to CR4 of more than one
// flipped bit among those CPUID offers, HLT with interrupts off, string I/O, the exit port and the SHUTDOWN hypercall,
// all of which end a domain. With the word `deadly` on the command line they are allowed (and the domain is expected to
// be stopped early, with the kernel's report).
//
// Command line: seed=N (default 1), iterations=N (default 1000), deadly, trace (print each stream's
// bytes and starting registers before it runs, to reproduce what the kernel reports); the domain signals
// NESTOR_GUEST_SLOT_SIGNAL_BASE before each stream (a neighbour's HLT wakes on that). It prints
// its progress every 1000 iterations and ends with
//   fuzz: seed S: I of I iterations: C ran to their end, E ended in an exception or interrupt
// and exits 0.
#include "hostile.hpp"
#include "nestor/x86_tables.hpp"

using namespace nestor::guest;

extern "C" {
struct FuzzRegisters {
    u64 rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8, r9, r10, r11, r12, r13, r14, r15, rflags;
};
static_assert(sizeof(FuzzRegisters) == 17 * 8);  // hostile_fuzz_stream.S's REG_* offsets

struct [[gnu::packed]] DescriptorPointer {
    u16 limit;
    u64 base;
};

// What hostile_fuzz_stream.S restores after every stream (its SAVED_* offsets).
struct FuzzSaved {
    DescriptorPointer gdtr;
    u8 pad0[6];
    DescriptorPointer idtr;
    u8 pad1[6];
    u64 cr0, cr3, cr4, efer, xcr0, has_xcr0;
};
static_assert(__builtin_offsetof(FuzzSaved, idtr) == 16 && __builtin_offsetof(FuzzSaved, cr0) == 32 &&
              __builtin_offsetof(FuzzSaved, has_xcr0) == 72);

u64 fuzz_run_stream(const FuzzRegisters* registers, u64 entry);
void fuzz_stream_done();
extern const char fuzz_vector_stubs[];
}

namespace {

constexpr u64 kPage = 4096;
constexpr u64 kStreamCompleted = 0x100;  // hostile_fuzz_stream.S's STREAM_COMPLETED
constexpr u64 kCodePage = 0x400000;      // the scratch code page; 2 MiB of nothing below it
constexpr u64 kScratch = kCodePage + kPage;
constexpr u64 kScratchBytes = 15 * kPage;
constexpr u64 kScratchEnd = kScratch + kScratchBytes;
constexpr u64 kStackFill = 512;  // bytes below the scratch stack's top holding fuzz_stream_done
constexpr u32 kMaxInstructions = 12;
constexpr u16 kCodeSelector = 0x08, kDataSelector = 0x10, kTssSelector = 0x18;
constexpr u64 kPresent = 1, kWritable = 2, kAccessed = 1u << 5, kDirty = 1u << 6, kNoExecute = u64{1} << 63;
constexpr u16 kExitPort = 0xF4;
constexpr u64 kHypercallShutdown = NESTOR_HC_SHUTDOWN;

using x86::IdtGate;
using x86::Tss;

// Everything exception delivery and the restore path read: mapped read-only once built.
struct alignas(4096) Critical {
    FuzzSaved saved;
    u64 pad[512 - sizeof(FuzzSaved) / 8];
    u64 pml4[512], pdpt[512], pd[512], pt_image[512], pt_scratch[512];
    IdtGate idt[256];
    u64 gdt[6];
    Tss tss;
};

alignas(4096) u8 ist_stack[2 * kPage];

}  // namespace

// hostile_fuzz_stream.S reads `saved` at its start.
extern "C" {
Critical fuzz_critical;
extern char __guest_image_start[], __guest_image_end[], __init_array_end[];  // guest.ld
}

namespace {

FuzzSaved& fuzz_saved = fuzz_critical.saved;

// ---- the random source ---------------------------------------------------------------------

u64 rng_state = 1;
u64 rnd() {  // xorshift64*: the same stream for the same seed
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1D;
}
u64 below(u64 n) { return n ? rnd() % n : 0; }
bool one_in(u64 n) { return below(n) == 0; }
template <typename T, u64 N> T pick(const T (&values)[N]) { return values[below(N)]; }

bool deadly = false;
bool trace = false;
// The CR4 bits a stream may flip outside deadly mode: those this CPU's CPUID offers (and VMXE
// and SMXE, which must #GP), but not PAE, which long mode needs. See cr4_bits_offered().
u64 cr4_flippable = 0;
bool vendor_amd = false;

// ---- the interesting values ----------------------------------------------------------------

constexpr u32 kLeaves[] = {0,          1,          2,          4,          6,          7,          0xA,
                           0xB,        0xD,        0xF,        0x10,       0x12,       0x14,       0x1F,
                           0x40000000, 0x40000001, 0x40000010, 0x400000FF, 0x4FFFFFFF, 0x80000000, 0x80000001,
                           0x80000007, 0x80000008, 0x8000000A, 0x8000001F, 0x80000021, 0xC0000000, 0xFFFFFFFF};

constexpr u32 kMsrs[] = {0x10,       0x1B,       0x3A,       0x48,       0x49,       0x8B,       0xE7,       0xE8,
                         0xFE,       0x10B,      0x174,      0x175,      0x176,      0x179,      0x17A,      0x1A0,
                         0x1D9,      0x200,      0x201,      0x250,      0x277,      0x2FF,      0x400,      0x480,
                         0x481,      0x482,      0x48B,      0x491,      0x6E0,      0x802,      0x80B,      0x830,
                         0x838,      0xDA0,      0xC0000080, 0xC0000081, 0xC0000082, 0xC0000083, 0xC0000084, 0xC0000100,
                         0xC0000101, 0xC0000102, 0xC0000103, 0xC0010000, 0xC0010004, 0xC0010015, 0xC0010055, 0xC0010114,
                         0xC0010115, 0xC0010117, 0xC0010140, 0xC0010200, 0xC001011F, 0x40000000};

constexpr u16 kPorts[] = {0x20,  0x21,  0x40,   0x41,   0x42,   0x43,  0x60,  0x61,  0x64,   0x70,   0x71,
                          0x80,  0x81,  0x92,   0xA0,   0xA1,   0xE9,  0x3F8, 0x3F9, 0x3FA,  0x3FB,  0x3FC,
                          0x3FD, 0x3FE, 0x3FF,  0x2F8,  0x402,  0x510, 0x511, 0x604, 0xB000, 0xB004, 0xCF8,
                          0xCFC, 0xCFE, 0x8900, 0x8A00, 0xFFFF, 0x1F0, 0x1F7, 0x3F6, 0x4D0,  0x4D1,  0xCF9};

constexpr u64 kHypercalls[] = {0,  1,  2,  3,  5,  16, 17, 18, 19, 20, 21, 32, 33, 34,   35,
                               36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 63, 64, 0xFF, 0xFFFFFFFF};

// A register's starting value: mostly something a memory operand or an instruction can use.
u64 interesting_value() {
    switch (below(10)) {
    case 0:
    case 1:
    case 2: return kScratch + below(kScratchBytes - 64);
    case 3: return below(256) == kExitPort ? 0 : below(256);
    case 4: return 0;
    case 5: return rnd();
    case 6: return pick(kMsrs);
    case 7: return deadly || below(2) ? pick(kPorts) : below(0x10000);
    case 8: return pick((const u64[]){~u64{0}, u64{1} << 63, 0xFFFFFFFF, 0x7FFFFFFFFFFF, 0xFFFF800000000000});
    default: return 1;
    }
}

// ---- emitting a stream -----------------------------------------------------------------------

struct Code {
    u8* at;
    u8* limit;
    void b(u64 v) {
        if (at < limit) *at++ = static_cast<u8>(v);
    }
    void d32(u64 v) {
        for (int i = 0; i < 4; ++i) b(v >> (8 * i));
    }
    void q64(u64 v) {
        for (int i = 0; i < 8; ++i) b(v >> (8 * i));
    }
};

// REX for a register operand in the ModRM rm or opcode field (R8..R15 need REX.B).
void mov_imm32(Code& c, u32 reg, u64 value) {  // mov $imm32, %r32 (zero-extends)
    if (reg >= 8) c.b(0x41);
    c.b(0xB8 + (reg & 7));
    c.d32(value);
}
void mov_imm64(Code& c, u32 reg, u64 value) {
    c.b(reg >= 8 ? 0x49 : 0x48);
    c.b(0xB8 + (reg & 7));
    c.q64(value);
}
enum : u32 {
    kRax = 0,
    kRcx = 1,
    kRdx = 2,
    kRbx = 3,
    kRsp = 4,
    kRbp = 5,
    kRsi = 6,
    kRdi = 7,
    kR8 = 8,
    kR9 = 9,
    kR10 = 10
};

// Random legacy and REX prefixes. Without `operand_size` no 0x66, which would shorten the
// instruction's immediate and run the rest as code (only deadly streams may run random bytes).
void random_prefixes(Code& c, bool operand_size = true) {
    constexpr u8 kLegacy[] = {0x66, 0x67, 0xF2, 0xF3, 0x2E, 0x36, 0x3E, 0x26, 0x64, 0x65, 0xF0};
    if (one_in(5))
        for (u64 n = 1 + below(3); n > 0; --n) {
            u8 prefix = pick(kLegacy);
            if (prefix != 0x66 || operand_size || deadly) c.b(prefix);
        }
    if (one_in(5)) c.b(0x40 + below(16));
}

// A ModRM byte with `reg` in its reg field (random when reg > 7), with the SIB and displacement
// it asks for. Displacements stay small: RIP-relative ones land in or near the scratch code page,
// absolute ones in the unmapped first page.
void modrm(Code& c, u32 reg, bool memory_only = false) {
    u32 mod = memory_only ? below(3) : below(4);
    u32 rm = below(8);
    c.b((mod << 6) | ((reg > 7 ? below(8) : reg) << 3) | rm);
    if (mod == 3) return;
    bool disp32 = mod == 2 || (mod == 0 && rm == 5);
    if (rm == 4) {
        u8 sib = static_cast<u8>(rnd());
        c.b(sib);
        if (mod == 0 && (sib & 7) == 5) disp32 = true;
    }
    if (mod == 1) c.b(rnd());
    if (disp32) c.d32(static_cast<u32>(static_cast<i64>(below(0x2000)) - 0x1000));
}

void emit_cpuid(Code& c) {
    mov_imm32(c, kRax, one_in(4) ? static_cast<u32>(rnd()) : pick(kLeaves) + (one_in(4) ? below(4) : 0));
    mov_imm32(c, kRcx, below(4) ? below(4) : rnd());
    random_prefixes(c);
    c.b(0x0F), c.b(0xA2);
}

u64 msr_value(u32 msr) {
    if (msr == kMsrEfer && !deadly) return fuzz_saved.efer ^ (u64{1} << below(16));
    switch (below(5)) {
    case 0: return rnd();
    case 1: return 0;
    case 2: return kScratch + below(kScratchBytes);
    case 3: return u64{1} << below(64);
    default: return rnd() & 0xFFFFFFFF;
    }
}

void emit_msr(Code& c) {
    u32 msr = one_in(5) ? static_cast<u32>(rnd()) : pick(kMsrs) + (one_in(5) ? below(16) : 0);
    mov_imm32(c, kRcx, msr);
    if (one_in(2)) {
        random_prefixes(c);
        c.b(0x0F), c.b(0x32);  // rdmsr
        return;
    }
    u64 value = msr_value(msr);
    mov_imm32(c, kRax, value & 0xFFFFFFFF);
    mov_imm32(c, kRdx, value >> 32);
    random_prefixes(c);
    c.b(0x0F), c.b(0x30);  // wrmsr
}

void emit_counters(Code& c) {
    switch (below(6)) {
    case 0: c.b(0x0F), c.b(0x31); return;             // rdtsc
    case 1: c.b(0x0F), c.b(0x01), c.b(0xF9); return;  // rdtscp
    case 2:                                           // rdpmc
        mov_imm32(c, kRcx, one_in(2) ? below(8) : (one_in(2) ? 0x40000000 + below(4) : rnd()));
        c.b(0x0F), c.b(0x33);
        return;
    case 3: c.b(0xF3), c.b(0x0F), c.b(0xC7), c.b(0xF8 + below(8)); return;  // rdpid
    case 4: c.b(0x0F), c.b(0xC7), c.b(0xF0 + below(8)); return;             // rdrand
    default: c.b(0x0F), c.b(0xC7), c.b(0xF8 + below(8)); return;            // rdseed
    }
}

void emit_hypercall(Code& c) {
    u64 number = one_in(8) ? rnd() : pick(kHypercalls);
    if (deadly && one_in(16)) number = kHypercallShutdown;
    mov_imm64(c, kRax, number);
    // Arguments: capability slots and sizes are small numbers; a guest address may be anything.
    const u32 arguments[] = {kRdi, kRsi, kRdx, kR10, kR8, kR9};
    for (u32 reg : arguments) {
        if (one_in(3)) continue;  // keep the starting value
        u64 v = below(3) ? below(48) : interesting_value();
        mov_imm64(c, reg, v);
    }
    random_prefixes(c);
    bool native = below(5) != 0;
    bool vmmcall = native == vendor_amd;
    c.b(0x0F), c.b(0x01), c.b(vmmcall ? 0xD9 : 0xC1);
}

void emit_io(Code& c) {
    u16 port = one_in(4) ? static_cast<u16>(rnd()) : pick(kPorts);
    if (!deadly && port == kExitPort) port = 0x80;
    const bool out = one_in(2);
    const u32 size = below(3);  // byte, word, dword
    if (out) mov_imm32(c, kRax, rnd());
    if (deadly && one_in(8)) {  // string I/O: the kernel stops the domain
        mov_imm64(c, kRsi, kScratch);
        mov_imm64(c, kRdi, kScratch);
        mov_imm32(c, kRcx, 1 + below(4));
        mov_imm32(c, kRdx, port);
        if (one_in(2)) c.b(0xF3);
        if (size == 1) c.b(0x66);
        c.b((out ? 0x6E : 0x6C) + (size != 0));
        return;
    }
    const bool immediate_port = port < 0x100 && one_in(2);
    if (!immediate_port) mov_imm32(c, kRdx, port);
    if (size == 1) c.b(0x66);
    if (immediate_port) {
        c.b((out ? 0xE6 : 0xE4) + (size != 0));
        c.b(port);
        return;
    }
    c.b((out ? 0xEE : 0xEC) + (size != 0));
}

void emit_hlt(Code& c) {
    c.b(deadly && one_in(4) ? 0xFA : 0xFB);  // cli (deadly) or sti
    c.b(0xF4);
}

u64 control_register_value(u32 cr) {
    switch (cr) {
    case 0: {
        if (deadly) return one_in(2) ? rnd() : fuzz_saved.cr0 ^ (u64{1} << below(32));
        // MP EM TS NE WP AM CD: what a CPU accepts in long mode. QEMU also takes reserved bits and
        // NW without CD, which the next VMRUN refuses: the domain would be stopped.
        constexpr u64 kFlippable[] = {1u << 1, 1u << 2, 1u << 3, 1u << 5, 1u << 16, 1u << 18, 1u << 30};
        return fuzz_saved.cr0 ^ pick(kFlippable) ^ (one_in(2) ? pick(kFlippable) : 0);
    }
    case 4: {
        if (deadly) return one_in(2) ? rnd() : fuzz_saved.cr4 ^ (u64{1} << below(32));
        u64 flip = u64{1} << below(32);
        if (!(flip & cr4_flippable)) flip = 0;
        return fuzz_saved.cr4 ^ flip;
    }
    case 3:
        if (deadly && one_in(2)) return rnd() & 0xFFFFFF000;
        return fuzz_saved.cr3 | (below(4) << 3) | (one_in(8) ? u64{1} << 63 : 0);  // PWT, PCD, no-flush
    case 8: return below(16) + (one_in(8) ? 16 : 0);
    default: return interesting_value();  // CR2: anything; the rest #UD
    }
}

void emit_mov_cr(Code& c) {
    constexpr u32 kCrs[] = {0, 2, 3, 4, 8, 0, 4, 8, 1, 5, 9, 15};
    u32 cr = pick(kCrs);
    bool write = one_in(2);
    u32 reg = write ? kRax : below(16);
    if (write) mov_imm64(c, kRax, control_register_value(cr));
    if (cr >= 8 || reg >= 8) c.b(0x40 | (cr >= 8 ? 4 : 0) | (reg >= 8 ? 1 : 0));
    c.b(0x0F), c.b(write ? 0x22 : 0x20), c.b(0xC0 | ((cr & 7) << 3) | (reg & 7));
}

void emit_mov_dr(Code& c) {
    u32 dr = one_in(8) ? 8 + below(8) : below(8);
    bool write = one_in(2);
    u32 reg = write ? kRax : below(16);
    if (write) {
        u64 v;
        // Bits 63:32 of DR6 and DR7 must be zero: a CPU #GPs, QEMU takes them and the next VMRUN
        // refuses them (deadly streams only).
        const u64 high = deadly && one_in(4) ? rnd() & ~u64{0xFFFFFFFF} : 0;
        // DR7's R/W fields stay 0, instruction breakpoints: QEMU 7.2's SVM loads DR7 at VMRUN
        // and #VMEXIT without re-arming its breakpoint list, so a domain that arms a data
        // breakpoint where another armed an instruction one makes QEMU free the wrong list entry
        // and crash. An emulator's bug, not reachable on a CPU; data breakpoints are tested alone
        // beside a healthy domain (hostile_debug_exceptions). DR4 and DR5 are DR6 and DR7 without
        // CR4.DE.
        constexpr u64 kDr7ReadWriteFields = 0x33330000;
        if ((dr & 7) == 7 || (dr & 7) == 5)
            v = (rnd() & 0xFFFF00FF & ~kDr7ReadWriteFields) | (one_in(8) ? 1u << 13 : 0) | high;
        else if ((dr & 7) == 6 || (dr & 7) == 4)
            v = (rnd() & 0xFFFFFFFF) | high;
        else
            v = below(2) ? kScratch + below(kScratchBytes) : (one_in(2) ? kCodePage + below(64) : rnd());
        mov_imm64(c, kRax, v);
    }
    if (dr >= 8 || reg >= 8) c.b(0x40 | (dr >= 8 ? 4 : 0) | (reg >= 8 ? 1 : 0));
    c.b(0x0F), c.b(write ? 0x23 : 0x21), c.b(0xC0 | ((dr & 7) << 3) | (reg & 7));
}

void emit_xcr(Code& c) {
    mov_imm32(c, kRcx, below(4) ? 0 : (one_in(2) ? 1 : rnd()));
    constexpr u64 kXcr0s[] = {1, 3, 7, 0x1F, 0xE7, 0x207, 2, 0, 5};
    u64 v = one_in(4) ? rnd() : pick(kXcr0s);
    mov_imm32(c, kRax, v), mov_imm32(c, kRdx, v >> 32);
    random_prefixes(c);
    c.b(0x0F), c.b(0x01), c.b(one_in(3) ? 0xD0 : 0xD1);  // xgetbv, xsetbv
}

void emit_tlb(Code& c) {
    switch (below(3)) {
    case 0: c.b(0x0F), c.b(0x01), modrm(c, 7, true); return;                         // invlpg
    case 1: c.b(0x0F), c.b(0x01), c.b(0xDF); return;                                 // invlpga (rax, ecx)
    default: c.b(0x66), c.b(0x0F), c.b(0x38), c.b(0x82), modrm(c, 8, true); return;  // invpcid
    }
}

void emit_interrupt(Code& c) {
    switch (below(7)) {
    case 0: c.b(0xCD), c.b(rnd()); return;               // int n
    case 1: c.b(0xCC); return;                           // int3
    case 2: c.b(0xCE); return;                           // into: #UD in 64-bit mode
    case 3: c.b(0xF1); return;                           // int1
    case 4: c.b(0x0F), c.b(0x0B); return;                // ud2
    case 5: c.b(0x0F), c.b(0xB9), modrm(c, 8); return;   // ud1
    default: c.b(0x0F), c.b(0xFF), modrm(c, 8); return;  // ud0
    }
}

void emit_group_0f01(Code& c) {
    random_prefixes(c);
    c.b(0x0F), c.b(0x01);
    u32 mod = below(4), reg = below(8), rm = below(8);
    if (mod != 3 && (reg == 2 || reg == 3) && !deadly) reg -= 2;  // LGDT/LIDT -> SGDT/SIDT
    c.b((mod << 6) | (reg << 3) | rm);
    if (mod != 3) {
        if (rm == 4) c.b(rnd());
        if (mod == 1) c.b(rnd());
        if (mod == 2 || (mod == 0 && rm == 5)) c.d32(static_cast<u32>(below(0x1000)));
    }
}

// SLDT, STR, LLDT, VERR, VERW and the undefined /6 /7, but never LTR: QEMU's LTR of a null
// selector loads a null TR instead of raising #GP, and its next exception through the IST then
// aborts QEMU itself ("qemu: fatal: invalid tss"), which no CPU does.
void emit_group_0f00(Code& c) {
    random_prefixes(c);
    c.b(0x0F), c.b(0x00);
    u32 reg = below(8);
    if (reg == 3) reg = 1;  // LTR -> STR
    modrm(c, reg);
}

void emit_virtualization(Code& c) {
    switch (below(8)) {
    case 0: c.b(0x0F), c.b(0x01), c.b(0xD8 + below(8)); return;            // vmrun .. invlpga
    case 1: c.b(0x0F), c.b(0x01), c.b(0xC1 + below(4)); return;            // vmcall .. vmxoff
    case 2: c.b(0x0F), c.b(one_in(2) ? 0x78 : 0x79), modrm(c, 8); return;  // vmread, vmwrite
    case 3:                                                                // vmptrld, vmclear, vmxon, vmptrst
        if (one_in(2)) c.b(one_in(2) ? 0x66 : 0xF3);
        c.b(0x0F), c.b(0xC7), modrm(c, 6 + below(2), true);
        return;
    case 4: c.b(0x66), c.b(0x0F), c.b(0x38), c.b(0x80 + below(2)), modrm(c, 8, true); return;  // invept, invvpid
    case 5: c.b(0x0F), c.b(0x01), c.b(0xD4); return;                                           // vmfunc
    case 6: c.b(0x0F), c.b(0x37); return;                                                      // getsec
    default:
        mov_imm64(c, kRax, one_in(2) ? kScratch : fuzz_saved.cr3);  // vmrun/vmload/vmsave with an address
        c.b(0x0F), c.b(0x01), c.b(0xD8 + below(4));
        return;
    }
}

void emit_two_byte(Code& c) {
    // With a ModRM byte and no immediate, and without either, so that no byte runs as code it was
    // not meant to be (a fully random opcode only in deadly streams).
    constexpr u8 kWithModrm[] = {0x02, 0x03, 0x0D, 0x18, 0x1F, 0xAE, 0xAF, 0xA3, 0xB0, 0xB1, 0xC0, 0xC7, 0x40,
                                 0x4F, 0x90, 0x9F, 0xB8, 0xBC, 0x10, 0x28, 0x6F, 0x7F, 0xD6, 0xE7, 0xB6, 0xBF};
    constexpr u8 kWithout[] = {0x05, 0x06, 0x07, 0x08, 0x09, 0x34, 0x35, 0x0E, 0x77,
                               0xA0, 0xA1, 0xA2, 0xA8, 0xA9, 0xAA, 0xC8, 0xCF, 0x31};
    random_prefixes(c);
    c.b(0x0F);
    if (deadly && one_in(4)) {
        c.b(rnd()), modrm(c, 8), c.b(rnd());
        return;
    }
    switch (below(4)) {
    case 0: c.b(pick(kWithout)); return;
    case 1: c.b(0x38), c.b(rnd()), modrm(c, 8); return;
    case 2: c.b(0x3A), c.b(rnd()), modrm(c, 8), c.b(rnd()); return;
    default: c.b(pick(kWithModrm)), modrm(c, 8); return;
    }
}

void emit_one_byte(Code& c) {
    constexpr u8 kOpcodes[] = {0x00, 0x01, 0x03, 0x09, 0x21, 0x29, 0x31, 0x39, 0x50, 0x53, 0x55, 0x58, 0x5C, 0x5F,
                               0x68, 0x6A, 0x69, 0x80, 0x81, 0x83, 0x84, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8B, 0x8C,
                               0x8D, 0x8E, 0x8F, 0x90, 0x91, 0x98, 0x99, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA4, 0xA5,
                               0xA6, 0xAA, 0xAB, 0xAC, 0xAD, 0xAE, 0xAF, 0xC0, 0xC1, 0xC2, 0xC3, 0xC6, 0xC7, 0xC8,
                               0xC9, 0xCA, 0xCB, 0xCF, 0xD0, 0xD1, 0xD3, 0xD7, 0xD8, 0xD9, 0xDB, 0xDD, 0xDF, 0xE3,
                               0xEB, 0x74, 0x75, 0x7C, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFB, 0xFC, 0xFD, 0xFE, 0xFF};
    u8 op = pick(kOpcodes);
    const bool imm32 = op == 0x68 || op == 0x69 || op == 0x81 || op == 0xC7 || op == 0xF7;
    random_prefixes(c, !imm32);
    c.b(op);
    switch (op) {
    case 0x50:
    case 0x53:
    case 0x55:
    case 0x58:
    case 0x5C:
    case 0x5F:
    case 0x90:
    case 0x91:
    case 0x98:
    case 0x99:
    case 0x9B:
    case 0x9C:
    case 0x9D:
    case 0x9E:
    case 0x9F:
    case 0xA4:
    case 0xA5:
    case 0xA6:
    case 0xAA:
    case 0xAB:
    case 0xAC:
    case 0xAD:
    case 0xAE:
    case 0xAF:
    case 0xC3:
    case 0xC9:
    case 0xCB:
    case 0xCF:
    case 0xD7:
    case 0xF5:
    case 0xF8:
    case 0xF9:
    case 0xFB:
    case 0xFC:
    case 0xFD: return;
    case 0x6A:
    case 0xE3:
    case 0xEB:
    case 0x74:
    case 0x75:
    case 0x7C: c.b(below(16)); return;  // forward only: no stream loops
    case 0x68: c.d32(rnd()); return;
    case 0xC2:
    case 0xCA: c.b(rnd()), c.b(0); return;
    case 0xC8: c.b(rnd()), c.b(0), c.b(below(4)); return;
    case 0xF6:
    case 0xF7: {  // test (with an immediate), not, neg, mul, imul, div, idiv
        u32 reg = below(8);
        modrm(c, reg);
        if (reg < 2) op == 0xF6 ? c.b(rnd()) : c.d32(rnd());
        return;
    }
    default:
        modrm(c, 8);
        if (op == 0x69 || op == 0x81 || op == 0xC7) c.d32(rnd());
        if (op == 0x80 || op == 0x83 || op == 0xC0 || op == 0xC1 || op == 0xC6 || op == 0x6B) c.b(rnd());
        return;
    }
}

void emit_system_call(Code& c) {
    constexpr u8 kOps[] = {0x05, 0x07, 0x34, 0x35, 0x06, 0x08, 0x09, 0x01};
    u8 op = pick(kOps);
    if (op == 0x07 || op == 0x35) {  // sysret / sysexit: to RCX / RDX, somewhere mapped or not
        mov_imm64(c, kRcx, one_in(2) ? kCodePage : interesting_value());
        mov_imm64(c, kRdx, one_in(2) ? kCodePage : interesting_value());
        if (one_in(2)) c.b(0x48);
    }
    if (op == 0x01) {
        c.b(0x0F), c.b(0x01), c.b(0xF8);  // swapgs
        return;
    }
    c.b(0x0F), c.b(op);
}

void emit_segment(Code& c) {
    constexpr u16 kSelectors[] = {0, 3, 0x08, 0x0B, 0x10, 0x13, 0x18, 0x20, 0x28, 0x2B, 0x33, 0xFFFF};
    mov_imm32(c, kRax, one_in(4) ? rnd() : pick(kSelectors));
    u32 sreg = below(6);  // es cs ss ds fs gs: CS #UDs
    c.b(0x8E), c.b(0xC0 | (sreg << 3));
}

using Emitter = void (*)(Code&);
struct Weighted {
    Emitter emit;
    u32 weight;
};
constexpr Weighted kClasses[] = {
    {emit_cpuid, 8},       {emit_msr, 10},
    {emit_counters, 4},    {emit_hypercall, 8},
    {emit_io, 10},         {emit_hlt, 2},
    {emit_mov_cr, 6},      {emit_mov_dr, 5},
    {emit_xcr, 3},         {emit_tlb, 3},
    {emit_interrupt, 4},   {emit_group_0f01, 6},
    {emit_group_0f00, 2},  {emit_virtualization, 5},
    {emit_two_byte, 6},    {emit_one_byte, 14},
    {emit_system_call, 2}, {emit_segment, 2},
};

void emit_instruction(Code& c) {
    u32 total = 0;
    for (const Weighted& w : kClasses) total += w.weight;
    u32 r = below(total);
    for (const Weighted& w : kClasses) {
        if (r < w.weight) return w.emit(c);
        r -= w.weight;
    }
}

// The stream: instructions, then a jump to fuzz_stream_done; the rest of the page is INT3.
// Returns its length.
u64 write_stream() {
    auto* page = reinterpret_cast<u8*>(kCodePage);
    for (u64 i = 0; i < kPage; ++i) page[i] = 0xCC;
    Code c{page, page + kPage - 64};
    for (u64 n = 1 + below(kMaxInstructions); n > 0; --n) emit_instruction(c);
    const u64 jump_end = reinterpret_cast<u64>(c.at) + 5;
    c.limit = page + kPage;
    c.b(0xE9);
    c.d32(reinterpret_cast<u64>(&fuzz_stream_done) - jump_end);
    return static_cast<u64>(c.at - page);
}

FuzzRegisters starting_registers() {
    FuzzRegisters r{};
    u64* regs = &r.rax;
    for (u32 i = 0; i < 16; ++i) regs[i] = interesting_value();
    // The scratch stack: every return address on it leads back to the driver.
    r.rsp = kScratchEnd - kStackFill + 8 * below(kStackFill / 16);
    auto* stack = reinterpret_cast<u64*>(kScratchEnd - kStackFill);
    for (u64 i = 0; i < kStackFill / 8; ++i) stack[i] = reinterpret_cast<u64>(&fuzz_stream_done);
    constexpr u64 kArithmetic = 0x8D5;  // CF PF AF ZF SF OF
    r.rflags = 2 | kRflagsIf | (rnd() & kArithmetic);
    if (one_in(16)) r.rflags |= 1u << 10;       // DF
    if (one_in(32)) r.rflags |= 1u << 8;        // TF
    if (one_in(16)) r.rflags |= 1u << 18;       // AC
    if (one_in(8)) r.rflags |= below(4) << 12;  // IOPL
    if (one_in(32)) r.rflags |= 1u << 14;       // NT
    return r;
}

// ---- the guest's own page tables, GDT, TSS and IDT ------------------------------------------

u64 table_entry(const void* table) { return reinterpret_cast<u64>(table) | kPresent | kWritable | kAccessed; }

void map_page(u64 address, bool writable, bool executable) {
    u64* pt = address < 0x200000 ? fuzz_critical.pt_image : fuzz_critical.pt_scratch;
    u64 entry = address | kPresent | kAccessed | kDirty;
    if (writable) entry |= kWritable;
    if (!executable) entry |= kNoExecute;
    pt[(address >> 12) & 511] = entry;
}

void build_page_tables() {
    Critical& k = fuzz_critical;
    k.pml4[0] = table_entry(k.pdpt);
    k.pdpt[0] = table_entry(k.pd);
    k.pd[0] = table_entry(k.pt_image);  // 0 - 2 MiB: the image; 2 - 4 MiB: nothing
    k.pd[2] = table_entry(k.pt_scratch);
    const u64 start = reinterpret_cast<u64>(__guest_image_start);
    const u64 constants_end = reinterpret_cast<u64>(__init_array_end);  // text and rodata end there
    const u64 end = (reinterpret_cast<u64>(__guest_image_end) + kPage - 1) & ~(kPage - 1);
    const u64 critical_start = reinterpret_cast<u64>(&k);
    const u64 critical_end = critical_start + sizeof(Critical);
    for (u64 a = start; a < end; a += kPage) {
        bool read_only = a < constants_end || (a >= critical_start && a < critical_end);
        map_page(a, !read_only, true);
    }
    map_page(kCodePage, true, true);
    for (u64 a = kScratch; a < kScratchEnd; a += kPage) map_page(a, true, false);
}

IdtGate interrupt_gate(u64 handler) {
    return {static_cast<u16>(handler),
            kCodeSelector,
            1,
            0x8E,
            static_cast<u16>(handler >> 16),
            static_cast<u32>(handler >> 32),
            0};
}

void build_descriptor_tables() {
    fuzz_critical.gdt[1] = 0x00AF9B000000FFFF;  // 0x08: 64-bit code, accessed
    fuzz_critical.gdt[2] = 0x00CF93000000FFFF;  // 0x10: data, accessed
    const u64 tss = reinterpret_cast<u64>(&fuzz_critical.tss);
    const u64 limit = sizeof(Tss) - 1;
    fuzz_critical.gdt[3] = limit | ((tss & 0xFFFFFF) << 16) | (u64{0x89} << 40) | (((tss >> 24) & 0xFF) << 56);
    fuzz_critical.gdt[4] = tss >> 32;
    fuzz_critical.tss.ist[0] = reinterpret_cast<u64>(ist_stack + sizeof(ist_stack));
    fuzz_critical.tss.rsp[0] = fuzz_critical.tss.ist[0];
    fuzz_critical.tss.iomap_base = sizeof(Tss);  // no I/O bitmap: IOPL decides at CPL 3
    for (u32 v = 0; v < 256; ++v)
        fuzz_critical.idt[v] = interrupt_gate(reinterpret_cast<u64>(fuzz_vector_stubs) + u64{16} * v);
    fuzz_saved.gdtr = {sizeof(fuzz_critical.gdt) - 1, reinterpret_cast<u64>(fuzz_critical.gdt)};
    fuzz_saved.idtr = {sizeof(fuzz_critical.idt) - 1, reinterpret_cast<u64>(fuzz_critical.idt)};
}

// CR4 bits that exist on a CPU with this CPUID. Nestor's SVM backend emulates MOV to CR4 and,
// so far, puts a reserved bit into the VMCB instead of raising #GP, which VMRUN then refuses
// (the domain is stopped as "invalid guest state"); deadly streams still try any bit.
u64 cr4_bits_offered() {
    u64 bits = 0x7DF;  // VME PVI TSD DE PSE MCE PGE PCE OSFXSR OSXMMEXCPT (no PAE)
    bits |= (u64{1} << 13) | (u64{1} << 14);
    const CpuidResult one = cpuid(1), seven = cpuid(7);
    if ((seven.ecx >> 2) & 1) bits |= u64{1} << 11;   // UMIP
    if ((seven.ebx >> 0) & 1) bits |= u64{1} << 16;   // FSGSBASE
    if ((one.ecx >> 17) & 1) bits |= u64{1} << 17;    // PCIDE
    if ((one.ecx >> 26) & 1) bits |= u64{1} << 18;    // OSXSAVE
    if ((seven.ebx >> 7) & 1) bits |= u64{1} << 20;   // SMEP
    if ((seven.ebx >> 20) & 1) bits |= u64{1} << 21;  // SMAP
    if ((seven.ecx >> 3) & 1) bits |= u64{1} << 22;   // PKE
    return bits;
}

// Loads the tables, then takes the copies the restore path puts back.
void enter_own_state() {
    asm volatile("lgdt %0" ::"m"(fuzz_saved.gdtr));
    asm volatile("lidt %0" ::"m"(fuzz_saved.idtr));
    asm volatile(
        "mov %0, %%ds; mov %0, %%es; mov %0, %%ss; pushq %1; lea 1f(%%rip), %%rax; push %%rax; lretq; 1:" ::"r"(
            static_cast<u64>(kDataSelector)),
        "i"(kCodeSelector)
        : "rax", "memory");
    asm volatile("ltr %0" ::"r"(kTssSelector));
    u64 cr4 = read_cr4();
    bool has_xsave = (cpuid(1).ecx >> 26) & 1;
    if (has_xsave) {
        cr4 |= kCr4Osxsave;
        asm volatile("mov %0, %%cr4" ::"r"(cr4));
        u32 lo, hi;
        asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        fuzz_saved.xcr0 = (u64{hi} << 32) | lo;
        fuzz_saved.has_xcr0 = 1;
    }
    fuzz_saved.cr4 = cr4;
    fuzz_saved.cr0 = read_cr0() | kCr0Wp;
    fuzz_saved.cr3 = reinterpret_cast<u64>(fuzz_critical.pml4);
    fuzz_saved.efer = rdmsr(kMsrEfer);
    asm volatile("mov %0, %%cr0" ::"r"(fuzz_saved.cr0));
    asm volatile("mov %0, %%cr3" ::"r"(fuzz_saved.cr3) : "memory");
}

// Random OUTs may have left the domain's UART in loopback or with its divisor latch selected.
void reset_console() {
    outb(0x3F9, 0x00);
    outb(0x3FB, 0x03);
    outb(0x3FA, 0xC7);
    outb(0x3FC, 0x03);
}

// `trace`: each stream before it runs, to reproduce what the kernel reports.
void print_stream(u64 iteration, u64 length, const FuzzRegisters& r) {
    reset_console();
    hostile::print_all("fuzz: stream ", iteration, ":");
    const auto* code = reinterpret_cast<const u8*>(kCodePage);
    for (u64 i = 0; i < length; ++i) hostile::print_all(" ", hex(code[i], 2));
    println();
    const u64* regs = &r.rax;
    hostile::print_all("fuzz: registers");
    for (u32 i = 0; i < 17; ++i) hostile::print_all(" ", hex(regs[i], 1));
    println();
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot* boot) {
    const u64 seed = hostile::number_option("seed", 1);
    const u64 iterations = hostile::number_option("iterations", 1000);
    deadly = boot->cmdline_has("deadly");
    trace = boot->cmdline_has("trace");
    cr4_flippable = cr4_bits_offered();
    vendor_amd = hypercall_instruction() == HypercallInstruction::vmmcall;
    rng_state = seed * 0x9E3779B97F4A7C15 + 0x6E6573746F72;
    if (rng_state == 0) rng_state = 1;
    println("fuzz: seed ", seed, ", ", iterations, " iterations", deadly ? ", deadly instructions allowed" : "");

    build_page_tables();
    build_descriptor_tables();
    enter_own_state();

    u64 completed = 0, interrupted = 0;
    u64 vectors[257] = {};
    for (u64 i = 0; i < iterations; ++i) {
        invoke(NESTOR_HC_NOTIFICATION_SIGNAL, NESTOR_GUEST_SLOT_SIGNAL_BASE);  // wakes a neighbour's HLT
        const u64 length = write_stream();
        FuzzRegisters registers = starting_registers();
        if (trace) print_stream(i, length, registers);
        u64 end = fuzz_run_stream(&registers, kCodePage);
        if (end == kStreamCompleted)
            ++completed;
        else
            ++interrupted;
        ++vectors[end < 256 ? end : 256];
        if ((i + 1) % 1000 == 0) {
            reset_console();
            println("fuzz: ", i + 1, " iterations");
        }
    }
    reset_console();
    print("fuzz: vectors:");
    for (u32 v = 0; v < 256; ++v)
        if (vectors[v]) hostile::print_all(" ", v, "x", vectors[v]);
    println();
    println("fuzz: seed ", seed, ": ", iterations, " of ", iterations, " iterations: ", completed,
            " ran to their end, ", interrupted, " ended in an exception or interrupt");
    return 0;
}
