# nestor_cold_code(TARGET SOURCE...): sources of TARGET that never run on the exit path (boot,
# manifest and image reading, the toolstack, logging and formatting) are optimised for size in
# release kernels, so the image stays small; every other source, the exit path included, keeps
# the build type's optimisation. Host builds keep their own flags for every source.
set(NESTOR_COLD_CODE_OPTIMIZATION -Os)
function(nestor_cold_code target)
  if(NESTOR_STAGE STREQUAL "kernel")
    set_property(SOURCE ${ARGN} TARGET_DIRECTORY ${target} APPEND PROPERTY COMPILE_OPTIONS
                 $<$<CONFIG:Release>:${NESTOR_COLD_CODE_OPTIMIZATION}>)
  endif()
endfunction()
