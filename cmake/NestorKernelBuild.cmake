# Builds the freestanding kernel as a sub-project with the kernel toolchain, then packs it into
# a GRUB ISO (multiboot2). One host configure therefore builds everything.
include(ExternalProject)

find_program(NESTOR_GRUB_MKRESCUE grub-mkrescue REQUIRED)
set(NESTOR_KERNEL_BUILD_TYPE "${CMAKE_BUILD_TYPE}")
if(NOT NESTOR_KERNEL_BUILD_TYPE)
  set(NESTOR_KERNEL_BUILD_TYPE Debug)
endif()

# nestor_kernel_build(NAME [cache options...]): kernel variant NAME in kernels/NAME/, with its
# ELF, ELF32 and ISO paths in NESTOR_KERNEL_<NAME>_{ELF,ELF32,ISO}.
function(nestor_kernel_build name)
  set(dir ${CMAKE_BINARY_DIR}/kernels/${name})
  ExternalProject_Add(kernel_${name}
    SOURCE_DIR ${PROJECT_SOURCE_DIR}
    BINARY_DIR ${dir}
    CMAKE_GENERATOR Ninja
    CMAKE_ARGS
      -DNESTOR_STAGE=kernel
      -DCMAKE_TOOLCHAIN_FILE=${PROJECT_SOURCE_DIR}/cmake/toolchain-kernel.cmake
      -DCMAKE_BUILD_TYPE=${NESTOR_KERNEL_BUILD_TYPE}
      ${ARGN}
    BUILD_ALWAYS ON
    INSTALL_COMMAND ""
    BUILD_BYPRODUCTS ${dir}/nestor.elf ${dir}/nestor.elf32)

  set(iso ${dir}/nestor.iso)
  set(isodir ${dir}/isodir)
  add_custom_command(OUTPUT ${iso}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${isodir}/boot/grub
    COMMAND ${CMAKE_COMMAND} -E copy ${dir}/nestor.elf ${isodir}/boot/nestor.elf
    COMMAND ${CMAKE_COMMAND} -E copy ${PROJECT_SOURCE_DIR}/platform/x86/boot/grub.cfg ${isodir}/boot/grub/grub.cfg
    COMMAND ${NESTOR_GRUB_MKRESCUE} -d /usr/lib/grub/i386-pc
            "--install-modules=multiboot multiboot2 normal configfile" --fonts= --locales= --themes=
            --compress=no -o ${iso} ${isodir} > ${dir}/grub-mkrescue.log 2>&1
    DEPENDS kernel_${name} ${dir}/nestor.elf ${PROJECT_SOURCE_DIR}/platform/x86/boot/grub.cfg
    COMMENT "Packing the ${name} kernel into a GRUB ISO")
  add_custom_target(iso_${name} ALL DEPENDS ${iso})

  set(NESTOR_KERNEL_${name}_ELF ${dir}/nestor.elf PARENT_SCOPE)
  set(NESTOR_KERNEL_${name}_ELF32 ${dir}/nestor.elf32 PARENT_SCOPE)
  set(NESTOR_KERNEL_${name}_ISO ${iso} PARENT_SCOPE)
endfunction()

# The kernel this preset composes.
nestor_kernel_build(main -DAMD_SVM=${AMD_SVM} -DINTEL_VMX=${INTEL_VMX} -DNESTED_VIRT=${NESTED_VIRT})
