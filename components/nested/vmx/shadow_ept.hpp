// The shadow EPT: what the CPU walks while L2 runs under L1's own EPT. It composes L1's EPT
// (L2-physical -> L1-physical, read from L1's memory once per entry) with L0's mapping of L1
// (Host::page), lazily, one 4 KiB leaf per EPT violation of vmcs02, like a TLB: every leaf points
// at a host frame the Host calls L1 RAM, with at most the rights both L1 and L0 give, so nothing
// outside L1's memory is ever mapped for L2. The tree itself (frames, budget, drops, flush
// requests) is the one nested SVM's shadow NPT uses (../shadow_tree.hpp); this part walks L1's
// EPT in its format: read / write / execute bits, no user bit, and malformed entries that are EPT
// misconfigurations rather than faults.
//
// Invalidation is "drop everything": on L1's INVEPT, a new EPTP, an L0 unmap (the mapping
// generation), and when the table budget is spent. After a drop L2's translations must be
// flushed (shadow_take_flush of `tree`: true once after every drop or upgrade).
#pragma once

#include "../nested_component.hpp"

namespace nestor::nested::vmx {

enum class EptOutcome : u8 {
    mapped,            // a leaf was installed: resume L2
    violation,         // L1's EPT refuses the access: an EPT violation for L1 (qualification)
    misconfiguration,  // L1's EPT has a malformed entry on the way: an EPT misconfiguration for L1
    l0_fault,          // L1's EPT allows it, L0's mapping does not (MMIO, a hole, L0's rights)
    l1_table_not_ram,  // one of L1's tables is not L1 RAM
    out_of_memory,     // no frame for a shadow table, even after dropping everything
};

struct EptResult {
    EptOutcome outcome;
    u64 qualification;  // violation: the exit qualification L1 gets
    u64 l1_physical;    // l0_fault: where L1's EPT sent the access
};

// The state of one vCPU's shadow, in the component's L0 memory (no constructor: zero is empty).
struct ShadowEpt {
    ShadowTree tree;
    u64 l1_root;     // the L1 EPT root it shadows
    u64 generation;  // the VM's mapping generation it was built under
};

inline constexpr u32 kMaxShadowEptTables = 512;

// The EPTP for vmcs02 that shadows `l1_eptp` under mapping `generation` (another root or
// generation drops the old shadow first); 0 when no frame is left.
u64 shadow_ept_prepare(ShadowEpt& shadow, Host& host, u64 l1_eptp, u64 generation);
// An EPT violation of vmcs02 at `l2_physical` with the hardware's exit qualification.
EptResult shadow_ept_fault(ShadowEpt& shadow, Host& host, u64 l2_physical, u64 qualification, u32 physical_bits);
// Frees every table; the next prepare starts a new root.
void shadow_ept_drop(ShadowEpt& shadow, Host& host);

}  // namespace nestor::nested::vmx
