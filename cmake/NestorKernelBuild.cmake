# Builds the freestanding kernel as a sub-project with the kernel toolchain, then packs it into
# a GRUB ISO (multiboot2). One host configure therefore builds everything.
include(ExternalProject)
include(${PROJECT_SOURCE_DIR}/appliances/appliances.cmake)

find_program(NESTOR_GRUB_MKRESCUE grub-mkrescue REQUIRED)
set(NESTOR_KERNEL_BUILD_TYPE "${CMAKE_BUILD_TYPE}")
if(NOT NESTOR_KERNEL_BUILD_TYPE)
  set(NESTOR_KERNEL_BUILD_TYPE Debug)
endif()

# nestor_kernel_build(NAME [cache options...]): kernel variant NAME in kernels/NAME/, with its
# ELF, ELF32 and ISO paths in NESTOR_KERNEL_<NAME>_{ELF,ELF32,ISO}.
function(nestor_kernel_build name)
  set(dir ${CMAKE_BINARY_DIR}/kernels/${name})
  set(guest_files)
  foreach(guest IN LISTS NESTOR_GUEST_IMAGES)
    list(APPEND guest_files ${dir}/guests/${guest}.elf)
  endforeach()
  ExternalProject_Add(kernel_${name}
    SOURCE_DIR ${PROJECT_SOURCE_DIR}
    BINARY_DIR ${dir}
    CMAKE_GENERATOR Ninja
    CMAKE_ARGS
      -DNESTOR_STAGE=kernel
      -DCMAKE_TOOLCHAIN_FILE=${PROJECT_SOURCE_DIR}/cmake/toolchain-kernel.cmake
      -DCMAKE_BUILD_TYPE=${NESTOR_KERNEL_BUILD_TYPE}
      -DCMAKE_EXPORT_COMPILE_COMMANDS=ON
      ${ARGN}
    BUILD_ALWAYS ON
    INSTALL_COMMAND ""
    BUILD_BYPRODUCTS ${dir}/nestor.elf ${dir}/nestor.elf32 ${dir}/nested.module ${dir}/tests/nested_wrong_version.module
                     ${dir}/tests/nested_wrong_fingerprint.module ${dir}/tests/nested_unresolved.module ${guest_files})

  set_property(GLOBAL APPEND PROPERTY NESTOR_KERNEL_BUILDS ${name})  # for the compile database
  set(NESTOR_KERNEL_${name}_ELF ${dir}/nestor.elf PARENT_SCOPE)
  set(NESTOR_KERNEL_${name}_ELF32 ${dir}/nestor.elf32 PARENT_SCOPE)
  set(NESTOR_KERNEL_${name}_DIR ${dir} PARENT_SCOPE)
  set(NESTOR_KERNEL_${name}_GUESTS ${dir}/guests PARENT_SCOPE)
endfunction()

# The kernel this preset composes.
nestor_kernel_build(main -DAMD_SVM=${AMD_SVM} -DINTEL_VMX=${INTEL_VMX} -DNESTED_VIRT=${NESTED_VIRT}
                    -DPC_PLATFORM=${PC_PLATFORM} -DBUILTIN_GUESTS=${BUILTIN_GUESTS})

# Its bootable image: the kernel and, when the preset names one, an appliance.
include(NestorAppliance)
set(NESTOR_KERNEL_main_ISO ${NESTOR_KERNEL_main_DIR}/nestor.iso)
if(NESTOR_APPLIANCE STREQUAL "none")
  nestor_iso(OUTPUT ${NESTOR_KERNEL_main_ISO} KERNEL main)
else()
  nestor_appliance_iso(OUTPUT ${NESTOR_KERNEL_main_ISO} KERNEL main APPLIANCE ${NESTOR_APPLIANCE})
endif()
add_custom_target(iso_main ALL DEPENDS ${NESTOR_KERNEL_main_ISO})
