# Freestanding x86-64 kernel: clang + lld, no C++ library, no exceptions, no RTTI.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

find_program(NESTOR_CLANG NAMES clang-19 REQUIRED)
find_program(NESTOR_CLANGXX NAMES clang++-19 REQUIRED)
set(CMAKE_C_COMPILER ${NESTOR_CLANG})
set(CMAKE_CXX_COMPILER ${NESTOR_CLANGXX})
set(CMAKE_ASM_COMPILER ${NESTOR_CLANG})
set(CMAKE_C_COMPILER_TARGET x86_64-unknown-none-elf)
set(CMAKE_CXX_COMPILER_TARGET x86_64-unknown-none-elf)
set(CMAKE_ASM_COMPILER_TARGET x86_64-unknown-none-elf)
# The compiler checks cannot link a hosted program.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

find_program(CMAKE_AR NAMES llvm-ar-19 REQUIRED)
find_program(CMAKE_RANLIB NAMES llvm-ranlib-19 REQUIRED)
find_program(CMAKE_OBJCOPY NAMES llvm-objcopy-19 REQUIRED)
find_program(CMAKE_NM NAMES llvm-nm-19 REQUIRED)

# A section per function and per object: the kernel link (cmake/NestorImage.cmake) collects the
# unreferenced ones.
set(NESTOR_FREESTANDING_FLAGS
    "-ffreestanding -fno-exceptions -fno-rtti -nostdlib -mno-red-zone -mgeneral-regs-only \
-mcmodel=kernel -fno-pic -fno-stack-protector -fno-threadsafe-statics -fno-use-cxa-atexit \
-fno-asynchronous-unwind-tables -fno-unwind-tables -Wglobal-constructors -Wexit-time-destructors \
-ffunction-sections -fdata-sections")
# Release kernels keep no frame pointer: a register and the instructions that keep it back in
# every function of every exit's path. Nothing walks the stack by RBP; the dev preset's Debug
# kernel has DWARF for GDB.
set(CMAKE_C_FLAGS_RELEASE_INIT "-O3 -DNDEBUG -fomit-frame-pointer")
set(CMAKE_CXX_FLAGS_RELEASE_INIT "-O3 -DNDEBUG -fomit-frame-pointer")
set(CMAKE_C_FLAGS_MINSIZEREL_INIT "-fomit-frame-pointer")
set(CMAKE_CXX_FLAGS_MINSIZEREL_INIT "-fomit-frame-pointer")
set(CMAKE_C_FLAGS_INIT "${NESTOR_FREESTANDING_FLAGS}")
set(CMAKE_CXX_FLAGS_INIT "${NESTOR_FREESTANDING_FLAGS}")
set(CMAKE_ASM_FLAGS_INIT "-mno-red-zone")
# Link with lld directly: for an x86_64 "none" target the clang driver would go through gcc.
find_program(CMAKE_LINKER NAMES ld.lld-19 REQUIRED)
set(CMAKE_CXX_LINK_EXECUTABLE "<CMAKE_LINKER> <LINK_FLAGS> <OBJECTS> -o <TARGET> <LINK_LIBRARIES>")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-nostdlib -static --no-pie -z max-page-size=4096")
