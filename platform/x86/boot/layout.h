/* Memory layout shared by the assembly, the linker script and C++. */
#pragma once

#define KERNEL_PHYS_BASE 0x100000
#define KERNEL_VIRT_OFFSET 0xFFFFFFFF80000000
#define PHYSMAP_BASE 0xFFFF800000000000
#define BOOT_PAGE_TABLE_BYTES (4 * 4096)
#define KERNEL_STACK_BYTES (16 * 1024)
