# nestor_add_guest(NAME name SOURCES file... [LIBRARIES lib...]): a bare-metal 64-bit guest.
#
# Builds <name>.elf (ELF64, linked at guest-physical 1 MiB with the guest runtime) and <name>.elf32
# (the same image as ELF32, which multiboot v1 loaders such as QEMU's -kernel need), both in
# ${CMAKE_BINARY_DIR}/guests/. Kernel stage only: it uses the kernel toolchain's compiler and ld.lld.
# Cache variables, so nestor_add_guest() works from any directory of the kernel stage.
set(NESTOR_GUEST_LINKER_SCRIPT ${CMAKE_CURRENT_LIST_DIR}/guest.ld CACHE INTERNAL "guest linker script")
set(NESTOR_GUEST_OUTPUT_DIR ${CMAKE_BINARY_DIR}/guests CACHE INTERNAL "where guest images go")

# Guests run at 1 MiB, not in the kernel's top 2 GiB: the small code model, not the toolchain's
# -mcmodel=kernel (clang takes the last -mcmodel it is given).
set(NESTOR_GUEST_COMPILE_OPTIONS -mcmodel=small CACHE INTERNAL "guest compile options")

function(nestor_add_guest)
  cmake_parse_arguments(ARG "" "NAME" "SOURCES;LIBRARIES" ${ARGN})
  if(NOT ARG_NAME OR NOT ARG_SOURCES)
    message(FATAL_ERROR "nestor_add_guest: give NAME and SOURCES")
  endif()
  set(elf ${NESTOR_GUEST_OUTPUT_DIR}/${ARG_NAME}.elf)
  add_executable(${ARG_NAME} ${ARG_SOURCES})
  set_target_properties(${ARG_NAME} PROPERTIES
    OUTPUT_NAME ${ARG_NAME}.elf
    RUNTIME_OUTPUT_DIRECTORY ${NESTOR_GUEST_OUTPUT_DIR}
    LINKER_LANGUAGE CXX
    LINK_DEPENDS ${NESTOR_GUEST_LINKER_SCRIPT}
    ADDITIONAL_CLEAN_FILES ${NESTOR_GUEST_OUTPUT_DIR}/${ARG_NAME}.elf32)
  target_compile_options(${ARG_NAME} PRIVATE ${NESTOR_GUEST_COMPILE_OPTIONS})
  # ld.lld is called directly (toolchain-kernel.cmake), so these are lld flags. The entry stub
  # and its multiboot header come from the runtime archive, pulled in by naming the entry.
  target_link_options(${ARG_NAME} PRIVATE -T ${NESTOR_GUEST_LINKER_SCRIPT} --undefined=_start32
                      -Map=${NESTOR_GUEST_OUTPUT_DIR}/${ARG_NAME}.map)
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_LIBRARIES} nestor_guest_runtime)
  add_custom_command(TARGET ${ARG_NAME} POST_BUILD
    COMMAND ${CMAKE_OBJCOPY} -O elf32-i386 ${elf} ${NESTOR_GUEST_OUTPUT_DIR}/${ARG_NAME}.elf32
    COMMENT "Converting guest ${ARG_NAME} to ELF32 for multiboot v1 loaders")
endfunction()
