// Multiboot v1 (QEMU -kernel) and multiboot2 (GRUB) headers: the same image boots under both.
// Both must lie within the first 8 KiB of the file, so they go first in the image.

#define MB1_MAGIC 0x1BADB002
#define MB1_FLAGS 0x00000003          // page-aligned modules, memory map wanted
#define MB2_MAGIC 0xE85250D6
#define MB2_ARCH_I386 0

    .section .multiboot, "a"
    .balign 4
mb1_header:
    .long MB1_MAGIC
    .long MB1_FLAGS
    .long -(MB1_MAGIC + MB1_FLAGS)

    .balign 8
mb2_header:
    .long MB2_MAGIC
    .long MB2_ARCH_I386
    .long mb2_header_end - mb2_header
    .long -(MB2_MAGIC + MB2_ARCH_I386 + (mb2_header_end - mb2_header))
    // Module alignment tag: modules start on page boundaries.
    .balign 8
    .short 6, 0
    .long 8
    // End tag.
    .balign 8
    .short 0, 0
    .long 8
mb2_header_end:
