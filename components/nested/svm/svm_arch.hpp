// Architectural constants nested SVM needs beyond the backend's typed VMCB (platform/x86's
// vmcb.hpp, included read-only): the exception vectors an L1 may intercept and the paging-entry
// bits of a nested page table, with the shared definitions of the control-register, EFER and
// RFLAGS bits (nestor/arch/x86_regs.hpp) and of the VMCB's field values (nestor/arch/
// svm_fields.hpp) under one name, `arch`. All from the AMD64 APM vol. 2 (chapter 15 and appendix
// B/C); kept inside the component so that nothing VMCB-specific leaks into the kernel.
#pragma once

#include "nestor/arch/svm_fields.hpp"
#include "nestor/arch/x86_regs.hpp"
#include "nestor/lib/types.hpp"
#include "nestor/x86/svm/vmcb.hpp"

namespace nestor::nested::svm {

using x86::svm::Vmcb;
using x86::svm::VmcbControl;
using x86::svm::VmcbSave;
using x86::svm::VmcbSegment;

namespace arch {

inline constexpr u64 bit(unsigned n) { return u64{1} << n; }

using namespace x86_regs;
using namespace amd_svm;

inline constexpr u64 kHigh32 = 0xFFFFFFFF00000000;
inline constexpr u64 kDr7Reset = 0x400;  // what #VMEXIT leaves in DR7: every breakpoint off

// Exception vectors that exist on the virtual CPU an L1 sees: no NMI (2, its own type), no #CSO
// (9, reserved since the 486), none of the reserved ones, and none tied to a feature Nestor does
// not offer (#VE 20, #CP 21, #HV 28, #VC 29, #SX 30).
inline constexpr u32 kExceptionVectors = (1u << 0) | (1u << 1) | (1u << 3) | (1u << 4) | (1u << 5) | (1u << 6) |
                                         (1u << 7) | (1u << 8) | (1u << 10) | (1u << 11) | (1u << 12) | (1u << 13) |
                                         (1u << 14) | (1u << 16) | (1u << 17) | (1u << 18) | (1u << 19);
inline constexpr u8 kVectorDb = 1;
inline constexpr u8 kVectorAc = 17;
inline constexpr u8 kVectorMc = 18;

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
