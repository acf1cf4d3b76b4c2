# cmake -DBUSYBOX=FILE -DINIT=FILE -DWORK=DIR -DOUT=FILE.cpio.gz -P make-initramfs.cmake: the
# linux appliance's initramfs, a gzipped cpio (newc) archive of busybox and the init script, every
# file owned by root (pack-cpio.cmake). /dev/console is not in it: the kernel's built-in initramfs has it.
cmake_minimum_required(VERSION 3.25)
include(${CMAKE_CURRENT_LIST_DIR}/pack-cpio.cmake)
file(REMOVE_RECURSE ${WORK})
foreach(dir bin dev etc proc root sys tmp)
  file(MAKE_DIRECTORY ${WORK}/${dir})
endforeach()
set(executable OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
file(COPY_FILE ${BUSYBOX} ${WORK}/bin/busybox)
file(CHMOD ${WORK}/bin/busybox PERMISSIONS ${executable})
file(COPY_FILE ${INIT} ${WORK}/init)
file(CHMOD ${WORK}/init PERMISSIONS ${executable})

pack_cpio(${BUSYBOX} ${WORK} ".\nbin\nbin/busybox\ndev\netc\ninit\nproc\nroot\nsys\ntmp\n" ${OUT})
