// Which MOV to CR4 a guest's CPU would accept. A backend that intercepts CR4 writes (SVM, where
// the write would otherwise reach the VMCB unchecked and fail the next VMRUN as an invalid
// state) asks here, so that the guest gets the #GP(0) a CPU gives instead of being stopped.
#pragma once

#include "nestor/virt/virt_ops.hpp"
#include "nestor/virt/xsave_policy.hpp"

namespace nestor::virt {

using x86_regs::kCr4Baseline;
using x86_regs::kCr4Fsgsbase;
using x86_regs::kCr4La57;
using x86_regs::kCr4Pae;
using x86_regs::kCr4Pcide;
using x86_regs::kCr4Smap;
using x86_regs::kCr4Smep;
using x86_regs::kCr4Smxe;
using x86_regs::kCr4Umip;
using x86_regs::kCr4Vmxe;

// The CR4 bits a guest may set: the baseline, the features the host's CPUID leaves 1 and 7
// (subleaf 0) show, and the extended-state bits `offer` allows. Never VMXE or SMXE (the nested
// component decides VMXE for its domains) nor CET or PKS (their state is not switched).
u64 cr4_guest_settable(const CpuidValues& leaf1, const CpuidValues& leaf7, const XsaveOffer& offer);

// Whether MOV to CR4 of `value` raises #GP on a CPU whose settable bits are `settable`, given the
// guest's CR4, EFER and CR3 before the write: a bit it cannot set, PAE cleared in long mode, LA57
// changed in long mode, PCIDE set outside long mode or with CR3's PCID not 0.
bool cr4_write_faults(u64 current_cr4, u64 value, u64 efer, u64 cr3, u64 settable);

}  // namespace nestor::virt
