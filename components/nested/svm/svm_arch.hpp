// Architectural constants nested SVM needs beyond the backend's typed VMCB (platform/x86's
// vmcb.hpp, included read-only): control-register and EFER bits, the EVENTINJ / int_ctl / NPF
// layouts, the permission-map layouts and the paging-entry bits of a nested page table. All from
// the AMD64 APM vol. 2 (chapter 15 and appendix B/C); kept inside the component so that nothing
// VMCB-specific leaks into the kernel.
#pragma once

#include "nestor/lib/types.hpp"
#include "nestor/x86/svm/vmcb.hpp"

namespace nestor::nested::svm {

using x86::svm::Vmcb;
using x86::svm::VmcbControl;
using x86::svm::VmcbSave;
using x86::svm::VmcbSegment;

namespace arch {

inline constexpr u64 bit(unsigned n) { return u64{1} << n; }

inline constexpr u64 kCr0Pe = bit(0);
inline constexpr u64 kCr0Nw = bit(29);
inline constexpr u64 kCr0Cd = bit(30);
inline constexpr u64 kCr0Pg = bit(31);
inline constexpr u64 kCr4Pae = bit(5);

inline constexpr u64 kEferSce = bit(0);
inline constexpr u64 kEferLme = bit(8);
inline constexpr u64 kEferLma = bit(10);
inline constexpr u64 kEferNxe = bit(11);
inline constexpr u64 kEferSvme = bit(12);

inline constexpr u64 kHigh32 = 0xFFFFFFFF00000000;
inline constexpr u64 kDr7Reset = 0x400;  // what #VMEXIT leaves in DR7: every breakpoint off
inline constexpr u64 kRflagsFixed1 = bit(1);

// EVENTINJ / EXITINTINFO (APM 15.20).
namespace event {
inline constexpr u64 vector_mask = 0xFF;
inline constexpr unsigned type_shift = 8;
inline constexpr u64 type_mask = u64{7} << type_shift;
inline constexpr u64 error_code_valid = bit(11);
inline constexpr u64 valid = bit(31);
inline constexpr u64 error_code_mask = kHigh32;
// What the component passes on: everything else (bits 30:12) is reserved.
inline constexpr u64 defined_bits = vector_mask | type_mask | error_code_valid | valid | error_code_mask;
inline constexpr u64 type_intr = 0;
inline constexpr u64 type_nmi = 2;
inline constexpr u64 type_exception = 3;
inline constexpr u64 type_soft_int = 4;
}  // namespace event

// Exception vectors that exist on the virtual CPU an L1 sees: no NMI (2, its own type), no #CSO
// (9, reserved since the 486), none of the reserved ones, and none tied to a feature Nestor does
// not offer (#VE 20, #CP 21, #HV 28, #VC 29, #SX 30).
inline constexpr u32 kExceptionVectors = (1u << 0) | (1u << 1) | (1u << 3) | (1u << 4) | (1u << 5) | (1u << 6) |
                                         (1u << 7) | (1u << 8) | (1u << 10) | (1u << 11) | (1u << 12) | (1u << 13) |
                                         (1u << 14) | (1u << 16) | (1u << 17) | (1u << 18) | (1u << 19);
inline constexpr u8 kVectorDb = 1;
inline constexpr u8 kVectorAc = 17;
inline constexpr u8 kVectorMc = 18;

// VMCB int_ctl (offset 0x60).
namespace int_ctl {
inline constexpr u32 v_tpr = 0xFF;
inline constexpr u32 v_irq = 1u << 8;
inline constexpr u32 v_gif = 1u << 9;
inline constexpr u32 v_nmi = 1u << 11;
inline constexpr u32 v_nmi_mask = 1u << 12;
inline constexpr u32 v_intr_prio = 0xFu << 16;
inline constexpr u32 v_ign_tpr = 1u << 20;
inline constexpr u32 v_intr_masking = 1u << 24;
inline constexpr u32 v_gif_enable = 1u << 25;
inline constexpr u32 v_nmi_enable = 1u << 26;
inline constexpr u32 x2avic_enable = 1u << 30;
inline constexpr u32 avic_enable = 1u << 31;
}  // namespace int_ctl

inline constexpr u64 kInterruptShadow = bit(0);  // control.interrupt_shadow: only bit 0 is the guest's

// Nested page fault EXITINFO1: a #PF error code plus where the fault happened.
namespace npf_info {
inline constexpr u64 present = bit(0);
inline constexpr u64 write = bit(1);
inline constexpr u64 user = bit(2);  // nested walks are user accesses: always set
inline constexpr u64 reserved = bit(3);
inline constexpr u64 fetch = bit(4);
inline constexpr u64 final_address = bit(32);  // the fault was on the final guest-physical address
inline constexpr u64 table_walk = bit(33);     // ... or on a guest page-table access
}  // namespace npf_info

// Exit codes without a constant in vmcb.hpp. The intercept vectors are ordered like the codes:
// vector 3 bit n is exit code 0x60 + n, vector 4 bit n is 0x80 + n, vector 5 bit n is 0xA0 + n.
namespace exit_code {
inline constexpr u64 cr_read_base = 0x00;
inline constexpr u64 cr_write_base = 0x10;
inline constexpr u64 dr_read_base = 0x20;
inline constexpr u64 dr_write_base = 0x30;
inline constexpr u64 exception_base = 0x40;
inline constexpr u64 misc1_base = 0x60;
inline constexpr u64 misc2_base = 0x80;
inline constexpr u64 misc3_base = 0xA0;
inline constexpr u64 misc3_last = 0xBF;
}  // namespace exit_code

// The MSR permission map: two bits (read, write) per MSR, for three ranges of 8192 MSRs.
namespace msrpm {
struct Range {
    u32 first_msr;
    u32 byte_offset;
};
inline constexpr Range ranges[] = {{0x00000000, 0x0000}, {0xC0000000, 0x0800}, {0xC0010000, 0x1000}};
inline constexpr u32 msrs_per_range = 0x2000;
}  // namespace msrpm

// Nested page-table entries (long-mode format; the CPU walks NPT with the host's paging mode).
namespace pte {
inline constexpr u64 present = bit(0);
inline constexpr u64 writable = bit(1);
inline constexpr u64 user = bit(2);
inline constexpr u64 large = bit(7);  // PS: a 1 GiB (level 3) or 2 MiB (level 2) leaf
inline constexpr u64 no_execute = bit(63);
inline constexpr u64 address_mask = 0x000FFFFFFFFFF000;
inline constexpr unsigned levels = 4;
inline constexpr u64 entries = 512;
}  // namespace pte

inline constexpr u64 kPageMask = 0xFFF;
inline constexpr unsigned kL2PhysicalBits = 48;  // what a 4-level nested table can translate

}  // namespace arch
}  // namespace nestor::nested::svm
