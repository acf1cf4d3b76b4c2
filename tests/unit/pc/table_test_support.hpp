// What the firmware tables' tests share (test_acpi_tables.cpp, test_smbios_tables.cpp): little-
// endian loads, byte sums, and a temporary directory for the files an outside tool (iasl,
// dmidecode) reads and writes.
#pragma once

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "nestor/lib/types.hpp"

namespace nestor::pc::table_test {

inline u16 le16(const u8* at) { return static_cast<u16>(at[0] | at[1] << 8); }
inline u32 le32(const u8* at) { return le16(at) | static_cast<u32>(le16(at + 2)) << 16; }
inline u64 le64(const u8* at) { return le32(at) | static_cast<u64>(le32(at + 4)) << 32; }

inline u8 byte_sum(const u8* at, usize length) {
    u8 sum = 0;
    for (usize i = 0; i < length; ++i) sum = static_cast<u8>(sum + at[i]);
    return sum;
}

// A temporary directory, removed at the end of the test.
struct TempDir {
    TempDir() {
        char pattern[] = "/tmp/nestor_tables_XXXXXX";
        REQUIRE(mkdtemp(pattern) != nullptr);
        path = pattern;
    }
    ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    std::string path;
};

inline std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream content;
    content << in.rdbuf();
    return content.str();
}

}  // namespace nestor::pc::table_test
