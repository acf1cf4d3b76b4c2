// Linked into a test nested module: a kernel function the export list does not name, so the
// kernel must refuse the module ("unresolved symbol nestor_not_exported").
extern "C" void nestor_not_exported();

extern "C" __attribute__((visibility("default"))) void nestor_test_calls_the_kernel() { nestor_not_exported(); }
