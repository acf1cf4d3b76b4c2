// Human-readable status codes for logs: the ABI's own comments, so the two cannot drift apart.
#include "nestor/cap/error.hpp"

namespace nestor::cap {

const char* status_name(u64 status) {
    switch (status) {
    case NESTOR_E_OK: return "success";
    case NESTOR_E_INVALID_HYPERCALL: return "unknown hypercall number";
    case NESTOR_E_INVALID_ARGUMENT: return "reserved argument not zero, or value out of its domain";
    case NESTOR_E_LOOKUP_FAILED: return "a cptr does not resolve to a slot";
    case NESTOR_E_GUARD_MISMATCH: return "a cptr's guard bits differ from the CNode cap's guard";
    case NESTOR_E_SLOT_EMPTY: return "the named slot holds no capability";
    case NESTOR_E_SLOT_OCCUPIED: return "a destination slot is not empty";
    case NESTOR_E_WRONG_TYPE: return "the capability names another kind of object";
    case NESTOR_E_INSUFFICIENT_RIGHTS: return "the capability lacks a right the call needs";
    case NESTOR_E_RIGHTS_ESCALATION: return "mint asked for rights the source does not have";
    case NESTOR_E_INVALID_RIGHTS: return "rights bits not defined for that object type";
    case NESTOR_E_BADGE_ALREADY_SET: return "mint of an already-badged capability with a new badge";
    case NESTOR_E_BADGE_NOT_SUPPORTED: return "a badge/guard given for a type that has none";
    case NESTOR_E_INDEX_OUT_OF_RANGE: return "slot index, vCPU index or register index too large";
    case NESTOR_E_SAME_SLOT: return "source and destination are the same slot";
    case NESTOR_E_INVALID_TYPE: return "retype to a type that cannot be retyped";
    case NESTOR_E_INVALID_SIZE: return "object size bits out of range for the type";
    case NESTOR_E_INVALID_GUARD: return "CNode guard does not fit the lookup depth";
    case NESTOR_E_UNTYPED_EXHAUSTED: return "not enough room above the untyped's watermark";
    case NESTOR_E_ALREADY_MAPPED: return "this memory capability already backs a mapping";
    case NESTOR_E_NOT_MAPPED: return "unmap of a capability that backs no mapping";
    case NESTOR_E_MAPPING_OVERLAP: return "the guest-physical range overlaps another mapping";
    case NESTOR_E_MAPPING_TABLE_FULL: return "the domain's mapping table has no free entry";
    case NESTOR_E_MEMORY_LIMIT: return "mapping would exceed the domain's configured memory";
    case NESTOR_E_INVALID_GPA: return "guest-physical address unaligned or wraps";
    case NESTOR_E_ALREADY_BOUND: return "IRQ line or notification already bound";
    case NESTOR_E_PORT_RANGE: return "I/O port range outside the source capability's range";
    case NESTOR_E_IRQ_LINE: return "IRQ line outside the controller's range";
    case NESTOR_E_CNODE_CYCLE: return "the CNode would (indirectly) contain itself";
    case NESTOR_E_VCPU_RUNNING: return "the vCPU runs: its registers are only reachable while it is stopped";
    case NESTOR_E_CFG_NO_VCPUS: return "configuration: no vcpus";
    case NESTOR_E_CFG_TOO_MANY_VCPUS: return "configuration: too many vcpus";
    case NESTOR_E_CFG_NO_MEMORY: return "configuration: no memory";
    case NESTOR_E_CFG_MEMORY_UNALIGNED: return "configuration: memory unaligned";
    case NESTOR_E_CFG_MEMORY_TOO_LARGE: return "configuration: memory too large";
    case NESTOR_E_CFG_UNKNOWN_FLAGS: return "configuration: unknown flags";
    case NESTOR_E_CFG_UNKNOWN_CPUID_POLICY: return "configuration: unknown cpuid policy";
    case NESTOR_E_CFG_NO_HVM: return "the platform can run no HVM guest at all";
    case NESTOR_E_CFG_NESTED_VIRT_UNAVAILABLE: return "NESTED_VIRT asked, platform cannot nest";
    case NESTOR_E_CFG_NESTED_VIRT_NEEDS_HAP: return "NESTED_VIRT without nested paging";
    case NESTOR_E_CFG_NESTED_VIRT_CPUID_CONFLICT: return "NESTED_VIRT with the minimal CPUID policy";
    case NESTOR_E_CFG_CSPACE_SIZE: return "CSpace root size bits out of range";
    default: break;
    }
    return "unknown status";
}

}  // namespace nestor::cap
