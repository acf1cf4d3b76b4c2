/* Nestor hypercall ABI version. Plain C: usable from C and C++ guests, toolstacks and the kernel.
 * The major number changes on any incompatible change (renumbered call, changed argument
 * meaning); the minor number on additions. Every change is recorded in sdk/ABI_CHANGELOG.md. */
#ifndef NESTOR_ABI_VERSION_H
#define NESTOR_ABI_VERSION_H

#include <stdint.h>

#define NESTOR_ABI_VERSION_MAJOR 0u
#define NESTOR_ABI_VERSION_MINOR 3u
/* What NESTOR_HC_ABI_VERSION returns in value 0: major in bits 16..31, minor in bits 0..15. */
#define NESTOR_ABI_VERSION ((uint32_t)((NESTOR_ABI_VERSION_MAJOR << 16) | NESTOR_ABI_VERSION_MINOR))

#endif
