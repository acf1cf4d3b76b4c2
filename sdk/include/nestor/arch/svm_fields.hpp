// The values of the AMD SVM VMCB's fields (AMD64 APM vol. 2, chapter 15 and appendices B and C):
// intercept bits, exit codes and their EXITINFO layouts, EVENTINJ / EXITINTINFO, int_ctl, TLB
// control, the permission maps and segment attributes. One definition, shared like the layout
// (svm_vmcb.hpp) by Nestor's SVM backend, its nested component and guests that are hypervisors
// themselves. It depends on nothing but the compiler.
#pragma once

#include "nestor/arch/svm_vmcb.hpp"

namespace nestor::amd_svm {

inline constexpr u32 kMsrVmHsavePa = 0xC0010117;  // where VMRUN keeps the host's state

// control.intercept_cr: bits 0-15 reads of CR0-CR15, bits 16-31 writes.
inline constexpr u32 kInterceptCr4Write = 1u << (16 + 4);
inline constexpr u32 kInterceptCr8Write = 1u << (16 + 8);

// Intercept vector 3 (control.intercept_misc1): bit n is exit code 0x60 + n.
namespace intercept1 {
inline constexpr u32 intr = 1u << 0;
inline constexpr u32 nmi = 1u << 1;
inline constexpr u32 smi = 1u << 2;
inline constexpr u32 init = 1u << 3;
inline constexpr u32 vintr = 1u << 4;  // a virtual interrupt (int_ctl V_IRQ) is taken
inline constexpr u32 rdpmc = 1u << 15;
inline constexpr u32 cpuid = 1u << 18;
inline constexpr u32 iret = 1u << 20;
inline constexpr u32 invd = 1u << 22;
inline constexpr u32 hlt = 1u << 24;
inline constexpr u32 invlpga = 1u << 26;
inline constexpr u32 ioio_prot = 1u << 27;
inline constexpr u32 msr_prot = 1u << 28;
inline constexpr u32 shutdown = 1u << 31;
}  // namespace intercept1

// Intercept vector 4 (control.intercept_misc2): bit n is exit code 0x80 + n.
namespace intercept2 {
inline constexpr u32 vmrun = 1u << 0;  // mandatory: VMRUN refuses a VMCB without it
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
constexpr u32 intercept_exception(u8 vector) { return 1u << vector; }

// Exit codes (appendix C). The intercept vectors are ordered like the codes: vector 3 bit n is
// exit code 0x60 + n, vector 4 bit n is 0x80 + n, vector 5 bit n is 0xA0 + n.
namespace exit_code {
inline constexpr u64 cr_read_base = 0x00;
inline constexpr u64 cr_write_base = 0x10;
inline constexpr u64 cr4_write = 0x14;
inline constexpr u64 cr8_write = 0x18;
inline constexpr u64 dr_read_base = 0x20;
inline constexpr u64 dr_write_base = 0x30;
inline constexpr u64 exception_base = 0x40;  // + the vector
inline constexpr u64 exception_last = 0x5F;
constexpr u64 exception(u8 vector) { return exception_base + vector; }
inline constexpr u64 misc1_base = 0x60;
inline constexpr u64 intr = 0x60;
inline constexpr u64 nmi = 0x61;
inline constexpr u64 smi = 0x62;
inline constexpr u64 init = 0x63;
inline constexpr u64 vintr = 0x64;
inline constexpr u64 rdpmc = 0x6F;
inline constexpr u64 cpuid = 0x72;
inline constexpr u64 iret = 0x74;  // before the IRET executes
inline constexpr u64 invd = 0x76;
inline constexpr u64 hlt = 0x78;
inline constexpr u64 invlpga = 0x7A;
inline constexpr u64 ioio = 0x7B;
inline constexpr u64 msr = 0x7C;  // EXITINFO1: 0 RDMSR, 1 WRMSR; the MSR is the guest's ECX
inline constexpr u64 shutdown = 0x7F;
inline constexpr u64 misc2_base = 0x80;
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
inline constexpr u64 misc3_base = 0xA0;
inline constexpr u64 misc3_last = 0xBF;
inline constexpr u64 npf = 0x400;
inline constexpr u64 invalid = ~u64{0};  // VMEXIT_INVALID: the guest state failed VMRUN's checks
// QEMU stores VMEXIT_INVALID as 32 bits: the same code, truncated.
inline constexpr u64 invalid32 = 0xFFFFFFFF;
}  // namespace exit_code

// IOIO EXITINFO1: direction (bit 0, 1 = IN), string and REP, sizes (bits 4-6), the port (bits
// 16-31). EXITINFO2 is the next RIP, even without NRIP save.
namespace ioio {
inline constexpr u64 type_in = 1u << 0;
inline constexpr u64 string = 1u << 2;
inline constexpr u64 rep = 1u << 3;
inline constexpr u64 size8 = 1u << 4;
inline constexpr u64 size16 = 1u << 5;
inline constexpr u64 size32 = 1u << 6;
inline constexpr unsigned port_shift = 16;
constexpr u16 port(u64 info) { return static_cast<u16>(info >> port_shift); }
// The access size in bytes; 0 if EXITINFO1 names none.
constexpr unsigned size(u64 info) { return (info & size32) ? 4 : (info & size16) ? 2 : (info & size8) ? 1 : 0; }
}  // namespace ioio

// Nested page fault EXITINFO1: a #PF error code plus where the fault happened (EXITINFO2 is the
// guest-physical address).
namespace npf_info {
inline constexpr u64 present = u64{1} << 0;  // the entry was present: a rights violation
inline constexpr u64 write = u64{1} << 1;
inline constexpr u64 user = u64{1} << 2;  // nested walks are user accesses: always set
inline constexpr u64 reserved = u64{1} << 3;
inline constexpr u64 fetch = u64{1} << 4;
inline constexpr u64 final_address = u64{1} << 32;  // on the access's own guest-physical address
inline constexpr u64 table_walk = u64{1} << 33;     // on a read of the guest's own page tables
}  // namespace npf_info

// EVENTINJ and EXITINTINFO (15.20): vector bits 0-7, type bits 8-10, error code valid bit 11,
// valid bit 31, the error code in bits 32-63.
namespace event {
inline constexpr u64 vector_mask = 0xFF;
inline constexpr unsigned type_shift = 8;
inline constexpr u64 type_mask = u64{7} << type_shift;
inline constexpr u64 error_code_valid = u64{1} << 11;
inline constexpr u64 valid = u64{1} << 31;
inline constexpr u64 error_code_mask = 0xFFFFFFFF00000000;
// Everything else (bits 30:12) is reserved.
inline constexpr u64 defined_bits = vector_mask | type_mask | error_code_valid | valid | error_code_mask;
inline constexpr u64 type_intr = 0;  // an external interrupt (INTR)
inline constexpr u64 type_nmi = 2;
inline constexpr u64 type_exception = 3;
inline constexpr u64 type_soft_int = 4;
constexpr u64 make(u8 vector, u64 type) { return valid | (type << type_shift) | vector; }
constexpr u64 with_error_code(u64 event, u32 error_code) { return event | error_code_valid | (u64{error_code} << 32); }
}  // namespace event

// control.int_ctl (offset 0x60).
namespace int_ctl {
inline constexpr u32 v_tpr = 0xFF;
inline constexpr u32 v_irq = 1u << 8;
inline constexpr u32 v_gif = 1u << 9;
inline constexpr u32 v_nmi = 1u << 11;
inline constexpr u32 v_nmi_mask = 1u << 12;
inline constexpr u32 v_intr_prio = 0xFu << 16;
inline constexpr u32 v_ign_tpr = 1u << 20;
inline constexpr u32 v_intr_masking = 1u << 24;  // the host's RFLAGS.IF gates physical interrupts
inline constexpr u32 v_gif_enable = 1u << 25;
inline constexpr u32 v_nmi_enable = 1u << 26;
inline constexpr u32 x2avic_enable = 1u << 30;
inline constexpr u32 avic_enable = 1u << 31;
}  // namespace int_ctl

inline constexpr u64 kInterruptShadow = 1;     // control.interrupt_shadow: STI / MOV SS
inline constexpr u64 kNestedPagingEnable = 1;  // control.nested_control: NP_ENABLE
// control.tlb_control: what VMRUN flushes first.
inline constexpr u8 kTlbControlNothing = 0;
inline constexpr u8 kTlbControlFlushAll = 1;

inline constexpr u64 kIopmBytes = 3 * 4096;   // one bit per port, plus the 3rd page for wide accesses
inline constexpr u64 kMsrpmBytes = 2 * 4096;  // two bits (read, write) per MSR in three ranges

// The MSR permission map (kMsrpmBytes): two bits per MSR, read then write, for three ranges of
// 8192 MSRs; an MSR outside them always exits when MSR_PROT is on.
namespace msrpm {
struct Range {
    u32 first_msr;
    u32 byte_offset;
};
inline constexpr Range ranges[] = {{0x00000000, 0x0000}, {0xC0000000, 0x0800}, {0xC0010000, 0x1000}};
inline constexpr u32 msrs_per_range = 0x2000;
// Sets (never clears) the intercept bits of `msr`; false if the map cannot name that MSR.
inline bool intercept(u8* map, u32 msr, bool read, bool write) {
    for (const Range& range : ranges) {
        if (msr < range.first_msr || msr - range.first_msr >= msrs_per_range) continue;
        u32 offset = msr - range.first_msr;
        u8& byte = map[range.byte_offset + offset / 4];
        unsigned shift = (offset % 4) * 2;
        if (read) byte |= static_cast<u8>(1u << shift);
        if (write) byte |= static_cast<u8>(2u << shift);
        return true;
    }
    return false;
}
// Clears both intercept bits of `msr`: the guest reads and writes it without an exit. False if
// the map cannot name that MSR.
inline bool pass_through(u8* map, u32 msr) {
    for (const Range& range : ranges) {
        if (msr < range.first_msr || msr - range.first_msr >= msrs_per_range) continue;
        u32 offset = msr - range.first_msr;
        map[range.byte_offset + offset / 4] &= static_cast<u8>(~(3u << ((offset % 4) * 2)));
        return true;
    }
    return false;
}
}  // namespace msrpm

// Segment attributes in VMCB form (VmcbSegment::attrib).
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

}  // namespace nestor::amd_svm
