// VMX helpers for guests that are hypervisors themselves (an L1 under Nestor's nested
// virtualization, or on bare hardware): wrappers for the VMX instructions, a VM entry that comes
// back at the next VM exit, and the VMCS host and guest state of an L2 that runs in the L1's own
// 64-bit mode on its page tables. The field encodings and control bits are Nestor's
// (nestor/arch/vmx_vmcs.hpp). The guest runtime identity-maps its memory, so a region's address is
// its physical address.
#pragma once

#include "nestor/arch/vmx_vmcs.hpp"
#include "nestor/arch/x86_regs.hpp"
#include "nestor/guest.hpp"

namespace nestor::guest::vmx {

using namespace intel_vmx;
using namespace x86_regs;

// RFLAGS after a VMX instruction: CF is VMfailInvalid, ZF VMfailValid, neither VMsucceed.
inline constexpr u64 kVmFailInvalid = u64{1} << 0;
inline constexpr u64 kVmFailValid = u64{1} << 6;
inline bool succeeded(u64 flags) { return !(flags & (kVmFailInvalid | kVmFailValid)); }

inline u64 vmxon(u64 region) {
    u64 flags;
    asm volatile("vmxon %1; pushfq; popq %0" : "=r"(flags) : "m"(region) : "cc", "memory");
    return flags;
}
inline u64 vmclear(u64 vmcs) {
    u64 flags;
    asm volatile("vmclear %1; pushfq; popq %0" : "=r"(flags) : "m"(vmcs) : "cc", "memory");
    return flags;
}
inline u64 vmptrld(u64 vmcs) {
    u64 flags;
    asm volatile("vmptrld %1; pushfq; popq %0" : "=r"(flags) : "m"(vmcs) : "cc", "memory");
    return flags;
}
inline u64 vmwrite(u32 field, u64 value) {
    u64 flags;
    asm volatile("vmwrite %2, %1; pushfq; popq %0" : "=r"(flags) : "r"(u64{field}), "r"(value) : "cc", "memory");
    return flags;
}
inline u64 vmread(u32 field) {
    u64 value = 0;
    asm volatile("vmread %1, %0" : "=r"(value) : "r"(u64{field}) : "cc", "memory");
    return value;
}

// VMXON with CR4.VMXE set, a fresh VMCS current: false (with a line) if either failed.
inline bool enter_vmx_operation(u8* vmxon_region, u8* vmcs) {
    u32 revision = static_cast<u32>(rdmsr(vmx_msr::vmx_basic) & basic::revision_mask);
    __builtin_memcpy(vmxon_region, &revision, sizeof(revision));
    __builtin_memcpy(vmcs, &revision, sizeof(revision));
    asm volatile("mov %0, %%cr4" ::"r"(read_cr4() | kCr4Vmxe) : "memory");
    const char* failed = !succeeded(vmxon(reinterpret_cast<u64>(vmxon_region))) ? "vmxon"
                         : !succeeded(vmclear(reinterpret_cast<u64>(vmcs)))     ? "vmclear"
                         : !succeeded(vmptrld(reinterpret_cast<u64>(vmcs)))     ? "vmptrld"
                                                                                : nullptr;
    if (failed) println(failed, " failed");
    return !failed;
}

// VMLAUNCH (`launch`) or VMRESUME of the current VMCS, with this code as the host RIP and this
// stack as the host RSP: returns 0 after L2's next VM exit, or RFLAGS with bit 63 set when the
// instruction failed. L2 starts with, and leaves behind, its own values in every register VM
// entry does not load, so all of them are clobbered here. RBP is kept on the stack below the red
// zone.
inline u64 enter(bool launch) {
    u64 result = launch ? 1 : 0;
    asm volatile(
        "sub $128, %%rsp\n\t"
        "push %%rbp\n\t"
        "mov %[host_rsp], %%rdx\n\t"
        "vmwrite %%rsp, %%rdx\n\t"
        "lea 1f(%%rip), %%rcx\n\t"
        "mov %[host_rip], %%rdx\n\t"
        "vmwrite %%rcx, %%rdx\n\t"
        "test %%rax, %%rax\n\t"
        "jz 2f\n\t"
        "vmlaunch\n\t"
        "jmp 3f\n"
        "2:\n\t"
        "vmresume\n"
        "3:\n\t"
        "pushfq\n\t"
        "pop %%rax\n\t"
        "bts $63, %%rax\n\t"
        "jmp 4f\n"
        "1:\n\t"
        "xor %%eax, %%eax\n"
        "4:\n\t"
        "pop %%rbp\n\t"
        "add $128, %%rsp"
        : "+a"(result)
        : [host_rsp] "i"(field::host_rsp), [host_rip] "i"(field::host_rip)
        : "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "memory", "cc");
    return result;
}

// A control value with the must-be-one bits of its TRUE_ capability MSR.
inline u32 control(u32 true_msr, u32 wanted) { return wanted | static_cast<u32>(rdmsr(true_msr)); }

struct [[gnu::packed]] TablePointer {
    u16 limit;
    u64 base;
};
inline TablePointer read_gdtr() {
    TablePointer t{};
    asm volatile("sgdt %0" : "=m"(t));
    return t;
}
inline TablePointer read_idtr() {
    TablePointer t{};
    asm volatile("sidt %0" : "=m"(t));
    return t;
}
inline u16 read_cs() {
    u16 v;
    asm volatile("mov %%cs, %0" : "=r"(v));
    return v;
}
inline u16 read_ss() {
    u16 v;
    asm volatile("mov %%ss, %0" : "=r"(v));
    return v;
}

// Access rights of flat 64-bit code, flat data, an unusable segment and a busy 64-bit TSS.
inline constexpr u32 kCode64 = 0xA09B, kData = 0xC093, kUnusable = access_rights::unusable, kBusyTss = 0x8B;
// The host TR selector VM entry wants non-null; no task switch ever uses it.
inline constexpr u16 kHostTr = 0x18;

// The L1's own state as the host state: where VM exits return it (enter() sets RSP and RIP).
inline void write_own_host_state() {
    vmwrite(field::host_cr0, read_cr0());
    vmwrite(field::host_cr3, read_cr3());
    vmwrite(field::host_cr4, read_cr4());
    vmwrite(field::host_cs_selector, read_cs());
    vmwrite(field::host_ss_selector, read_ss());
    vmwrite(field::host_ds_selector, read_ss());
    vmwrite(field::host_es_selector, read_ss());
    vmwrite(field::host_tr_selector, kHostTr);
    vmwrite(field::host_gdtr_base, read_gdtr().base);
    vmwrite(field::host_idtr_base, read_idtr().base);
    vmwrite(field::host_efer, rdmsr(vmx_msr::efer));
}

inline void write_guest_segment(u32 index, u16 selector, u32 access) {
    vmwrite(field::guest_es_selector + 2 * index, selector);
    vmwrite(field::guest_es_base + 2 * index, 0);
    vmwrite(field::guest_es_limit + 2 * index, (access & kUnusable) ? 0 : 0xFFFFFFFF);
    vmwrite(field::guest_es_access_rights + 2 * index, access);
}

// An L2 in the L1's own 64-bit mode and page tables, starting at `rip` on the stack `rsp`.
inline void write_own_guest_state(u64 rip, u64 rsp) {
    write_guest_segment(0, read_ss(), kData);  // ES
    write_guest_segment(1, read_cs(), kCode64);
    write_guest_segment(2, read_ss(), kData);
    write_guest_segment(3, read_ss(), kData);
    write_guest_segment(4, 0, kUnusable);  // FS, GS, LDTR
    write_guest_segment(5, 0, kUnusable);
    write_guest_segment(6, 0, kUnusable);
    vmwrite(field::guest_tr_selector, 0);
    vmwrite(field::guest_tr_base, 0);
    vmwrite(field::guest_tr_limit, 0x67);
    vmwrite(field::guest_tr_access_rights, kBusyTss);
    TablePointer gdt = read_gdtr(), idt = read_idtr();
    vmwrite(field::guest_gdtr_base, gdt.base);
    vmwrite(field::guest_gdtr_limit, gdt.limit);
    vmwrite(field::guest_idtr_base, idt.base);
    vmwrite(field::guest_idtr_limit, idt.limit);
    vmwrite(field::guest_cr0, read_cr0());
    vmwrite(field::guest_cr3, read_cr3());
    vmwrite(field::guest_cr4, read_cr4());
    vmwrite(field::guest_efer, rdmsr(vmx_msr::efer));
    vmwrite(field::guest_dr7, 0x400);
    vmwrite(field::guest_rflags, 2);
    vmwrite(field::guest_rsp, rsp);
    vmwrite(field::guest_rip, rip);
    vmwrite(field::vmcs_link_pointer, ~u64{0});
    vmwrite(field::guest_activity_state, 0);
    vmwrite(field::guest_interruptibility, 0);
}

// 64-bit host and guest, EFER loaded and saved, L1 owning every CR0 / CR4 bit (L2 reads L1's).
inline void write_64bit_controls(u32 pin, u32 primary, u32 secondary) {
    vmwrite(field::pin_based_controls, control(vmx_msr::vmx_true_pinbased_ctls, pin));
    vmwrite(field::primary_controls,
            control(vmx_msr::vmx_true_procbased_ctls, secondary ? primary | primary::activate_secondary : primary));
    vmwrite(field::secondary_controls, secondary);
    vmwrite(field::exit_controls, control(vmx_msr::vmx_true_exit_ctls, exit_ctl::host_address_space_size |
                                                                           exit_ctl::save_efer | exit_ctl::load_efer));
    vmwrite(field::entry_controls,
            control(vmx_msr::vmx_true_entry_ctls, entry_ctl::ia32e_mode_guest | entry_ctl::load_efer));
    vmwrite(field::cr0_guest_host_mask, ~u64{0});
    vmwrite(field::cr4_guest_host_mask, ~u64{0});
    vmwrite(field::cr0_read_shadow, read_cr0());
    vmwrite(field::cr4_read_shadow, read_cr4());
}

// After an instruction's VM exit: L2 goes on after it at the next VMRESUME.
inline void skip_instruction() {
    vmwrite(field::guest_rip, vmread(field::guest_rip) + vmread(field::exit_instruction_length));
}

}  // namespace nestor::guest::vmx
