// Multiboot v1 information, read once at start into fixed tables. Every length and count comes
// from the loader, so each is checked against the block that holds it before anything is read.
#include "runtime.hpp"

namespace nestor::guest {
namespace {

constexpr u32 kMultibootLoaderMagic = 0x2BADB002;
constexpr u32 kFlagCmdline = 1u << 2;
constexpr u32 kFlagModules = 1u << 3;
constexpr u32 kFlagMemoryMap = 1u << 6;
constexpr u32 kMemoryMapEntryMinSize = 20;  // base, length, type
constexpr u32 kModuleEntrySize = 16;

BootInfo boot = {};

// The loader's structures are packed and may sit at any alignment.
template <typename T> T read_at(u64 address) {
    T value;
    __builtin_memcpy(&value, reinterpret_cast<const void*>(address), sizeof(T));
    return value;
}

// The length of a NUL-terminated string of at most `limit` bytes, or -1 when none ends in time.
i64 bounded_length(u64 address, u64 limit) {
    if (address == 0) return -1;
    const char* s = reinterpret_cast<const char*>(address);
    for (u64 n = 0; n < limit; ++n) {
        if (s[n] == '\0') return static_cast<i64>(n);
    }
    return -1;
}

void read_cmdline(u64 address) {
    const char* s = reinterpret_cast<const char*>(address);
    u32 n = 0;
    for (; n + 1 < BootInfo::kMaxCmdline && s[n]; ++n) boot.cmdline[n] = s[n];
    boot.cmdline[n] = '\0';
    if (s[n]) boot.truncated = true;
}

void read_memory_map(u64 address, u32 length) {
    u32 offset = 0;
    while (offset + 4 <= length) {
        u32 size = read_at<u32>(address + offset);
        // A malformed entry ends the walk: nothing after it can be located reliably.
        if (size < kMemoryMapEntryMinSize || size > length - offset - 4) break;
        if (boot.memory_range_count == BootInfo::kMaxMemoryRanges) {
            boot.truncated = true;
            break;
        }
        u64 entry = address + offset + 4;
        boot.memory_ranges[boot.memory_range_count++] = {read_at<u64>(entry), read_at<u64>(entry + 8),
                                                         read_at<u32>(entry + 16)};
        offset += size + 4;
    }
}

void read_modules(u64 address, u32 count) {
    if (address == 0) return;
    for (u32 i = 0; i < count; ++i) {
        if (boot.module_count == BootInfo::kMaxModules) {
            boot.truncated = true;
            return;
        }
        u64 entry = address + u64{i} * kModuleEntrySize;
        u32 start = read_at<u32>(entry);
        u32 end = read_at<u32>(entry + 4);
        u32 string = read_at<u32>(entry + 8);
        if (end < start) continue;  // not a module anyone could use
        bool named = bounded_length(string, BootInfo::kMaxCmdline) >= 0;
        boot.modules[boot.module_count++] = {start, end, named ? reinterpret_cast<const char*>(u64{string}) : ""};
    }
}

// The command line as a sequence of space-separated words: calls f(word, length) until it says stop.
template <typename F> void for_each_word(const char* line, F f) {
    while (*line) {
        while (*line == ' ') ++line;
        u32 length = 0;
        while (line[length] && line[length] != ' ') ++length;
        if (length && !f(line, length)) return;
        line += length;
    }
}

bool starts_with(const char* s, u32 length, const char* prefix, u32 prefix_length) {
    if (length < prefix_length) return false;
    for (u32 i = 0; i < prefix_length; ++i) {
        if (s[i] != prefix[i]) return false;
    }
    return true;
}

}  // namespace

namespace detail {

void boot_info_parse(u32 magic, u64 info_address) {
    boot.magic = magic;
    boot.info_address = info_address;
    if (magic != kMultibootLoaderMagic || info_address == 0) return;
    boot.valid = true;
    u32 flags = read_at<u32>(info_address);
    if (flags & kFlagCmdline) {
        u32 cmdline = read_at<u32>(info_address + 16);
        if (cmdline) read_cmdline(cmdline);
    }
    if (flags & kFlagModules) read_modules(read_at<u32>(info_address + 24), read_at<u32>(info_address + 20));
    if (flags & kFlagMemoryMap) read_memory_map(read_at<u32>(info_address + 48), read_at<u32>(info_address + 44));
}

}  // namespace detail

const BootInfo& boot_info() { return boot; }

u64 BootInfo::usable_bytes() const {
    u64 total = 0;
    for (u32 i = 0; i < memory_range_count; ++i) {
        if (memory_ranges[i].usable()) total += memory_ranges[i].length;
    }
    return total;
}

bool BootInfo::cmdline_has(const char* word) const {
    u32 word_length = static_cast<u32>(string_length(word));
    bool found = false;
    for_each_word(cmdline, [&](const char* w, u32 length) {
        found = length == word_length && starts_with(w, length, word, word_length);
        return !found;
    });
    return found;
}

const char* BootInfo::cmdline_value(const char* key, char* buffer, u32 size) const {
    u32 key_length = static_cast<u32>(string_length(key));
    const char* result = nullptr;
    if (size == 0) return nullptr;
    for_each_word(cmdline, [&](const char* w, u32 length) {
        if (!starts_with(w, length, key, key_length) || length == key_length || w[key_length] != '=') return true;
        u32 n = 0;
        for (u32 i = key_length + 1; i < length && n + 1 < size; ++i) buffer[n++] = w[i];
        buffer[n] = '\0';
        result = buffer;
        return false;
    });
    return result;
}

}  // namespace nestor::guest
