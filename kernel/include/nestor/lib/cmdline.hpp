// The kernel command line: space-separated words, options written "key=value" or "key".
#pragma once

#include "nestor/lib/types.hpp"

namespace nestor {

// Copies the value of the last "key=value" word into out (NUL-terminated, truncated to
// capacity) and returns true; a bare "key" yields an empty value. False if key is absent.
bool cmdline_option(const char* cmdline, const char* key, char* out, usize capacity);

}  // namespace nestor
