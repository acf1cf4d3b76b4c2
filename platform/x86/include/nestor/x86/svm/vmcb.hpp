// The AMD SVM virtual machine control block for the backend and the nested component: the layout
// (nestor/arch/svm_vmcb.hpp in the SDK, shared with guest hypervisors), every field's offset
// checked against the manual, and the constants that go with it.
#pragma once

#include "nestor/arch/svm_vmcb.hpp"
#include "nestor/lib/types.hpp"

namespace nestor::x86::svm {

using amd_svm::Vmcb;
using amd_svm::VmcbControl;
using amd_svm::VmcbSave;
using amd_svm::VmcbSegment;

static_assert(sizeof(VmcbControl) == 0x400);
static_assert(sizeof(Vmcb) == 0x1000);
#define NESTOR_VMCB_AT(field, offset) static_assert(__builtin_offsetof(Vmcb, field) == (offset), #field)
NESTOR_VMCB_AT(control.intercept_cr, 0x000);
NESTOR_VMCB_AT(control.intercept_exceptions, 0x008);
NESTOR_VMCB_AT(control.intercept_misc1, 0x00C);
NESTOR_VMCB_AT(control.intercept_misc2, 0x010);
NESTOR_VMCB_AT(control.pause_filter_threshold, 0x03C);
NESTOR_VMCB_AT(control.iopm_base_pa, 0x040);
NESTOR_VMCB_AT(control.msrpm_base_pa, 0x048);
NESTOR_VMCB_AT(control.tsc_offset, 0x050);
NESTOR_VMCB_AT(control.guest_asid, 0x058);
NESTOR_VMCB_AT(control.tlb_control, 0x05C);
NESTOR_VMCB_AT(control.int_ctl, 0x060);
NESTOR_VMCB_AT(control.interrupt_shadow, 0x068);
NESTOR_VMCB_AT(control.exit_code, 0x070);
NESTOR_VMCB_AT(control.exit_info_1, 0x078);
NESTOR_VMCB_AT(control.exit_info_2, 0x080);
NESTOR_VMCB_AT(control.exit_int_info, 0x088);
NESTOR_VMCB_AT(control.nested_control, 0x090);
NESTOR_VMCB_AT(control.event_inject, 0x0A8);
NESTOR_VMCB_AT(control.nested_cr3, 0x0B0);
NESTOR_VMCB_AT(control.virt_ext, 0x0B8);
NESTOR_VMCB_AT(control.clean_bits, 0x0C0);
NESTOR_VMCB_AT(control.next_rip, 0x0C8);
NESTOR_VMCB_AT(control.bytes_fetched, 0x0D0);
NESTOR_VMCB_AT(control.guest_instruction_bytes, 0x0D1);
NESTOR_VMCB_AT(control.avic_backing_page, 0x0E0);
NESTOR_VMCB_AT(control.avic_logical_table, 0x0F0);
NESTOR_VMCB_AT(control.avic_physical_table, 0x0F8);
NESTOR_VMCB_AT(control.vmsa_pa, 0x108);
NESTOR_VMCB_AT(save.es, 0x400);
NESTOR_VMCB_AT(save.cs, 0x410);
NESTOR_VMCB_AT(save.ss, 0x420);
NESTOR_VMCB_AT(save.ds, 0x430);
NESTOR_VMCB_AT(save.fs, 0x440);
NESTOR_VMCB_AT(save.gs, 0x450);
NESTOR_VMCB_AT(save.gdtr, 0x460);
NESTOR_VMCB_AT(save.ldtr, 0x470);
NESTOR_VMCB_AT(save.idtr, 0x480);
NESTOR_VMCB_AT(save.tr, 0x490);
NESTOR_VMCB_AT(save.cpl, 0x4CB);
NESTOR_VMCB_AT(save.efer, 0x4D0);
NESTOR_VMCB_AT(save.cr4, 0x548);
NESTOR_VMCB_AT(save.cr3, 0x550);
NESTOR_VMCB_AT(save.cr0, 0x558);
NESTOR_VMCB_AT(save.dr7, 0x560);
NESTOR_VMCB_AT(save.dr6, 0x568);
NESTOR_VMCB_AT(save.rflags, 0x570);
NESTOR_VMCB_AT(save.rip, 0x578);
NESTOR_VMCB_AT(save.rsp, 0x5D8);
NESTOR_VMCB_AT(save.rax, 0x5F8);
NESTOR_VMCB_AT(save.star, 0x600);
NESTOR_VMCB_AT(save.kernel_gs_base, 0x620);
NESTOR_VMCB_AT(save.sysenter_eip, 0x638);
NESTOR_VMCB_AT(save.cr2, 0x640);
NESTOR_VMCB_AT(save.g_pat, 0x668);
NESTOR_VMCB_AT(save.dbgctl, 0x670);
NESTOR_VMCB_AT(save.last_excp_to, 0x690);
#undef NESTOR_VMCB_AT

// control.intercept_cr: CR4 writes, to refuse bits the guest's CPUID does not offer.
inline constexpr u32 kInterceptCr4Write = 1u << (16 + 4);

// Intercept vector 3 (control.intercept_misc1).
namespace intercept1 {
inline constexpr u32 intr = 1u << 0;
inline constexpr u32 nmi = 1u << 1;
inline constexpr u32 smi = 1u << 2;
inline constexpr u32 init = 1u << 3;
inline constexpr u32 rdpmc = 1u << 15;
inline constexpr u32 cpuid = 1u << 18;
inline constexpr u32 invd = 1u << 22;
inline constexpr u32 hlt = 1u << 24;
inline constexpr u32 invlpga = 1u << 26;
inline constexpr u32 ioio_prot = 1u << 27;
inline constexpr u32 msr_prot = 1u << 28;
inline constexpr u32 shutdown = 1u << 31;
}  // namespace intercept1

// Intercept vector 4 (control.intercept_misc2).
namespace intercept2 {
inline constexpr u32 vmrun = 1u << 0;  // mandatory: VMRUN fails without it
inline constexpr u32 vmmcall = 1u << 1;
inline constexpr u32 vmload = 1u << 2;
inline constexpr u32 vmsave = 1u << 3;
inline constexpr u32 stgi = 1u << 4;
inline constexpr u32 clgi = 1u << 5;
inline constexpr u32 skinit = 1u << 6;
inline constexpr u32 wbinvd = 1u << 9;  // WBINVD and WBNOINVD
inline constexpr u32 monitor = 1u << 10;
inline constexpr u32 mwait = 1u << 11;  // unconditionally, armed or not
inline constexpr u32 xsetbv = 1u << 13;
}  // namespace intercept2

// control.intercept_exceptions: one bit per vector.
inline constexpr u32 intercept_exception(u8 vector) { return 1u << vector; }

inline constexpr u32 kIntCtlVIntrMasking = 1u << 24;
inline constexpr u64 kNestedPagingEnable = 1u << 0;
inline constexpr u8 kTlbControlNothing = 0;
inline constexpr u8 kTlbControlFlushAll = 1;

// EVENTINJ and EXITINTINFO.
inline constexpr u64 kEventValid = u64{1} << 31;
inline constexpr u64 kEventErrorCodeValid = u64{1} << 11;
inline constexpr u64 kEventTypeException = u64{3} << 8;
inline constexpr u64 kEventTypeInterrupt = u64{0} << 8;  // an external interrupt (INTR)
inline constexpr u64 kInterruptShadow = 1;               // control.interrupt_shadow: STI / MOV SS

// Exit codes (APM vol. 2, appendix C).
namespace exit_code {
inline constexpr u64 exception_base = 0x40;  // 0x40 + vector
inline constexpr u64 exception_last = 0x5F;
inline constexpr u64 intr = 0x60;
inline constexpr u64 nmi = 0x61;
inline constexpr u64 smi = 0x62;
inline constexpr u64 init = 0x63;
inline constexpr u64 cr4_write = 0x14;
inline constexpr u64 rdpmc = 0x6F;
inline constexpr u64 cpuid = 0x72;
inline constexpr u64 invd = 0x76;
inline constexpr u64 hlt = 0x78;
inline constexpr u64 invlpga = 0x7A;
inline constexpr u64 ioio = 0x7B;
inline constexpr u64 msr = 0x7C;
inline constexpr u64 shutdown = 0x7F;
inline constexpr u64 vmrun = 0x80;
inline constexpr u64 vmmcall = 0x81;
inline constexpr u64 vmload = 0x82;
inline constexpr u64 vmsave = 0x83;
inline constexpr u64 stgi = 0x84;
inline constexpr u64 clgi = 0x85;
inline constexpr u64 skinit = 0x86;
inline constexpr u64 wbinvd = 0x89;
inline constexpr u64 monitor = 0x8A;
inline constexpr u64 mwait = 0x8B;
inline constexpr u64 xsetbv = 0x8D;
inline constexpr u64 npf = 0x400;
inline constexpr u64 invalid = ~u64{0};  // VMEXIT_INVALID: the guest state failed VMRUN's checks
// QEMU stores VMEXIT_INVALID as 32 bits: the same code, truncated.
inline constexpr u64 invalid32 = 0xFFFFFFFF;
}  // namespace exit_code

// IOIO EXITINFO1.
namespace ioio {
inline constexpr u64 type_in = 1u << 0;
inline constexpr u64 string = 1u << 2;
inline constexpr u64 rep = 1u << 3;
inline constexpr u64 size8 = 1u << 4;
inline constexpr u64 size16 = 1u << 5;
inline constexpr u64 size32 = 1u << 6;
inline constexpr unsigned port_shift = 16;
}  // namespace ioio

// Nested page fault EXITINFO1 (a #PF error code).
namespace npf {
inline constexpr u64 present = 1u << 0;
inline constexpr u64 write = 1u << 1;
inline constexpr u64 fetch = 1u << 4;
}  // namespace npf

// Segment attributes in VMCB form.
namespace attrib {
inline constexpr u16 data_rw = 0x93;          // present, S, read/write, accessed
inline constexpr u16 code_rx = 0x9B;          // present, S, execute/read, accessed
inline constexpr u16 ldt = 0x82;              // present, LDT
inline constexpr u16 tss16_busy = 0x83;       // present, busy 16-bit TSS
inline constexpr u16 tss_busy = 0x8B;         // present, busy 32/64-bit TSS
inline constexpr u16 long_mode = 1u << 9;     // L
inline constexpr u16 default32 = 1u << 10;    // D/B
inline constexpr u16 granularity = 1u << 11;  // G: limit in 4 KiB units
}  // namespace attrib

inline constexpr usize kIopmBytes = 3 * 4096;   // one bit per port, plus the 3rd page for wide accesses
inline constexpr usize kMsrpmBytes = 2 * 4096;  // two bits (read, write) per MSR in three ranges

}  // namespace nestor::x86::svm
