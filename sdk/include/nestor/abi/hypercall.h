/* Hypercall numbers and their arguments.
 *
 * A hypercall carries a number and six 64-bit arguments and returns a status (nestor_status_t)
 * and up to three 64-bit values. The guest executes VMMCALL (AMD) or VMCALL (Intel) with:
 *   RAX = number; RDI, RSI, RDX, R10, R8, R9 = arguments 0..5;
 * and finds on return: RAX = status; RDI, RSI, RDX = values 0..2. Other registers are kept.
 * Unused arguments must be zero. Slot operands are (CNode cptr, index) pairs, where the CNode
 * cptr may be NESTOR_CSPACE_ROOT; object operands are cptrs resolved in the caller's CSpace. */
#ifndef NESTOR_ABI_HYPERCALL_H
#define NESTOR_ABI_HYPERCALL_H

#include <stdint.h>

#define NESTOR_HYPERCALL_ARGS 6u
#define NESTOR_HYPERCALL_VALUES 3u

/* Platform hypercalls: no capability; served by the platform layer. */
#define NESTOR_HC_CONSOLE_WRITE 1u /* (gva, length) */
#define NESTOR_HC_YIELD 2u         /* () */
#define NESTOR_HC_PHYSCAPS 3u      /* () -> value0 = NESTOR_PHYSCAP_* bits */
#define NESTOR_HC_SHUTDOWN 4u      /* (reason) */
#define NESTOR_HC_ABI_VERSION 5u   /* () -> value0 = NESTOR_ABI_VERSION */

/* Capability-space operations. */
#define NESTOR_HC_CAP_COPY 16u     /* (src_cnode, src_index, dst_cnode, dst_index) */
#define NESTOR_HC_CAP_MINT 17u     /* (src_cnode, src_index, dst_cnode, dst_index, rights, badge) */
#define NESTOR_HC_CAP_MOVE 18u     /* (src_cnode, src_index, dst_cnode, dst_index) */
#define NESTOR_HC_CAP_DELETE 19u   /* (cnode, index) */
#define NESTOR_HC_CAP_REVOKE 20u   /* (cnode, index): delete every descendant */
#define NESTOR_HC_CAP_IDENTIFY 21u /* (cnode, index) -> value0 type, value1 rights, value2 badge */

/* Object invocations. */
#define NESTOR_HC_UNTYPED_RETYPE 32u      /* (untyped, type, size_bits, dst_cnode, dst_index) */
#define NESTOR_HC_DOMAIN_CREATE 33u       /* (untyped, dst_cnode, dst_index, packed, memory_bytes) */
#define NESTOR_HC_DOMAIN_VCPU 34u         /* (domain, vcpu_index, dst_cnode, dst_index) */
#define NESTOR_HC_DOMAIN_CSPACE 35u       /* (domain, dst_cnode, dst_index): cap to its CSpace root */
#define NESTOR_HC_DOMAIN_MAP 36u          /* (domain, memory, gpa, rights) */
#define NESTOR_HC_DOMAIN_UNMAP 37u        /* (memory_cnode, memory_index) */
#define NESTOR_HC_NOTIFICATION_SIGNAL 38u /* (notification) */
#define NESTOR_HC_NOTIFICATION_POLL 39u   /* (notification) -> value0 = word, cleared */
#define NESTOR_HC_IOPORT_ISSUE 40u        /* (range, first_port, count, dst_cnode, dst_index) */
#define NESTOR_HC_IRQ_ISSUE 41u           /* (irq_control, line, dst_cnode, dst_index) */
#define NESTOR_HC_IRQ_BIND 42u            /* (irq, notification) */
#define NESTOR_HC_VCPU_READ 43u           /* (vcpu, register) -> value0 */
#define NESTOR_HC_VCPU_WRITE 44u          /* (vcpu, register, value) */
/* (notification, vector): while a signal is pending on the notification, the domain whose own
 * notification it is takes external interrupt `vector` (32..255) once, when its interrupts are
 * enabled; polling the word re-arms it. Vector 0 turns the interrupt off. Needs the WAIT right. */
#define NESTOR_HC_NOTIFICATION_SET_VECTOR 45u

/* vCPU register indices: a neutral placeholder until the vCPU state is fleshed out. */
#define NESTOR_VCPU_REG_RIP 0u
#define NESTOR_VCPU_REG_RSP 1u
#define NESTOR_VCPU_REG_RFLAGS 2u
#define NESTOR_VCPU_REG_GPR0 3u /* general purpose registers 0..15 follow */
#define NESTOR_VCPU_REG_COUNT 19u

#endif
