# Host builds of kernel logic run under AddressSanitizer and UndefinedBehaviorSanitizer;
# any report fails the test.
set(NESTOR_SANITIZE_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
add_compile_options(${NESTOR_SANITIZE_FLAGS})
add_link_options(-fsanitize=address,undefined)
# Kernel logic asserts in tests exactly as in a debug kernel.
add_compile_definitions(NESTOR_DEBUG=1)
