# The linux_kvm appliance's images: the linux appliance's kernel and initramfs (linux/linux.cmake
# downloads and makes them), a second initramfs the kernel unpacks over the first, holding KVM's
# modules from the same kernel package, Nestor's KVM client and this appliance's init
# (make-kvm-initramfs.cmake), and the client itself, a static freestanding Linux program built with
# the host's clang (tests/linux/kvm_client.cpp; it makes one Nestor hypercall, with the SDK's ABI
# headers). The same initramfs holds the linux appliance's kernel and initramfs again, for L2, and
# kvm-boot-linux (tests/linux/kvm_boot_linux.cpp), which boots them on KVM. Included by
# nestor_appliance_modules() and by the boot tests; sets appliance_files to the boot modules
# ("file name").
include(${CMAKE_CURRENT_LIST_DIR}/../linux/linux.cmake)
set(linux_kvm_here ${CMAKE_CURRENT_LIST_DIR})
set(linux_kvm_dir ${CMAKE_BINARY_DIR}/linux-kvm-images)
set(linux_kvm_client_dir ${PROJECT_SOURCE_DIR}/tests/linux)
get_property(linux_kvm_images_defined GLOBAL PROPERTY NESTOR_LINUX_KVM_IMAGES_DEFINED)
if(NOT linux_kvm_images_defined)
  set_property(GLOBAL PROPERTY NESTOR_LINUX_KVM_IMAGES_DEFINED TRUE)
  file(MAKE_DIRECTORY ${linux_kvm_dir})
  add_custom_command(OUTPUT ${linux_kvm_dir}/kvm-client
    COMMAND ${CMAKE_CXX_COMPILER} --target=x86_64-linux-gnu -std=c++20 -O2 -Wall -Wextra -Werror -ffreestanding
            -fno-exceptions -fno-rtti -fno-stack-protector -fno-pic -static -nostdlib -fuse-ld=lld -s
            -I${PROJECT_SOURCE_DIR}/sdk/include -o ${linux_kvm_dir}/kvm-client ${linux_kvm_client_dir}/kvm_client.cpp
    DEPENDS ${linux_kvm_client_dir}/kvm_client.cpp ${linux_kvm_client_dir}/kvm_api.hpp
            ${linux_kvm_client_dir}/linux_syscalls.hpp ${linux_kvm_client_dir}/program_start.hpp
            ${PROJECT_SOURCE_DIR}/sdk/include/nestor/abi/hypercall.h
            ${PROJECT_SOURCE_DIR}/sdk/include/nestor/abi/guest_slots.h
    COMMENT "Building Nestor's KVM client (a static Linux program)")
  add_custom_command(OUTPUT ${linux_kvm_dir}/kvm-boot-linux
    COMMAND ${CMAKE_CXX_COMPILER} --target=x86_64-linux-gnu -std=c++20 -O2 -Wall -Wextra -Werror -ffreestanding
            -fno-exceptions -fno-rtti -fno-stack-protector -fno-pic -static -nostdlib -fuse-ld=lld -s
            -o ${linux_kvm_dir}/kvm-boot-linux ${linux_kvm_client_dir}/kvm_boot_linux.cpp
    DEPENDS ${linux_kvm_client_dir}/kvm_boot_linux.cpp ${linux_kvm_client_dir}/kvm_api.hpp
            ${linux_kvm_client_dir}/linux_syscalls.hpp ${linux_kvm_client_dir}/program_start.hpp
    COMMENT "Building Nestor's Linux-on-KVM loader (a static Linux program)")
  add_custom_command(OUTPUT ${linux_kvm_dir}/kvm-initramfs.cpio.gz
    COMMAND ${CMAKE_COMMAND} -DBUSYBOX=${linux_dir}/busybox -DPACKAGE_ROOT=${linux_dir}/root
            -DINIT=${linux_kvm_here}/init -DCLIENT=${linux_kvm_dir}/kvm-client -DBOOT_LINUX=${linux_kvm_dir}/kvm-boot-linux
            -DL2_KERNEL=${linux_dir}/vmlinuz -DL2_INITRAMFS=${linux_dir}/initramfs.cpio.gz -DWORK=${linux_kvm_dir}/initramfs
            -DOUT=${linux_kvm_dir}/kvm-initramfs.cpio.gz -P ${linux_kvm_here}/make-kvm-initramfs.cmake
    DEPENDS ${linux_dir}/busybox ${linux_kvm_dir}/kvm-client ${linux_kvm_dir}/kvm-boot-linux ${linux_dir}/vmlinuz
            ${linux_dir}/initramfs.cpio.gz ${linux_kvm_here}/init
            ${linux_kvm_here}/make-kvm-initramfs.cmake ${linux_kvm_here}/../linux/pack-cpio.cmake
    COMMENT "Making the linux_kvm appliance's second initramfs (KVM modules, KVM client, L2 Linux, init)")
endif()
list(APPEND appliance_files "${linux_kvm_dir}/kvm-initramfs.cpio.gz kvm-initramfs")
