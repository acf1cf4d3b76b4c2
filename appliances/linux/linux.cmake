# The linux appliance's images, made at build time by a preset that asks for this appliance
# (NESTOR_APPLIANCE=linux) and by every build with the boot tests (tests/boot/linux.cmake):
# Debian's cloud kernel and busybox-static are downloaded with apt-get into a cache outside the
# build tree and unpacked (fetch-packages.cmake), and an initramfs is made of busybox and the init
# script beside this file (make-initramfs.cmake). Nothing of them is in the repository. Included
# by nestor_appliance_modules(), it sets appliance_files to the boot modules ("file name").
set(linux_dir ${CMAKE_BINARY_DIR}/linux-images)
set(linux_here ${CMAKE_CURRENT_LIST_DIR})
get_property(linux_images_defined GLOBAL PROPERTY NESTOR_LINUX_IMAGES_DEFINED)
if(NOT linux_images_defined)
  set_property(GLOBAL PROPERTY NESTOR_LINUX_IMAGES_DEFINED TRUE)
  add_custom_command(OUTPUT ${linux_dir}/vmlinuz ${linux_dir}/busybox
    COMMAND ${CMAKE_COMMAND} -DOUT=${linux_dir} -P ${linux_here}/fetch-packages.cmake
    DEPENDS ${linux_here}/fetch-packages.cmake
    COMMENT "Downloading the linux appliance's Debian packages (kernel, busybox-static)")
  add_custom_command(OUTPUT ${linux_dir}/initramfs.cpio.gz
    COMMAND ${CMAKE_COMMAND} -DBUSYBOX=${linux_dir}/busybox -DINIT=${linux_here}/init
            -DWORK=${linux_dir}/initramfs -DOUT=${linux_dir}/initramfs.cpio.gz -P ${linux_here}/make-initramfs.cmake
    DEPENDS ${linux_dir}/busybox ${linux_here}/init ${linux_here}/make-initramfs.cmake ${linux_here}/pack-cpio.cmake
    COMMENT "Making the linux appliance's initramfs")
  # Built by every build that includes this file (the linux preset's image, the dev suite's tests).
  add_custom_target(linux_images ALL DEPENDS ${linux_dir}/vmlinuz ${linux_dir}/initramfs.cpio.gz)
endif()
set(appliance_files "${linux_dir}/vmlinuz vmlinuz" "${linux_dir}/initramfs.cpio.gz initramfs")
