/* Hypercall status codes, returned in the status register. 0 is success; every refusal has its
 * own code so a toolstack can tell exactly which argument or rule was at fault. */
#ifndef NESTOR_ABI_ERRORS_H
#define NESTOR_ABI_ERRORS_H

#include <stdint.h>

typedef uint64_t nestor_status_t;

#define NESTOR_E_OK 0u
/* Decoding: the call itself or an argument is malformed. */
#define NESTOR_E_INVALID_HYPERCALL 1u    /* unknown hypercall number */
#define NESTOR_E_INVALID_ARGUMENT 2u     /* reserved argument not zero, or value out of its domain */
#define NESTOR_E_LOOKUP_FAILED 3u        /* a cptr does not resolve to a slot */
#define NESTOR_E_GUARD_MISMATCH 4u       /* a cptr's guard bits differ from the CNode cap's guard */
#define NESTOR_E_SLOT_EMPTY 5u           /* the named slot holds no capability */
#define NESTOR_E_SLOT_OCCUPIED 6u        /* a destination slot is not empty */
#define NESTOR_E_WRONG_TYPE 7u           /* the capability names another kind of object */
#define NESTOR_E_INSUFFICIENT_RIGHTS 8u  /* the capability lacks a right the call needs */
#define NESTOR_E_RIGHTS_ESCALATION 9u    /* mint asked for rights the source does not have */
#define NESTOR_E_INVALID_RIGHTS 10u      /* rights bits not defined for that object type */
#define NESTOR_E_BADGE_ALREADY_SET 11u   /* mint of an already-badged capability with a new badge */
#define NESTOR_E_BADGE_NOT_SUPPORTED 12u /* a badge/guard given for a type that has none */
#define NESTOR_E_INDEX_OUT_OF_RANGE 13u  /* slot index, vCPU index or register index too large */
#define NESTOR_E_SAME_SLOT 14u           /* source and destination are the same slot */
#define NESTOR_E_INVALID_TYPE 15u        /* retype to a type that cannot be retyped */
#define NESTOR_E_INVALID_SIZE 16u        /* object size bits out of range for the type */
#define NESTOR_E_INVALID_GUARD 17u       /* CNode guard does not fit the lookup depth */
/* Resources and state. */
#define NESTOR_E_UNTYPED_EXHAUSTED 32u  /* not enough room above the untyped's watermark */
#define NESTOR_E_ALREADY_MAPPED 33u     /* this memory capability already backs a mapping */
#define NESTOR_E_NOT_MAPPED 34u         /* unmap of a capability that backs no mapping */
#define NESTOR_E_MAPPING_OVERLAP 35u    /* the guest-physical range overlaps another mapping */
#define NESTOR_E_MAPPING_TABLE_FULL 36u /* the domain's mapping table has no free entry */
#define NESTOR_E_MEMORY_LIMIT 37u       /* mapping would exceed the domain's configured memory */
#define NESTOR_E_INVALID_GPA 38u        /* guest-physical address unaligned or wraps */
#define NESTOR_E_ALREADY_BOUND 39u      /* IRQ line or notification already bound */
#define NESTOR_E_PORT_RANGE 40u         /* I/O port range outside the source capability's range */
#define NESTOR_E_IRQ_LINE 41u           /* IRQ line outside the controller's range */
#define NESTOR_E_CNODE_CYCLE 42u        /* the CNode would (indirectly) contain itself */
#define NESTOR_E_VCPU_RUNNING 43u       /* the vCPU runs: its registers are only reachable while it is stopped */
/* Domain configuration (the sanitiser's refusals). */
#define NESTOR_E_CFG_NO_VCPUS 64u
#define NESTOR_E_CFG_TOO_MANY_VCPUS 65u
#define NESTOR_E_CFG_NO_MEMORY 66u
#define NESTOR_E_CFG_MEMORY_UNALIGNED 67u
#define NESTOR_E_CFG_MEMORY_TOO_LARGE 68u
#define NESTOR_E_CFG_UNKNOWN_FLAGS 69u
#define NESTOR_E_CFG_UNKNOWN_CPUID_POLICY 70u
#define NESTOR_E_CFG_NO_HVM 71u                     /* the platform can run no HVM guest at all */
#define NESTOR_E_CFG_NESTED_VIRT_UNAVAILABLE 72u    /* NESTED_VIRT asked, platform cannot nest */
#define NESTOR_E_CFG_NESTED_VIRT_NEEDS_HAP 73u      /* NESTED_VIRT without nested paging */
#define NESTOR_E_CFG_NESTED_VIRT_CPUID_CONFLICT 74u /* NESTED_VIRT with the minimal CPUID policy */
#define NESTOR_E_CFG_CSPACE_SIZE 75u                /* CSpace root size bits out of range */

#endif
