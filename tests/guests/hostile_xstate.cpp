// Extended state between domains (tests/boot/xstate.cmake); cmdline "mode=...":
//   fill     fills XMM0-15 (then, with AVX, YMM0-15), DR0-DR3 (breakpoints left disabled) and CR2
//            with its pattern and keeps exiting and being preempted; checks after each round that
//            its registers still hold the pattern
//   read     reads XMM0-15 (then YMM0-15), DR0-DR3 and CR2 without ever writing them, in rounds
//            between the other domains' runs: it must never see the filler's pattern
//   sum=K    SSE and AVX arithmetic in registers (integer and double) across many preemptions,
//            each domain with its own K: the results must be exact
//   xsetbv   XSETBV of a component the CPUID does not offer must #GP; what it offers works, and
//            CPUID's OSXSAVE follows the guest's own CR4
// The guests are built -mgeneral-regs-only: only the assembly here touches vector registers.
#include "hostile.hpp"

using namespace nestor::guest;

namespace {

constexpr u32 kCpuid1EcxXsave = 1u << 26;
constexpr u32 kCpuid1EcxOsxsave = 1u << 27;
constexpr u32 kCpuid1EcxAvx = 1u << 28;
constexpr u64 kPatternTag = 0xF11D000000000000;
constexpr int kRegisters = 16;
constexpr int kRounds = 60;

// 16 registers of 32 bytes: one YMM each, its low 16 bytes the XMM.
struct alignas(32) VectorFile {
    u64 q[kRegisters][4];
};

u64 pattern(int reg, int lane) { return kPatternTag | (u64(reg) << 8) | u64(lane); }

bool avx_offered() {
    CpuidResult l1 = cpuid(1);
    return (l1.ecx & kCpuid1EcxXsave) && (l1.ecx & kCpuid1EcxAvx) && (cpuid(0xD, 0).eax & 4);
}

void xsetbv(u64 value) {
    asm volatile("xsetbv" ::"c"(0), "a"(static_cast<u32>(value)), "d"(static_cast<u32>(value >> 32)));
}
u64 xgetbv() {
    u32 lo, hi;
    asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (u64{hi} << 32) | lo;
}
void write_cr4(u64 v) { asm volatile("mov %0, %%cr4" ::"r"(v) : "memory"); }

void write_debug_addresses(const u64 (&dr)[4]) {
    asm volatile("mov %0, %%dr0\n mov %1, %%dr1\n mov %2, %%dr2\n mov %3, %%dr3" ::"r"(dr[0]), "r"(dr[1]), "r"(dr[2]),
                 "r"(dr[3]));
}
void read_debug_addresses(u64 (&dr)[4]) {
    asm volatile("mov %%dr0, %0\n mov %%dr1, %1\n mov %%dr2, %2\n mov %%dr3, %3"
                 : "=r"(dr[0]), "=r"(dr[1]), "=r"(dr[2]), "=r"(dr[3]));
}
// Canonical addresses, as breakpoint addresses are.
constexpr u64 kDebugPattern = 0x00007F11D00000D0;
u64 debug_pattern(int i) { return kDebugPattern | u64(i); }
// CR2, the address of a page fault, as if the filler had taken one there.
constexpr u64 kFaultPattern = 0xFFFF8F11D0000C20;
void write_cr2(u64 v) { asm volatile("mov %0, %%cr2" ::"r"(v) : "memory"); }

void enable_avx() {
    write_cr4(read_cr4() | kCr4Osxsave);
    xsetbv(kXcr0X87 | kXcr0Sse | kXcr0Avx);
}

#define NESTOR_EACH_REG(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
#define NESTOR_LOAD_XMM(n) "movdqu " #n "*32(%0), %%xmm" #n "\n"
#define NESTOR_STORE_XMM(n) "movdqu %%xmm" #n ", " #n "*32(%0)\n"
#define NESTOR_LOAD_YMM(n) "vmovdqu " #n "*32(%0), %%ymm" #n "\n"
#define NESTOR_STORE_YMM(n) "vmovdqu %%ymm" #n ", " #n "*32(%0)\n"

void load_xmm(const VectorFile& f) { asm volatile(NESTOR_EACH_REG(NESTOR_LOAD_XMM)::"r"(&f) : "memory"); }
void store_xmm(VectorFile& f) { asm volatile(NESTOR_EACH_REG(NESTOR_STORE_XMM)::"r"(&f) : "memory"); }
void load_ymm(const VectorFile& f) { asm volatile(NESTOR_EACH_REG(NESTOR_LOAD_YMM)::"r"(&f) : "memory"); }
void store_ymm(VectorFile& f) { asm volatile(NESTOR_EACH_REG(NESTOR_STORE_YMM)::"r"(&f) : "memory"); }

// Long enough to be preempted in the middle (the tests run with a short time slice).
void spin() {
    for (u64 i = 0; i < 20000; ++i) asm volatile("" ::: "memory");
}

// The lanes a round reads: 2 per register for XMM, 4 for YMM.
bool holds_pattern(const VectorFile& f, int lanes) {
    for (int r = 0; r < kRegisters; ++r)
        for (int l = 0; l < lanes; ++l)
            if (f.q[r][l] != pattern(r, l)) return false;
    return true;
}
int foreign_lanes(const VectorFile& f, int lanes) {
    int seen = 0;
    for (int r = 0; r < kRegisters; ++r)
        for (int l = 0; l < lanes; ++l)
            if ((f.q[r][l] & 0xFFFF000000000000) == kPatternTag) ++seen;
    return seen;
}

VectorFile file;

// The filler's rounds: `lanes` 2 (XMM) or 4 (YMM).
bool fill_rounds(int lanes) {
    bool kept = true;
    for (int round = 0; round < kRounds; ++round) {
        yield();
        spin();
        lanes == 2 ? store_xmm(file) : store_ymm(file);
        kept = kept && holds_pattern(file, lanes);
        u64 dr[4];
        read_debug_addresses(dr);
        for (int i = 0; i < 4; ++i) kept = kept && dr[i] == debug_pattern(i);
        kept = kept && read_cr2() == kFaultPattern;
    }
    return kept;
}

int fill() {
    for (int r = 0; r < kRegisters; ++r)
        for (int l = 0; l < 4; ++l) file.q[r][l] = pattern(r, l);
    load_xmm(file);
    const u64 dr[4] = {debug_pattern(0), debug_pattern(1), debug_pattern(2), debug_pattern(3)};
    write_debug_addresses(dr);  // DR7 keeps them disabled: addresses only
    write_cr2(kFaultPattern);
    println("fill: xmm0-15, dr0-3 and cr2 filled");
    bool kept = fill_rounds(2);
    println("fill: xmm0-15, dr0-3 and cr2 kept through ", kRounds, " rounds: ", kept ? "yes" : "no");
    if (!avx_offered()) return kept ? 0 : 1;
    enable_avx();
    for (int r = 0; r < kRegisters; ++r)
        for (int l = 0; l < 4; ++l) file.q[r][l] = pattern(r, l);
    load_ymm(file);
    println("fill: ymm0-15 filled");
    bool kept_ymm = fill_rounds(4);
    println("fill: ymm0-15, dr0-3 and cr2 kept through ", kRounds, " rounds: ", kept_ymm ? "yes" : "no");
    return kept && kept_ymm ? 0 : 1;
}

int read_rounds(int lanes) {
    int seen = 0;
    for (int round = 0; round < kRounds; ++round) {
        lanes == 2 ? store_xmm(file) : store_ymm(file);
        seen += foreign_lanes(file, lanes);
        u64 dr[4];
        read_debug_addresses(dr);
        for (int i = 0; i < 4; ++i) seen += (dr[i] & ~u64{0xF}) == kDebugPattern;
        seen += read_cr2() == kFaultPattern;
        yield();
        spin();
    }
    return seen;
}

int read() {
    int seen = read_rounds(2);
    println("read: values of the filler's pattern seen in xmm0-15, dr0-3 and cr2: ", seen);
    if (!avx_offered()) return seen ? 1 : 0;
    enable_avx();
    int seen_ymm = read_rounds(4);
    println("read: values of the filler's pattern seen in ymm0-15, dr0-3 and cr2: ", seen_ymm);
    return seen || seen_ymm ? 1 : 0;
}

// xmm0 += xmm1 (two u64), xmm2 += xmm3 (two doubles), with AVX ymm4 += ymm5 (four u64), `n` times.
constexpr u64 kChunk = 20000;
constexpr u64 kChunks = 40;

void sum_chunk_sse() {
    u64 n = kChunk;
    asm volatile("1: paddq %%xmm1, %%xmm0\n addpd %%xmm3, %%xmm2\n dec %0\n jnz 1b" : "+r"(n)::"memory");
}
void sum_chunk_avx() {
    u64 n = kChunk;
    asm volatile("1: paddq %%xmm1, %%xmm0\n addpd %%xmm3, %%xmm2\n vpaddq %%ymm5, %%ymm4, %%ymm4\n dec %0\n jnz 1b"
                 : "+r"(n)::"memory");
}

// Doubles as their bits (the guests are built without floating point): 0.5 added 800000 times.
constexpr u64 kDoubleHalf = 0x3FE0000000000000;
constexpr u64 kDouble400000 = 0x41186A0000000000;
static_assert(kChunk * kChunks == 800000);

int sum(u64 k) {
    bool avx = avx_offered();
    if (avx) enable_avx();
    VectorFile start{};
    start.q[1][0] = k;
    start.q[1][1] = 2 * k;
    start.q[3][0] = start.q[3][1] = kDoubleHalf;
    for (int l = 0; l < 4; ++l) start.q[5][l] = k * u64(l + 3);
    avx ? load_ymm(start) : load_xmm(start);
    for (u64 c = 0; c < kChunks; ++c) {
        avx ? sum_chunk_avx() : sum_chunk_sse();
        if (c % 8 == 7) yield();  // an exit now and then: the watchdog counts slices without one
    }
    VectorFile end{};
    avx ? store_ymm(end) : store_xmm(end);
    const u64 n = kChunk * kChunks;
    bool exact = end.q[0][0] == n * k && end.q[0][1] == 2 * n * k && end.q[2][0] == kDouble400000 &&
                 end.q[2][1] == kDouble400000;
    if (avx)
        for (int l = 0; l < 4; ++l) exact = exact && end.q[4][l] == n * k * u64(l + 3);
    println("sum: ", n, " rounds of ", avx ? "SSE and AVX" : "SSE", " arithmetic: ", exact ? "exact" : "WRONG");
    return exact ? 0 : 1;
}

int xsetbv_checks() {
    CpuidResult l1 = cpuid(1);
    if (!(l1.ecx & kCpuid1EcxXsave)) {
        println("xsetbv: no XSAVE offered");
        return 0;
    }
    bool before = l1.ecx & kCpuid1EcxOsxsave;
    write_cr4(read_cr4() | kCr4Osxsave);
    bool after = cpuid(1).ecx & kCpuid1EcxOsxsave;
    println("xsetbv: CPUID OSXSAVE follows CR4: ", !before && after ? "yes" : "no");
    u64 offered = cpuid(0xD, 0).eax;
    // Bit 3 is MPX's bounds registers, which Nestor never offers; bit 8 is a supervisor component,
    // never valid in XCR0.
    const u32 not_offered[] = {3, 8};
    for (u32 bit : not_offered) {
        ExceptionRecord r = try_run([&] { xsetbv(1 | 2 | (u64{1} << bit)); });
        hostile::print_all("xsetbv: bit ", bit, (offered >> bit) & 1 ? " (offered) " : " (not offered) ");
        hostile::print_outcome(r);
        println("");
    }
    ExceptionRecord r = try_run([&] { xsetbv(offered & 7); });
    hostile::print_all("xsetbv: the offered x87/SSE/AVX bits: ");
    hostile::print_outcome(r);
    println(", xgetbv ", hex(xgetbv()));
    return 0;
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot* boot) {
    char mode[16];
    const char* what = boot->cmdline_value("mode", mode, sizeof(mode));
    if (!what) what = "fill";
    if (string_equal(what, "fill")) return fill();
    if (string_equal(what, "read")) return read();
    if (string_equal(what, "xsetbv")) return xsetbv_checks();
    return sum(hostile::number_option("sum", 1));
}
