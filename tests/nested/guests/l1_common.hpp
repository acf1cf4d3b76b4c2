// What every L1 test hypervisor of tests/nested does alike: turn SVM on, describe an L2 that is a
// copy of L1's own 64-bit state, run it and take its #VMEXIT. L1 uses no nested paging, so L2's
// guest-physical memory is L1's: L2 runs on L1's page tables, GDT and (unless a test gives it its
// own) IDT, and its code is code of the L1 image, in assembly or in C++ that avoids whatever L1
// intercepts.
#pragma once

#include "nestor/guest.hpp"
#include "nestor/svm.hpp"

namespace l1 {

using namespace nestor::guest;
namespace svm = nestor::guest::svm;

alignas(4096) inline u8 host_save_area[4096];

// EFER.SVME and a host save area: what VMRUN needs before anything else.
inline void enable_svm() {
    wrmsr(svm::kMsrEfer, rdmsr(svm::kMsrEfer) | svm::kEferSvme);
    wrmsr(svm::kMsrVmHsavePa, reinterpret_cast<u64>(host_save_area));
}

// A stack of L2's own: L1's stays L1's while L2 runs.
struct L2Stack {
    alignas(16) u8 bytes[8192];
    // RSP at entry to a function, as a CALL leaves it (16-byte alignment minus the return address).
    u64 call_entry_rsp() const { return reinterpret_cast<u64>(bytes + sizeof(bytes)) - 8; }
};

inline void zero(void* p, u64 bytes) {
    for (u64 i = 0; i < bytes; ++i) static_cast<volatile u8*>(p)[i] = 0;
}

// L2 as a copy of L1's own 64-bit state at `rip` with stack `rsp` and interrupts off, its ASID
// `asid`, intercepting only what VMRUN requires (VMRUN) and VMMCALL, L2's way to report back.
inline void set_up_l2(svm::Vmcb& vmcb, u64 rip, u64 rsp, u32 asid = 1) {
    zero(&vmcb, sizeof(vmcb));
    svm::VmcbControl& c = vmcb.control;
    c.intercept_misc2 = svm::intercept2::vmrun | svm::intercept2::vmmcall;
    c.guest_asid = asid;
    svm::copy_own_state(vmcb.save);
    vmcb.save.rip = rip;
    vmcb.save.rsp = rsp;
}
template <typename F> inline void set_up_l2(svm::Vmcb& vmcb, F* entry, const L2Stack& stack, u32 asid = 1) {
    set_up_l2(vmcb, reinterpret_cast<u64>(entry), stack.call_entry_rsp(), asid);
}

// Runs L2 until its next #VMEXIT and returns the exit code. Every #VMEXIT clears GIF: STGI sets it
// again, as a hypervisor does before it looks at the exit.
inline u64 run(svm::Vmcb& vmcb) {
    svm::vmrun(&vmcb);
    svm::stgi();
    return vmcb.control.exit_code;
}
inline u64 run(svm::Vmcb& vmcb, svm::GuestRegisters& regs) {
    svm::vmrun(&vmcb, regs);
    svm::stgi();
    return vmcb.control.exit_code;
}

// Resumes L2 after the instruction that exited (NRIP, offered by Nestor).
inline void skip_instruction(svm::Vmcb& vmcb) { vmcb.save.rip = vmcb.control.next_rip; }

// True if `code` is `expected`; otherwise says what came instead.
inline bool expect_exit(u64 code, u64 expected, const char* what) {
    if (code == expected) return true;
    println("expected ", what, " (exit ", hex(expected, 1), "), got exit ", hex(code, 1));
    return false;
}

// The first byte above L1's RAM (the end of the highest usable range of the memory map).
inline u64 memory_end() {
    const BootInfo& boot = boot_info();
    u64 end = 0;
    for (u32 i = 0; i < boot.memory_range_count; ++i) {
        const MemoryRange& r = boot.memory_ranges[i];
        if (r.usable() && r.base + r.length > end) end = r.base + r.length;
    }
    return end;
}

// Ends a C++ L2: VMMCALL with `code` in RAX, to an L1 that intercepts it; L2 never runs again.
[[noreturn]] inline void l2_report(u64 code) {
    asm volatile("vmmcall" ::"a"(code) : "memory");
    for (;;) asm volatile("hlt");
}

}  // namespace l1
