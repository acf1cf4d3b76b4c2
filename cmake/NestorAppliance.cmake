# Appliances: a manifest packed by nestor-manifest plus the guest images it names, booted as
# multiboot modules. A module's name is the last word of its command line.
if(NOT NESTOR_NESTED_MODE STREQUAL "OFF")
  set(NESTOR_MANIFEST_NESTED on)
else()
  set(NESTOR_MANIFEST_NESTED off)
endif()

# nestor_pack_manifest(OUTPUT bin MANIFEST text [NESTED on|off] [NESTED_MODULE file]): the host
# tool checks the manifest against this build (nested_virt is refused when NESTED_VIRT is off)
# and packs it. NESTED overrides the build's setting: a test packs what a NESTED_VIRT=OFF kernel
# must refuse. NESTED_MODULE records that file's size and SHA-256 for the manifest's
# `components = ["nested"]`.
function(nestor_pack_manifest)
  cmake_parse_arguments(ARG "" "OUTPUT;MANIFEST;NESTED;NESTED_MODULE" "" ${ARGN})
  if(NOT ARG_NESTED)
    set(ARG_NESTED ${NESTOR_MANIFEST_NESTED})
  endif()
  set(component)
  if(ARG_NESTED_MODULE)
    set(component --component nested=${ARG_NESTED_MODULE})
  endif()
  add_custom_command(OUTPUT ${ARG_OUTPUT}
    COMMAND nestor-manifest pack ${ARG_MANIFEST} -o ${ARG_OUTPUT} --nested-virt ${ARG_NESTED} ${component}
    DEPENDS nestor-manifest ${ARG_MANIFEST} ${ARG_NESTED_MODULE}
    COMMENT "Packing ${ARG_MANIFEST}")
endfunction()

# nestor_manifest_loading_nested(OUT text IN text): IN with `components = ["nested"]` added before
# its first [[domain]], for a NESTED_VIRT=MODULE kernel (the same appliance, the module loaded).
function(nestor_manifest_loading_nested out in)
  file(READ ${in} text)
  string(FIND "${text}" "[[domain]]" at)
  string(SUBSTRING "${text}" 0 ${at} head)
  string(SUBSTRING "${text}" ${at} -1 tail)
  file(CONFIGURE OUTPUT ${out} CONTENT "${head}components = [\"nested\"]\n${tail}" @ONLY)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${in})
endfunction()

# nestor_iso(OUTPUT iso KERNEL variant [MODULES "file name" ...]): a GRUB ISO (multiboot2) of a
# kernel variant built by nestor_kernel_build(), with boot modules.
function(nestor_iso)
  cmake_parse_arguments(ARG "" "OUTPUT;KERNEL" "MODULES" ${ARGN})
  set(dir ${NESTOR_KERNEL_${ARG_KERNEL}_DIR})
  get_filename_component(iso_name ${ARG_OUTPUT} NAME_WE)
  set(isodir ${CMAKE_BINARY_DIR}/isodir/${iso_name}_${ARG_KERNEL})
  set(cfg ${isodir}/boot/grub/grub.cfg)
  set(copy_commands)
  set(depends)
  set(entries "")
  set(index 0)
  foreach(module IN LISTS ARG_MODULES)
    separate_arguments(parts UNIX_COMMAND "${module}")
    list(GET parts 0 file)
    list(GET parts 1 name)
    list(APPEND copy_commands COMMAND ${CMAKE_COMMAND} -E copy ${file} ${isodir}/boot/module${index})
    list(APPEND depends ${file})
    string(APPEND entries "    module2 /boot/module${index} ${name}\n")
    math(EXPR index "${index} + 1")
  endforeach()
  file(MAKE_DIRECTORY ${isodir}/boot/grub)
  file(CONFIGURE OUTPUT ${cfg}.in CONTENT "set timeout=0
set default=0
menuentry \"Nestor\" {
    multiboot2 /boot/nestor.elf
@entries@    boot
}
" @ONLY)
  add_custom_command(OUTPUT ${ARG_OUTPUT}
    COMMAND ${CMAKE_COMMAND} -E copy ${dir}/nestor.elf ${isodir}/boot/nestor.elf
    COMMAND ${CMAKE_COMMAND} -E copy ${cfg}.in ${cfg}
    ${copy_commands}
    COMMAND ${NESTOR_GRUB_MKRESCUE} -d /usr/lib/grub/i386-pc
            "--install-modules=multiboot multiboot2 normal configfile" --fonts= --locales= --themes=
            --compress=no -o ${ARG_OUTPUT} ${isodir} > ${ARG_OUTPUT}.log 2>&1
    DEPENDS kernel_${ARG_KERNEL} ${dir}/nestor.elf ${cfg}.in ${depends}
    COMMENT "Packing ${iso_name} into a GRUB ISO")
endfunction()

# The "file name" module list of appliance `name` for kernel variant `kernel`, packing its
# manifest on the way: the manifest module first, then one module per guest image.
function(nestor_appliance_modules out kernel name)
  set(manifest ${NESTOR_APPLIANCE_${name}_MANIFEST})
  if(NOT manifest)
    message(FATAL_ERROR "no appliance '${name}' (see appliances/appliances.cmake)")
  endif()
  set(bin ${CMAKE_BINARY_DIR}/appliances/${name}.bin)
  # Several images may carry the same appliance (the preset's ISO, a test's): pack it once.
  get_property(packed GLOBAL PROPERTY NESTOR_PACKED_APPLIANCES)
  # A NESTED_VIRT=MODULE kernel gets the nested module beside the guests, and the manifest
  # names it with its SHA-256.
  set(nested_module ${NESTOR_KERNEL_${kernel}_DIR}/nested.module)
  if(NESTOR_NESTED_MODE STREQUAL "MODULE")
    set(loading ${CMAKE_BINARY_DIR}/appliances/${name}.module.manifest)
    nestor_manifest_loading_nested(${loading} ${manifest})
    set(manifest ${loading})
  endif()
  if(NOT name IN_LIST packed)
    if(NESTOR_NESTED_MODE STREQUAL "MODULE")
      nestor_pack_manifest(OUTPUT ${bin} MANIFEST ${manifest} NESTED_MODULE ${nested_module})
    else()
      nestor_pack_manifest(OUTPUT ${bin} MANIFEST ${manifest})
    endif()
    set_property(GLOBAL APPEND PROPERTY NESTOR_PACKED_APPLIANCES ${name})
  endif()
  set(modules "${bin} manifest")
  if(NESTOR_NESTED_MODE STREQUAL "MODULE")
    list(APPEND modules "${nested_module} nested")
  endif()
  foreach(guest IN LISTS NESTOR_APPLIANCE_${name}_GUESTS)
    list(APPEND modules "${NESTOR_KERNEL_${kernel}_GUESTS}/${guest}.elf ${guest}")
  endforeach()
  # Images the kernel stage does not build come from the appliance's set-up file, which says how
  # they are made and sets appliance_files to their "file name" modules.
  if(NESTOR_APPLIANCE_${name}_SETUP)
    include(${NESTOR_APPLIANCE_${name}_SETUP})
    list(APPEND modules ${appliance_files})
  endif()
  set(${out} ${modules} PARENT_SCOPE)
endfunction()

# nestor_appliance_iso(OUTPUT iso KERNEL variant APPLIANCE name)
function(nestor_appliance_iso)
  cmake_parse_arguments(ARG "" "OUTPUT;KERNEL;APPLIANCE" "" ${ARGN})
  nestor_appliance_modules(modules ${ARG_KERNEL} ${ARG_APPLIANCE})
  nestor_iso(OUTPUT ${ARG_OUTPUT} KERNEL ${ARG_KERNEL} MODULES ${modules})
endfunction()
