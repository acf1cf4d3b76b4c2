# Host build of the kernel's testable logic, tools and tests: the same clang as the kernel.
find_program(NESTOR_CLANG NAMES clang-19 REQUIRED)
find_program(NESTOR_CLANGXX NAMES clang++-19 REQUIRED)
set(CMAKE_C_COMPILER ${NESTOR_CLANG})
set(CMAKE_CXX_COMPILER ${NESTOR_CLANGXX})
set(CMAKE_EXE_LINKER_FLAGS_INIT "-fuse-ld=lld")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "-fuse-ld=lld")
