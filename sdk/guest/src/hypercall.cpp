// Hypercalls: the ABI of sdk/include/nestor/abi/hypercall.h on the VMMCALL/VMCALL instruction.
#include "runtime.hpp"

namespace nestor::guest {
namespace {

// "AuthenticAMD" and "HygonGenuine" (an AMD design) use VMMCALL; everything else VMCALL.
constexpr u32 kVendorAmdEbx = 0x68747541;    // "Auth"
constexpr u32 kVendorHygonEbx = 0x6f677948;  // "Hygo"
constexpr u32 kHypervisorLeaf = 0x40000000;
constexpr u32 kNestorSignature[3] = {0x7473654E, 0x654E726F, 0x726F7473};  // "Nest" "orNe" "stor"

HypercallInstruction instruction = HypercallInstruction::vmcall;

}  // namespace

namespace detail {

void hypercall_init() {
    u32 vendor = cpuid(0).ebx;
    bool amd = vendor == kVendorAmdEbx || vendor == kVendorHygonEbx;
    instruction = amd ? HypercallInstruction::vmmcall : HypercallInstruction::vmcall;
}

}  // namespace detail

HypercallInstruction hypercall_instruction() { return instruction; }

HypercallResult hypercall(u64 number, u64 a0, u64 a1, u64 a2, u64 a3, u64 a4, u64 a5) {
    HypercallResult result;
    register u64 rax asm("rax") = number;
    register u64 rdi asm("rdi") = a0;
    register u64 rsi asm("rsi") = a1;
    register u64 rdx asm("rdx") = a2;
    register u64 r10 asm("r10") = a3;
    register u64 r8 asm("r8") = a4;
    register u64 r9 asm("r9") = a5;
    if (instruction == HypercallInstruction::vmmcall)
        asm volatile("vmmcall" : "+r"(rax), "+r"(rdi), "+r"(rsi), "+r"(rdx), "+r"(r10), "+r"(r8), "+r"(r9)::"memory");
    else
        asm volatile("vmcall" : "+r"(rax), "+r"(rdi), "+r"(rsi), "+r"(rdx), "+r"(r10), "+r"(r8), "+r"(r9)::"memory");
    result.status = rax;
    result.value[0] = rdi;
    result.value[1] = rsi;
    result.value[2] = rdx;
    return result;
}

HypercallResult console_write(const char* text, u64 length) {
    return hypercall(NESTOR_HC_CONSOLE_WRITE, reinterpret_cast<u64>(text), length);
}

HypercallResult yield() { return hypercall(NESTOR_HC_YIELD); }

u64 wait_for_signal() {
    for (;;) {
        HypercallResult poll = invoke(NESTOR_HC_NOTIFICATION_POLL, NESTOR_GUEST_SLOT_NOTIFICATION);
        if (!poll.ok()) return 0;
        if (poll.value[1]) return poll.value[0];
        asm volatile("sti; hlt; cli" ::: "memory");
    }
}
HypercallResult set_signal_vector(u8 vector) {
    return invoke(NESTOR_HC_NOTIFICATION_SET_VECTOR, NESTOR_GUEST_SLOT_NOTIFICATION, vector);
}

u64 poll_signals() {
    HypercallResult poll = invoke(NESTOR_HC_NOTIFICATION_POLL, NESTOR_GUEST_SLOT_NOTIFICATION);
    return poll.ok() ? poll.value[0] : 0;
}

HypercallResult physcaps() { return hypercall(NESTOR_HC_PHYSCAPS); }
HypercallResult abi_version() { return hypercall(NESTOR_HC_ABI_VERSION); }
HypercallResult shutdown(u64 reason) { return hypercall(NESTOR_HC_SHUTDOWN, reason); }

HypercallResult invoke(u64 number, nestor_cptr_t cap, u64 a1, u64 a2, u64 a3, u64 a4, u64 a5) {
    return hypercall(number, cap, a1, a2, a3, a4, a5);
}

bool running_on_nestor() {
    if (cpuid(0x1).ecx >> 31 == 0) return false;  // no hypervisor bit: bare metal
    CpuidResult r = cpuid(kHypervisorLeaf);
    return r.ebx == kNestorSignature[0] && r.ecx == kNestorSignature[1] && r.edx == kNestorSignature[2];
}

}  // namespace nestor::guest
