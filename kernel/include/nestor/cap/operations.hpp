// Capability operations, split seL4-style into a check (the decode half: validates and never
// changes state) and an action (the invoke half: assumes a passed check and cannot fail).
#pragma once

#include "nestor/cap/capability.hpp"
#include "nestor/cap/domain.hpp"
#include "nestor/cap/domain_config.hpp"
#include "nestor/cap/error.hpp"
#include "nestor/cap/untyped.hpp"

namespace nestor::cap {

// --- capability derivation -------------------------------------------------------------------
CapStatus check_mint(const Capability& source, u32 rights, u64 badge);
// Copy: same rights and badge, a child of source in the derivation tree.
void copy_cap(Slot& source, Slot& dst);
// Mint: rights diminished to rights, badge set (notifications) or guard set (CNodes).
void mint_cap(Slot& source, Slot& dst, u32 rights, u64 badge);
// Move: the capability and its place in the tree change slot; a mapping it backs follows it.
void move_cap(Slot& source, Slot& dst, Reaper& reaper);
// Delete: the slot empties, its children pass to its parent. Objects whose last capability went
// are queued on reaper.
void delete_cap(Slot& slot, Reaper& reaper);
// Revoke: deletes every descendant of slot (iteratively, leaves first); slot itself stays.
void revoke_cap(Slot& slot, Reaper& reaper);

// --- carving objects from untyped --------------------------------------------------------------
// The bytes an object of type and size_bits costs, and the carves that make it up.
usize carve_plan(ObjectType type, u32 size_bits, CarveRequest* requests);
CapStatus check_retype(const Untyped& untyped, ObjectType type, u32 size_bits);
void retype(Slot& untyped_slot, ObjectType type, u32 size_bits, Slot& dst);

// --- domains -----------------------------------------------------------------------------------
// Sanitises config against the untyped's platform and checks that the whole domain (object,
// CSpace root CNode, vCPUs) fits, so creation cannot fail half way.
CapStatus check_create_domain(const Untyped& untyped, const DomainConfig& config);
Domain& create_domain(Slot& untyped_slot, const DomainConfig& config, Slot& dst);

// --- the boot domain ---------------------------------------------------------------------------
// Slots of the boot domain's CSpace root.
inline constexpr u64 kBootSlotUntyped = 1;     // all boot memory
inline constexpr u64 kBootSlotDomain = 2;      // the boot domain itself
inline constexpr u64 kBootSlotCSpace = 3;      // its CSpace root CNode
inline constexpr u64 kBootSlotIoPorts = 4;     // every I/O port
inline constexpr u64 kBootSlotIrqControl = 5;  // every IRQ line
inline constexpr u64 kBootFirstFreeSlot = 6;

// Turns [base, base + size) into the boot untyped and builds the boot domain from it. Fails
// (creating nothing usable) if config is refused or the memory is too small.
CapResult<Domain*> bootstrap(System& system, paddr base, u64 size, const DomainConfig& config);

}  // namespace nestor::cap
