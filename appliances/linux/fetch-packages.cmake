# cmake -DOUT=DIR -P fetch-packages.cmake: downloads Debian's cloud kernel and busybox-static with
# `apt-get download` (no root needed), unpacks them with `dpkg-deb -x` and leaves DIR/vmlinuz and
# DIR/busybox. linux-image-cloud-amd64 is a metapackage: the kernel is the versioned package it
# depends on, resolved here from the machine's package lists.
cmake_minimum_required(VERSION 3.25)
foreach(tool apt-get apt-cache dpkg-deb)
  find_program(tool_${tool} ${tool})
  if(NOT tool_${tool})
    message(FATAL_ERROR "the linux appliance's images come from Debian packages: ${tool} is missing")
  endif()
endforeach()

execute_process(COMMAND ${tool_apt-cache} depends --important linux-image-cloud-amd64
                OUTPUT_VARIABLE depends RESULT_VARIABLE status ERROR_VARIABLE error)
string(REGEX MATCH "Depends: (linux-image-[0-9][^ \n]*-cloud-amd64)" found "${depends}")
if(NOT status EQUAL 0 OR NOT found)
  message(FATAL_ERROR "cannot resolve linux-image-cloud-amd64's kernel package (is 'apt-get update' done?): "
                      "${error}${depends}")
endif()
set(kernel_package ${CMAKE_MATCH_1})

set(debs ${OUT}/debs)
file(REMOVE_RECURSE ${debs} ${OUT}/root)
file(MAKE_DIRECTORY ${debs} ${OUT}/root)
message(STATUS "Downloading ${kernel_package} and busybox-static")
execute_process(COMMAND ${tool_apt-get} download -q ${kernel_package} busybox-static
                WORKING_DIRECTORY ${debs} RESULT_VARIABLE status OUTPUT_VARIABLE output ERROR_VARIABLE error)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "apt-get download ${kernel_package} busybox-static failed: ${error}")
endif()
file(GLOB packages ${debs}/*.deb)
foreach(package IN LISTS packages)
  execute_process(COMMAND ${tool_dpkg-deb} -x ${package} ${OUT}/root RESULT_VARIABLE status)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "dpkg-deb -x ${package} failed")
  endif()
endforeach()

file(GLOB kernels ${OUT}/root/boot/vmlinuz-*)
list(LENGTH kernels count)
if(NOT count EQUAL 1 OR NOT EXISTS ${OUT}/root/bin/busybox)
  message(FATAL_ERROR "the packages did not hold one /boot/vmlinuz-* and /bin/busybox: ${kernels}")
endif()
file(COPY_FILE ${kernels} ${OUT}/vmlinuz)
file(COPY_FILE ${OUT}/root/bin/busybox ${OUT}/busybox)
file(WRITE ${OUT}/packages.txt "${kernel_package}\nbusybox-static\n")
