/* Physical capabilities: what this build on this CPU can do, returned by NESTOR_HC_PHYSCAPS in
 * value 0 (like Xen's XEN_SYSCTL_PHYSCAP_*). A toolstack checks them before asking for a domain
 * flag: NESTOR_DOMAIN_FLAG_NESTED_VIRT is refused unless NESTOR_PHYSCAP_NESTED_VIRT is set. */
#ifndef NESTOR_ABI_PHYSCAPS_H
#define NESTOR_ABI_PHYSCAPS_H

#include <stdint.h>

#define NESTOR_PHYSCAP_HVM_SVM (1u << 0)       /* HVM guests on AMD SVM */
#define NESTOR_PHYSCAP_HVM_VMX (1u << 1)       /* HVM guests on Intel VMX */
#define NESTOR_PHYSCAP_NESTED_PAGING (1u << 2) /* NPT/EPT available */
#define NESTOR_PHYSCAP_NESTED_VIRT (1u << 3)   /* nested virtualization (like ..._nestedhvm) */

#endif
