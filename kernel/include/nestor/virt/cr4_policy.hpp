// Which MOV to CR4 a guest's CPU would accept. A backend that intercepts CR4 writes (SVM, where
// the write would otherwise reach the VMCB unchecked and fail the next VMRUN as an invalid
// state) asks here, so that the guest gets the #GP(0) a CPU gives instead of being stopped.
#pragma once

#include "nestor/virt/virt_ops.hpp"
#include "nestor/virt/xsave_policy.hpp"

namespace nestor::virt {

inline constexpr u64 kCr4Pae = u64{1} << 5;
inline constexpr u64 kCr4Umip = u64{1} << 11;
inline constexpr u64 kCr4La57 = u64{1} << 12;
inline constexpr u64 kCr4Vmxe = u64{1} << 13;
inline constexpr u64 kCr4Smxe = u64{1} << 14;
inline constexpr u64 kCr4Fsgsbase = u64{1} << 16;
inline constexpr u64 kCr4Pcide = u64{1} << 17;
inline constexpr u64 kCr4Smep = u64{1} << 20;
inline constexpr u64 kCr4Smap = u64{1} << 21;
// VME, PVI, TSD, DE, PSE, PAE, MCE, PGE, PCE, OSFXSR and OSXMMEXCPT: every x86-64 CPU has them.
inline constexpr u64 kCr4Baseline = 0x7FF;

// The CR4 bits a guest may set: the baseline, the features the host's CPUID leaves 1 and 7
// (subleaf 0) show, and the extended-state bits `offer` allows. Never VMXE or SMXE (the nested
// component decides VMXE for its domains) nor CET or PKS (their state is not switched).
u64 cr4_guest_settable(const CpuidValues& leaf1, const CpuidValues& leaf7, const XsaveOffer& offer);

// Whether MOV to CR4 of `value` raises #GP on a CPU whose settable bits are `settable`, given the
// guest's CR4, EFER and CR3 before the write: a bit it cannot set, PAE cleared in long mode, LA57
// changed in long mode, PCIDE set outside long mode or with CR3's PCID not 0.
bool cr4_write_faults(u64 current_cr4, u64 value, u64 efer, u64 cr3, u64 settable);

}  // namespace nestor::virt
