#include "nestor/lib/cmdline.hpp"

namespace nestor {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n'; }

// True if the word [begin, end) is key or starts with "key="; value gets what follows '='.
bool match_word(const char* begin, const char* end, const char* key, const char*& value) {
    const char* p = begin;
    while (*key && p < end && *p == *key) {
        ++p;
        ++key;
    }
    if (*key) return false;
    if (p == end) {
        value = end;
        return true;
    }
    if (*p != '=') return false;
    value = p + 1;
    return true;
}

}  // namespace

bool cmdline_option(const char* cmdline, const char* key, char* out, usize capacity) {
    if (!cmdline || !key || !*key || capacity == 0) return false;
    bool found = false;
    const char* p = cmdline;
    while (*p) {
        while (is_space(*p)) ++p;
        const char* begin = p;
        while (*p && !is_space(*p)) ++p;
        const char* value = nullptr;
        if (p > begin && match_word(begin, p, key, value)) {
            usize n = 0;
            while (value + n < p && n + 1 < capacity) {
                out[n] = value[n];
                ++n;
            }
            out[n] = '\0';
            found = true;
        }
    }
    return found;
}

}  // namespace nestor
