/* Capability types and rights. Rights are typed: each object type defines its own bits, and a
 * capability may only carry the bits its type defines (NESTOR_RIGHTS_VALID_*). */
#ifndef NESTOR_ABI_CAPS_H
#define NESTOR_ABI_CAPS_H

#include <stdint.h>

typedef uint64_t nestor_cptr_t;

/* Object (capability) types, as returned by NESTOR_HC_CAP_IDENTIFY and passed to retype. */
#define NESTOR_CAP_NULL 0u
#define NESTOR_CAP_UNTYPED 1u
#define NESTOR_CAP_CNODE 2u
#define NESTOR_CAP_DOMAIN 3u
#define NESTOR_CAP_VCPU 4u
#define NESTOR_CAP_MEMORY 5u /* a MemoryRegion: guest memory, mapped with R/W/X */
#define NESTOR_CAP_NOTIFICATION 6u
#define NESTOR_CAP_IOPORT_RANGE 7u
#define NESTOR_CAP_IRQ 8u
#define NESTOR_CAP_TYPE_COUNT 9u

/* Untyped */
#define NESTOR_RIGHT_UNTYPED_RETYPE (1u << 0)
#define NESTOR_RIGHTS_VALID_UNTYPED (NESTOR_RIGHT_UNTYPED_RETYPE)
/* CNode: READ lets caps be copied out of its slots, WRITE lets slots be filled or emptied. */
#define NESTOR_RIGHT_CNODE_READ (1u << 0)
#define NESTOR_RIGHT_CNODE_WRITE (1u << 1)
#define NESTOR_RIGHTS_VALID_CNODE (NESTOR_RIGHT_CNODE_READ | NESTOR_RIGHT_CNODE_WRITE)
/* Domain: CONTROL hands out its vCPU and CSpace caps, MAP changes its guest-physical space. */
#define NESTOR_RIGHT_DOMAIN_CONTROL (1u << 0)
#define NESTOR_RIGHT_DOMAIN_MAP (1u << 1)
#define NESTOR_RIGHTS_VALID_DOMAIN (NESTOR_RIGHT_DOMAIN_CONTROL | NESTOR_RIGHT_DOMAIN_MAP)
/* vCPU */
#define NESTOR_RIGHT_VCPU_READ (1u << 0)
#define NESTOR_RIGHT_VCPU_WRITE (1u << 1)
#define NESTOR_RIGHTS_VALID_VCPU (NESTOR_RIGHT_VCPU_READ | NESTOR_RIGHT_VCPU_WRITE)
/* MemoryRegion: a mapping never has more rights than the capability that backs it. */
#define NESTOR_RIGHT_MEMORY_READ (1u << 0)
#define NESTOR_RIGHT_MEMORY_WRITE (1u << 1)
#define NESTOR_RIGHT_MEMORY_EXEC (1u << 2)
#define NESTOR_RIGHTS_VALID_MEMORY (NESTOR_RIGHT_MEMORY_READ | NESTOR_RIGHT_MEMORY_WRITE | NESTOR_RIGHT_MEMORY_EXEC)
/* Notification: the badge of the capability used to signal is OR-ed into the word. */
#define NESTOR_RIGHT_NOTIFICATION_SIGNAL (1u << 0)
#define NESTOR_RIGHT_NOTIFICATION_WAIT (1u << 1)
#define NESTOR_RIGHTS_VALID_NOTIFICATION (NESTOR_RIGHT_NOTIFICATION_SIGNAL | NESTOR_RIGHT_NOTIFICATION_WAIT)
/* I/O ports: USE grants access to the ports in the cap, ISSUE lets narrower caps be issued. */
#define NESTOR_RIGHT_IOPORT_USE (1u << 0)
#define NESTOR_RIGHT_IOPORT_ISSUE (1u << 1)
#define NESTOR_RIGHTS_VALID_IOPORT_RANGE (NESTOR_RIGHT_IOPORT_USE | NESTOR_RIGHT_IOPORT_ISSUE)
/* IRQ: ISSUE (control caps) hands out single-line caps, BIND routes a line to a notification. */
#define NESTOR_RIGHT_IRQ_BIND (1u << 0)
#define NESTOR_RIGHT_IRQ_ISSUE (1u << 1)
#define NESTOR_RIGHTS_VALID_IRQ (NESTOR_RIGHT_IRQ_BIND | NESTOR_RIGHT_IRQ_ISSUE)

/* Slot operands are (CNode cptr, index) pairs. This CNode cptr names the caller's own CSpace
 * root; it can never be a valid lookup because a root always consumes some guard or radix bits. */
#define NESTOR_CSPACE_ROOT ((nestor_cptr_t) ~(uint64_t)0)

/* Mint's badge argument for a CNode capability sets its guard: bits 0..6 guard size in bits,
 * bits 8..63 guard value (guard sizes above 56 bits are therefore not expressible by mint). */
#define NESTOR_CNODE_GUARD(bits, value) (((uint64_t)(value) << 8) | ((uint64_t)(bits) & 0x7fu))

/* Retype size bits bounds. */
#define NESTOR_CNODE_MIN_BITS 1u
#define NESTOR_CNODE_MAX_BITS 12u
#define NESTOR_MEMORY_MIN_BITS 12u
#define NESTOR_MEMORY_MAX_BITS 30u
#define NESTOR_UNTYPED_MIN_BITS 12u
#define NESTOR_UNTYPED_MAX_BITS 47u

#endif
