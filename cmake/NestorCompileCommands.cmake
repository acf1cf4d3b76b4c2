# One compile database per build for clangd and clang-tidy: build/PRESET/compile_commands.json
# holds the host stage's entries (CMAKE_EXPORT_COMPILE_COMMANDS, set by the presets) and, after
# every build, the kernel stage's (each kernel sub-build exports its own), merged by
# cmake/merge-compile-commands.cmake. The repository's root compile_commands.json, where clangd
# looks first, links to the dev preset's.

# The dev preset's configure makes the root link (listed in .gitignore); a file of the user's
# own at that place is left alone.
file(REAL_PATH "${PROJECT_SOURCE_DIR}/build/dev" nestor_dev_dir)
file(REAL_PATH "${CMAKE_BINARY_DIR}" nestor_this_dir)
set(nestor_root_link ${PROJECT_SOURCE_DIR}/compile_commands.json)
if(nestor_this_dir STREQUAL nestor_dev_dir AND (IS_SYMLINK ${nestor_root_link} OR NOT EXISTS ${nestor_root_link}))
  file(CREATE_LINK build/dev/compile_commands.json ${nestor_root_link} SYMBOLIC)
endif()

# Merges the databases of the kernel sub-builds nestor_kernel_build() made (in the order they
# were made: the preset's own kernel, "main", first) into this build's database after they build.
function(nestor_merge_compile_commands)
  get_property(kernels GLOBAL PROPERTY NESTOR_KERNEL_BUILDS)
  if(NOT CMAKE_EXPORT_COMPILE_COMMANDS OR NOT kernels)
    return()
  endif()
  set(databases)
  set(targets)
  foreach(name IN LISTS kernels)
    list(APPEND databases ${CMAKE_BINARY_DIR}/kernels/${name}/compile_commands.json)
    list(APPEND targets kernel_${name})
  endforeach()
  list(JOIN databases "|" databases)
  add_custom_target(compile_commands ALL
    COMMAND ${CMAKE_COMMAND} -DDATABASE=${CMAKE_BINARY_DIR}/compile_commands.json
            -DHOST_DIRECTORY=${CMAKE_BINARY_DIR} "-DKERNEL_DATABASES=${databases}"
            -P ${PROJECT_SOURCE_DIR}/cmake/merge-compile-commands.cmake
    COMMENT "Merging the kernel stage into compile_commands.json"
    VERBATIM)
  add_dependencies(compile_commands ${targets})
endfunction()
