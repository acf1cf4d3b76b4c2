#include "nestor/x86/guest_context.hpp"

#include "nestor/lib/assert.hpp"
#include "nestor/log.hpp"
#include "nestor/x86/cpu.hpp"
#include "nestor/x86/host_cpuid.hpp"
#include "nestor/virt/cr4_policy.hpp"
#include "nestor/x86/kernel_memory.hpp"

namespace nestor::x86 {

GuestContext* resident_guest_context = nullptr;

namespace {

using x86_regs::kCr0Em;
using x86_regs::kCr0Mp;
using x86_regs::kCr0Ts;
constexpr usize kFxsaveFcw = 0;     // x87 control word in the legacy image
constexpr usize kFxsaveMxcsr = 24;  // MXCSR in the legacy image
constexpr u16 kFcwReset = 0x037F;
constexpr u32 kMxcsrReset = 0x1F80;

// The MSRs a context may carry (GuestContext::msr): TSC_AUX first, so that a context of either
// backend carries one run of the list.
constexpr u32 kCarriedMsrs[] = {x86_regs::kMsrTscAux, x86_regs::kMsrKernelGsBase, x86_regs::kMsrStar,
                                x86_regs::kMsrLstar,  x86_regs::kMsrCstar,        x86_regs::kMsrSfmask};
constexpr u8 kTscAux = 0;
constexpr u8 kAfterTscAux = 1;
constexpr u8 kAllCarried = sizeof(kCarriedMsrs) / sizeof(kCarriedMsrs[0]);
static_assert(sizeof(GuestContext::msr) / sizeof(u64) == kAllCarried);

// Per-CPU state (one CPU so far).
virt::XsaveOffer offer = {};
u64 cr4_settable = 0;
u64 cpu_xcr0 = 0;  // what XCR0 holds (XSAVE only)
bool enabled = false;
bool tsc_aux = false;  // the CPU has RDTSCP or RDPID, hence TSC_AUX

u64 xgetbv0() {
    u32 lo, hi;
    asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (u64{hi} << 32) | lo;
}

void set_cpu_xcr0(u64 value) {
    if (value == cpu_xcr0) return;
    asm volatile("xsetbv" ::"c"(0), "a"(static_cast<u32>(value)), "d"(static_cast<u32>(value >> 32)));
    cpu_xcr0 = value;
}

#define NESTOR_DR_ACCESSORS(n)                        \
    u64 read_dr##n() {                                \
        u64 v;                                        \
        asm volatile("mov %%dr" #n ", %0" : "=r"(v)); \
        return v;                                     \
    }                                                 \
    void write_dr##n(u64 v) { asm volatile("mov %0, %%dr" #n ::"r"(v)); }
NESTOR_DR_ACCESSORS(0)
NESTOR_DR_ACCESSORS(1)
NESTOR_DR_ACCESSORS(2)
NESTOR_DR_ACCESSORS(3)
NESTOR_DR_ACCESSORS(6)
#undef NESTOR_DR_ACCESSORS

// XSAVE and XRSTOR of every offered component, whatever the guest's XCR0 leaves on: a component it
// turned off still holds its values (or another guest's, without the XRSTOR), and it may turn it
// on again.
void save(GuestContext& c) {
    if (offer.xsave) {
        c.xcr0 = cpu_xcr0;
        set_cpu_xcr0(offer.xcr0);
        asm volatile("xsave64 (%0)" ::"r"(c.area), "a"(static_cast<u32>(offer.xcr0)),
                     "d"(static_cast<u32>(offer.xcr0 >> 32))
                     : "memory");
    } else {
        asm volatile("fxsave64 (%0)" ::"r"(c.area) : "memory");
    }
    c.dr[0] = read_dr0();
    c.dr[1] = read_dr1();
    c.dr[2] = read_dr2();
    c.dr[3] = read_dr3();
    if (c.carries_dr6_cr2) {
        c.dr6 = read_dr6();
        c.cr2 = read_cr2();
    }
    for (u8 i = c.msr_first; i < c.msr_end; ++i) c.msr[i] = rdmsr(kCarriedMsrs[i]);
}

void load(const GuestContext& c) {
    if (offer.xsave) {
        set_cpu_xcr0(offer.xcr0);
        asm volatile("xrstor64 (%0)" ::"r"(c.area), "a"(static_cast<u32>(offer.xcr0)),
                     "d"(static_cast<u32>(offer.xcr0 >> 32))
                     : "memory");
        set_cpu_xcr0(c.xcr0);
    } else {
        asm volatile("fxrstor64 (%0)" ::"r"(c.area) : "memory");
    }
    write_dr0(c.dr[0]);
    write_dr1(c.dr[1]);
    write_dr2(c.dr[2]);
    write_dr3(c.dr[3]);
    if (c.carries_dr6_cr2) {
        write_dr6(c.dr6);
        write_cr2(c.cr2);
    }
    for (u8 i = c.msr_first; i < c.msr_end; ++i) wrmsr(kCarriedMsrs[i], c.msr[i]);
}

// TSC_AUX exists where RDTSCP or RDPID, which read it, do.
bool cpu_has_tsc_aux() {
    bool rdpid = cpuid(0).eax >= 7 && (cpuid(7, 0).ecx & x86_regs::kCpuid7EcxRdpid);
    bool rdtscp = cpuid(0x80000000).eax >= 0x80000001 && (cpuid(0x80000001).edx & x86_regs::kCpuidExt1EdxRdtscp);
    return rdpid || rdtscp;
}

}  // namespace

void guest_context_enable() {
    if (enabled) return;
    CpuidResult l1 = cpuid(1), l7 = cpuid(7, 0), ld = cpuid(virt::kCpuidLeafXsave, 0);
    tsc_aux = cpu_has_tsc_aux();
    offer = virt::xsave_offer({l1.eax, l1.ebx, l1.ecx, l1.edx}, {l7.eax, l7.ebx, l7.ecx, l7.edx},
                              {ld.eax, ld.ebx, ld.ecx, ld.edx});
    cr4_settable = virt::cr4_guest_settable({l1.eax, l1.ebx, l1.ecx, l1.edx}, {l7.eax, l7.ebx, l7.ecx, l7.edx}, offer);
    write_cr0((read_cr0() & ~(kCr0Em | kCr0Ts)) | kCr0Mp);
    u64 cr4 = read_cr4() | virt::kCr4Osfxsr | virt::kCr4Osxmmexcpt;
    if (offer.xsave) cr4 |= virt::kCr4Osxsave;
    write_cr4(cr4);
    u32 bytes = 512;  // the FXSAVE image
    if (offer.xsave) {
        cpu_xcr0 = xgetbv0();
        set_cpu_xcr0(offer.xcr0);
        check_xsavec(offer.xcr0);
        bytes = cpuid(virt::kCpuidLeafXsave, 0).ebx;  // for the XCR0 now set
    }
    // kXcr0Switched keeps the image within a page: PKRU, the last component, ends at 2696.
    ASSERT(bytes <= kPageSize);
    enabled = true;
    log::debug("x86: guest extended state: {}, XCR0 {:#x}, {} bytes per vCPU", offer.xsave ? "XSAVE" : "FXSAVE",
               offer.xcr0, bytes);
}

const virt::XsaveOffer& guest_xsave_offer() { return offer; }

u64 guest_cr4_settable() { return cr4_settable; }

bool guest_context_switches_tsc_aux() { return tsc_aux; }

bool guest_context_create(GuestContext& context, bool carries_dr6_cr2, bool carries_syscall_msrs) {
    ASSERT(enabled);
    auto frame = kernel_frames().allocate();
    if (!frame) return false;
    context = GuestContext{};
    context.frame = *frame;
    context.area = frame_pointer<u8>(*frame);
    fill_bytes(context.area, 0, kPageSize);  // XSTATE_BV 0: every component in its reset state
    *reinterpret_cast<u16*>(context.area + kFxsaveFcw) = kFcwReset;
    *reinterpret_cast<u32*>(context.area + kFxsaveMxcsr) = kMxcsrReset;
    context.xcr0 = virt::kXcr0X87;
    context.dr6 = 0xFFFF0FF0;
    context.carries_dr6_cr2 = carries_dr6_cr2;
    context.msr_first = tsc_aux ? kTscAux : kAfterTscAux;
    context.msr_end = carries_syscall_msrs ? kAllCarried : kAfterTscAux;
    if (context.msr_end < context.msr_first) context.msr_end = context.msr_first;
    return true;
}

void guest_context_destroy(GuestContext& context) {
    if (!context.frame) return;
    // Its registers stay in the CPU until the next load overwrites every one of them.
    if (resident_guest_context == &context) resident_guest_context = nullptr;
    auto freed = kernel_frames().free(context.frame);
    if (!freed) log::warn("x86: freeing guest context frame {:#x}", context.frame);
    context = GuestContext{};
}

void switch_guest_context(GuestContext& next) {
    // Read back rather than trusted: an emulator that misses the XSETBV intercept lets a guest set
    // XCR0 itself, and XSAVE and XRSTOR act only on the components XCR0 enables.
    if (offer.xsave) cpu_xcr0 = xgetbv0();
    if (resident_guest_context) save(*resident_guest_context);
    load(next);
    resident_guest_context = &next;
}

u64 guest_context_xcr0(const GuestContext& context) {
    if (offer.xsave && resident_guest_context == &context) return xgetbv0();
    return context.xcr0;
}

void guest_context_set_cr2(GuestContext& context, u64 cr2) {
    ASSERT(context.carries_dr6_cr2);
    context.cr2 = cr2;
    if (resident_guest_context == &context) write_cr2(cr2);
}

void guest_context_set_xcr0(GuestContext& context, u64 xcr0) {
    context.xcr0 = xcr0;
    if (resident_guest_context != &context) return;
    cpu_xcr0 = xgetbv0();
    set_cpu_xcr0(xcr0);
}

}  // namespace nestor::x86
