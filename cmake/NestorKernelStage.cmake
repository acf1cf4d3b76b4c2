# Kernel stage: the freestanding image. Only reached through cmake/NestorKernelBuild.cmake or a
# direct configure with -DNESTOR_STAGE=kernel -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-kernel.cmake.
add_compile_definitions($<$<CONFIG:Debug>:NESTOR_DEBUG=1>)
# MinSizeRel (the minimal preset's appliance) is built for size throughout, the exit path too:
# -Oz, after the -Os CMake's MinSizeRel flags bring.
add_compile_options($<$<AND:$<CONFIG:MinSizeRel>,$<COMPILE_LANGUAGE:C,CXX>>:-Oz>)

add_subdirectory(kernel)
add_subdirectory(platform/x86)
add_subdirectory(components/nested)
add_subdirectory(components/pc)
add_subdirectory(sdk)
add_subdirectory(appliances/guests)
add_subdirectory(tests/guests)
add_subdirectory(tests/nested/guests)
add_subdirectory(bench/guests)
include(NestorImage)
