/* The capabilities a domain built from a boot manifest finds in its CSpace. Its CSpace root is
 * one CNode of 2^NESTOR_GUEST_CSPACE_BITS slots, so a capability's cptr is its slot index. */
#ifndef NESTOR_ABI_GUEST_SLOTS_H
#define NESTOR_ABI_GUEST_SLOTS_H

#define NESTOR_GUEST_CSPACE_BITS 5u
/* The domain's own notification (WAIT): other domains' signals arrive here; the badge of each
 * signal is 1 << (the sender's index in the manifest). */
#define NESTOR_GUEST_SLOT_NOTIFICATION 1u
/* SIGNAL capabilities to the notifications of the domains named in the manifest's `signals`,
 * in that order. */
#define NESTOR_GUEST_SLOT_SIGNAL_BASE 2u
#define NESTOR_GUEST_MAX_SIGNALS 8u
/* IoPortRange capabilities (USE) for the manifest's `ioports`, in that order. */
#define NESTOR_GUEST_SLOT_IOPORT_BASE 10u
#define NESTOR_GUEST_MAX_IOPORT_RANGES 8u

#endif
