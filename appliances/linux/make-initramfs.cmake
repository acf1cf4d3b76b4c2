# cmake -DBUSYBOX=FILE -DINIT=FILE -DWORK=DIR -DOUT=FILE.cpio.gz -P make-initramfs.cmake: the
# linux appliance's initramfs, a gzipped cpio (newc) archive of busybox and the init script, every
# file owned by root. busybox itself writes the archive (its cpio applet), so the build needs no
# cpio. /dev/console is not in it: the kernel's built-in initramfs has it.
cmake_minimum_required(VERSION 3.25)
find_program(gzip gzip REQUIRED)
file(REMOVE_RECURSE ${WORK})
foreach(dir bin dev etc proc root sys tmp)
  file(MAKE_DIRECTORY ${WORK}/${dir})
endforeach()
set(executable OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
file(COPY_FILE ${BUSYBOX} ${WORK}/bin/busybox)
file(CHMOD ${WORK}/bin/busybox PERMISSIONS ${executable})
file(COPY_FILE ${INIT} ${WORK}/init)
file(CHMOD ${WORK}/init PERMISSIONS ${executable})

set(list ${WORK}.list)
file(WRITE ${list} ".\nbin\nbin/busybox\ndev\netc\ninit\nproc\nroot\nsys\ntmp\n")
string(REGEX REPLACE "\\.gz$" "" cpio ${OUT})
execute_process(COMMAND ${BUSYBOX} cpio -o -H newc -R 0:0 WORKING_DIRECTORY ${WORK} INPUT_FILE ${list}
                OUTPUT_FILE ${cpio} RESULT_VARIABLE status ERROR_VARIABLE error)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "busybox cpio failed: ${error}")
endif()
execute_process(COMMAND ${gzip} -9 -n -f ${cpio} RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "gzip ${cpio} failed")
endif()
