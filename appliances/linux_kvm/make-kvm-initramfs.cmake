# cmake -DBUSYBOX=FILE -DPACKAGE_ROOT=DIR -DINIT=FILE -DCLIENT=FILE -DBOOT_LINUX=FILE -DL2_KERNEL=FILE
#   -DL2_INITRAMFS=FILE -DWORK=DIR -DOUT=FILE.cpio.gz -P make-kvm-initramfs.cmake
# The linux_kvm appliance's second initramfs, unpacked by the kernel over the linux appliance's:
# /kvm-init (the init script), /bin/kvm-client, /bin/kvm-boot-linux with the L2 Linux it boots
# (/l2/vmlinuz, /l2/initramfs.cpio.gz) and /lib/modules/{irqbypass,kvm,kvm-amd,kvm-intel,msr}.ko,
# the modules taken from the kernel package unpacked in PACKAGE_ROOT (the kernel's own, so their
# version magic matches). kvm needs irqbypass, kvm-amd and kvm-intel need kvm (the init loads
# the one its CPU's flags call for); msr (/dev/cpu/N/msr) is how the
# client reads Nestor's nested-memory MSR. Modules Debian compresses with xz
# are decompressed with busybox's unxz, so that busybox's insmod loads them.
cmake_minimum_required(VERSION 3.25)
include(${CMAKE_CURRENT_LIST_DIR}/../linux/pack-cpio.cmake)
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK}/bin ${WORK}/l2 ${WORK}/lib/modules)
set(executable OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
file(COPY_FILE ${INIT} ${WORK}/kvm-init)
file(CHMOD ${WORK}/kvm-init PERMISSIONS ${executable})
file(COPY_FILE ${CLIENT} ${WORK}/bin/kvm-client)
file(CHMOD ${WORK}/bin/kvm-client PERMISSIONS ${executable})
file(COPY_FILE ${BOOT_LINUX} ${WORK}/bin/kvm-boot-linux)
file(CHMOD ${WORK}/bin/kvm-boot-linux PERMISSIONS ${executable})
file(COPY_FILE ${L2_KERNEL} ${WORK}/l2/vmlinuz)
file(COPY_FILE ${L2_INITRAMFS} ${WORK}/l2/initramfs.cpio.gz)

set(list ".\nbin\nbin/kvm-client\nbin/kvm-boot-linux\nkvm-init\nl2\nl2/vmlinuz\nl2/initramfs.cpio.gz\nlib\nlib/modules\n")
foreach(module virt/lib/irqbypass arch/x86/kvm/kvm arch/x86/kvm/kvm-amd arch/x86/kvm/kvm-intel arch/x86/kernel/msr)
  get_filename_component(name ${module} NAME)
  file(GLOB found ${PACKAGE_ROOT}/lib/modules/*/kernel/${module}.ko ${PACKAGE_ROOT}/lib/modules/*/kernel/${module}.ko.xz)
  list(LENGTH found count)
  if(NOT count EQUAL 1)
    message(FATAL_ERROR "the kernel package holds not exactly one ${module}.ko(.xz): '${found}'")
  endif()
  if(found MATCHES "\\.xz$")
    execute_process(COMMAND ${BUSYBOX} unxz -c ${found} OUTPUT_FILE ${WORK}/lib/modules/${name}.ko RESULT_VARIABLE status)
    if(NOT status EQUAL 0)
      message(FATAL_ERROR "busybox unxz ${found} failed")
    endif()
  else()
    file(COPY_FILE ${found} ${WORK}/lib/modules/${name}.ko)
  endif()
  string(APPEND list "lib/modules/${name}.ko\n")
endforeach()

pack_cpio(${BUSYBOX} ${WORK} "${list}" ${OUT})
