# The kernel image: boot stub, platform, kernel core and the nested component (or its null stub)
# linked at the addresses of platform/x86/boot/kernel.ld. nestor.elf is the ELF64 that GRUB
# loads; nestor.elf32 is the same image as ELF32, which QEMU's -kernel multiboot loader needs.
set(NESTOR_LINKER_SCRIPT ${PROJECT_SOURCE_DIR}/platform/x86/boot/kernel.ld)
# The entry stub and the multiboot headers are linked directly: nothing references the headers,
# so from an archive the linker would drop them.
add_executable(nestor_image platform/x86/boot/multiboot_header.S platform/x86/boot/boot.S)
set_target_properties(nestor_image PROPERTIES OUTPUT_NAME nestor.elf LINKER_LANGUAGE CXX
                      LINK_DEPENDS ${NESTOR_LINKER_SCRIPT})
# --gc-sections drops every function and object nothing reaches from the entry point (the
# multiboot headers are KEEP()s in the script). --nmagic packs the segments in the file: their
# addresses stay page-aligned (the script aligns them, and the kernel maps text, rodata and data
# with their own permissions), but the file needs no page padding, since the loaders copy each
# segment by its offset and size.
target_link_options(nestor_image PRIVATE -T ${NESTOR_LINKER_SCRIPT} -Map=${CMAKE_BINARY_DIR}/nestor.map --gc-sections
                    --nmagic)
target_include_directories(nestor_image PRIVATE ${PROJECT_SOURCE_DIR})
# nestor_nested is the real nested component or the null one (components/nested/CMakeLists.txt):
# the NESTED_VIRT choice is this link, never an #ifdef.
target_link_libraries(nestor_image PRIVATE nestor_x86 nestor_core nestor_virt nestor_svm nestor_vmx nestor_nested)
add_custom_command(TARGET nestor_image POST_BUILD
  COMMAND ${CMAKE_OBJCOPY} -O elf32-i386 $<TARGET_FILE:nestor_image> ${CMAKE_BINARY_DIR}/nestor.elf32
  COMMENT "Converting the kernel to ELF32 for multiboot v1 loaders")
