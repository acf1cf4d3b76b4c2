# Merges the kernel stage's compile databases into the host stage's, one entry per source file.
# usage: cmake -DDATABASE=BUILD/compile_commands.json -DHOST_DIRECTORY=BUILD
#              -DKERNEL_DATABASES="KERNEL1/compile_commands.json|KERNEL2/..." -P merge-compile-commands.cmake
#
# clangd uses one entry per file, so a file compiled in both stages needs one chosen: the first
# kernel database that compiles it wins, then the host's. Everything both stages compile
# (kernel/, components/, the logic platform/ shares) is kernel code that the host stage only
# builds again to test it, so clangd should read it as the kernel does: freestanding, with
# --target=x86_64-unknown-none-elf and the kernel's include directories, where hosted headers
# are not there to be used by mistake. Files only the host compiles (tests/unit, tests/fuzz,
# sdk/tools) keep the host's flags. The first kernel database is the preset's own kernel, so its
# options (NESTED_VIRT, the vendors) decide; the others only add what it does not compile.
#
# DATABASE is also the output: CMake rewrites it with the host's entries at each configure, and
# this merge keeps only the entries whose directory is HOST_DIRECTORY (the host's: the kernel's
# run in their sub-build's directory), so running it again after a build gives the same file.
foreach(var DATABASE HOST_DIRECTORY KERNEL_DATABASES)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "merge-compile-commands: ${var} is not set")
  endif()
endforeach()

set(merged "")
set(count 0)

# append_entries(JSON_FILE ONLY_DIRECTORY): adds the file's entries for files not seen yet
# (only those run in ONLY_DIRECTORY when it is not empty).
function(append_entries path only_directory)
  if(NOT EXISTS "${path}")
    return()
  endif()
  file(READ "${path}" json)
  string(JSON length ERROR_VARIABLE error LENGTH "${json}")
  if(error)
    message(FATAL_ERROR "merge-compile-commands: ${path}: ${error}")
  endif()
  if(length EQUAL 0)
    return()
  endif()
  math(EXPR last "${length} - 1")
  foreach(i RANGE ${last})
    string(JSON entry GET "${json}" ${i})
    string(JSON file GET "${entry}" file)
    if(DEFINED "seen:${file}")
      continue()
    endif()
    if(only_directory)
      string(JSON directory GET "${entry}" directory)
      if(NOT directory STREQUAL only_directory)
        continue()
      endif()
    endif()
    set("seen:${file}" 1 PARENT_SCOPE)
    set("seen:${file}" 1)
    if(count GREATER 0)
      string(APPEND merged ",\n")
    endif()
    string(APPEND merged "${entry}")
    math(EXPR count "${count} + 1")
  endforeach()
  set(merged "${merged}" PARENT_SCOPE)
  set(count ${count} PARENT_SCOPE)
endfunction()

string(REPLACE "|" ";" kernel_databases "${KERNEL_DATABASES}")
foreach(database IN LISTS kernel_databases)
  append_entries("${database}" "")
endforeach()
append_entries("${DATABASE}" "${HOST_DIRECTORY}")

# Written aside and renamed, so clangd never reads half a file.
file(WRITE "${DATABASE}.tmp" "[\n${merged}\n]\n")
file(RENAME "${DATABASE}.tmp" "${DATABASE}")
