# Host stage: kernel logic, tools and tests built for this machine under sanitizers, and the
# freestanding kernel built as an external sub-project with the kernel toolchain.
option(NESTOR_BUILD_KERNEL "Build the kernel image and its boot tests" ON)
include(NestorSanitizers)
enable_testing()

add_subdirectory(kernel)
add_subdirectory(platform/x86)
add_subdirectory(components/nested)
add_subdirectory(components/pc)
add_subdirectory(sdk)
if(NESTOR_BUILD_KERNEL)
  include(NestorKernelBuild)
endif()
add_subdirectory(tests)
include(NestorCompileCommands)
nestor_merge_compile_commands()
