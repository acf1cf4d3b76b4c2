// Capability-runtime errors. The values are the ABI status codes, so a refusal travels to the
// caller unchanged.
#pragma once

#include "nestor/abi/errors.h"
#include "nestor/lib/result.hpp"
#include "nestor/lib/types.hpp"

namespace nestor::cap {

enum class Error : u32 {
    none = NESTOR_E_OK,
    invalid_hypercall = NESTOR_E_INVALID_HYPERCALL,
    invalid_argument = NESTOR_E_INVALID_ARGUMENT,
    lookup_failed = NESTOR_E_LOOKUP_FAILED,
    guard_mismatch = NESTOR_E_GUARD_MISMATCH,
    slot_empty = NESTOR_E_SLOT_EMPTY,
    slot_occupied = NESTOR_E_SLOT_OCCUPIED,
    wrong_type = NESTOR_E_WRONG_TYPE,
    insufficient_rights = NESTOR_E_INSUFFICIENT_RIGHTS,
    rights_escalation = NESTOR_E_RIGHTS_ESCALATION,
    invalid_rights = NESTOR_E_INVALID_RIGHTS,
    badge_already_set = NESTOR_E_BADGE_ALREADY_SET,
    badge_not_supported = NESTOR_E_BADGE_NOT_SUPPORTED,
    index_out_of_range = NESTOR_E_INDEX_OUT_OF_RANGE,
    same_slot = NESTOR_E_SAME_SLOT,
    invalid_type = NESTOR_E_INVALID_TYPE,
    invalid_size = NESTOR_E_INVALID_SIZE,
    invalid_guard = NESTOR_E_INVALID_GUARD,
    untyped_exhausted = NESTOR_E_UNTYPED_EXHAUSTED,
    already_mapped = NESTOR_E_ALREADY_MAPPED,
    not_mapped = NESTOR_E_NOT_MAPPED,
    mapping_overlap = NESTOR_E_MAPPING_OVERLAP,
    mapping_table_full = NESTOR_E_MAPPING_TABLE_FULL,
    memory_limit = NESTOR_E_MEMORY_LIMIT,
    invalid_gpa = NESTOR_E_INVALID_GPA,
    already_bound = NESTOR_E_ALREADY_BOUND,
    port_range = NESTOR_E_PORT_RANGE,
    irq_line = NESTOR_E_IRQ_LINE,
    cnode_cycle = NESTOR_E_CNODE_CYCLE,
    vcpu_running = NESTOR_E_VCPU_RUNNING,
    cfg_no_vcpus = NESTOR_E_CFG_NO_VCPUS,
    cfg_too_many_vcpus = NESTOR_E_CFG_TOO_MANY_VCPUS,
    cfg_no_memory = NESTOR_E_CFG_NO_MEMORY,
    cfg_memory_unaligned = NESTOR_E_CFG_MEMORY_UNALIGNED,
    cfg_memory_too_large = NESTOR_E_CFG_MEMORY_TOO_LARGE,
    cfg_unknown_flags = NESTOR_E_CFG_UNKNOWN_FLAGS,
    cfg_unknown_cpuid_policy = NESTOR_E_CFG_UNKNOWN_CPUID_POLICY,
    cfg_no_hvm = NESTOR_E_CFG_NO_HVM,
    cfg_nested_virt_unavailable = NESTOR_E_CFG_NESTED_VIRT_UNAVAILABLE,
    cfg_nested_virt_needs_hap = NESTOR_E_CFG_NESTED_VIRT_NEEDS_HAP,
    cfg_nested_virt_cpuid_conflict = NESTOR_E_CFG_NESTED_VIRT_CPUID_CONFLICT,
    cfg_cspace_size = NESTOR_E_CFG_CSPACE_SIZE,
};

// What a status code means, for logs (e.g. "mint asked for rights the source does not have").
const char* status_name(u64 status);

template <typename T> using CapResult = Result<T, Error>;
using CapStatus = Status<Error>;

}  // namespace nestor::cap
