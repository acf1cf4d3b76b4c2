# pack_cpio(BUSYBOX WORK LIST OUT): the files LIST names (one path per line, relative to WORK) as a
# gzipped cpio (newc) archive OUT (FILE.cpio.gz), every file owned by root. busybox itself writes
# the archive (its cpio applet), so the build needs no cpio. Included by the initramfs scripts.
function(pack_cpio busybox work list out)
  find_program(gzip gzip REQUIRED)
  file(WRITE ${work}.list "${list}")
  string(REGEX REPLACE "\\.gz$" "" cpio ${out})
  execute_process(COMMAND ${busybox} cpio -o -H newc -R 0:0 WORKING_DIRECTORY ${work} INPUT_FILE ${work}.list
                  OUTPUT_FILE ${cpio} RESULT_VARIABLE status ERROR_VARIABLE error)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "busybox cpio failed: ${error}")
  endif()
  execute_process(COMMAND ${gzip} -9 -n -f ${cpio} RESULT_VARIABLE status)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "gzip ${cpio} failed")
  endif()
endfunction()
