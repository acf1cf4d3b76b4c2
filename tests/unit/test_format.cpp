#include <catch2/catch.hpp>
#include <string>

#include "nestor/lib/format.hpp"

using namespace nestor;

template <typename... Args> static std::string fmt(const char* f, const Args&... args) {
    char buf[256];
    format_into(buf, sizeof(buf), f, args...);
    return buf;
}

TEST_CASE("format.integers") {
    CHECK(fmt("{}", 0) == "0");
    CHECK(fmt("{}", -42) == "-42");
    CHECK(fmt("{}", 18446744073709551615ull) == "18446744073709551615");
    CHECK(fmt("{}", static_cast<i64>(-9223372036854775807ll - 1)) == "-9223372036854775808");
    CHECK(fmt("{} {}", static_cast<u8>(255), static_cast<i16>(-3)) == "255 -3");
}

TEST_CASE("format.hex_and_binary") {
    CHECK(fmt("{:x}", 255u) == "ff");
    CHECK(fmt("{:X}", 255u) == "FF");
    CHECK(fmt("{:#x}", 0xdeadbeefull) == "0xdeadbeef");
    CHECK(fmt("{:016x}", 0x1234ull) == "0000000000001234");
    CHECK(fmt("{:#010x}", 0x1234u) == "0x00001234");
    CHECK(fmt("{:b}", 5u) == "101");
    CHECK(fmt("{:#b}", 5u) == "0b101");
}

TEST_CASE("format.width") {
    CHECK(fmt("[{:5}]", 42) == "[   42]");
    CHECK(fmt("[{:5}]", "ab") == "[   ab]");
    CHECK(fmt("[{:2}]", 12345) == "[12345]");
}

TEST_CASE("format.strings_chars_bools_pointers") {
    CHECK(fmt("{}-{}", "a", 'b') == "a-b");
    const char* null_string = nullptr;
    CHECK(fmt("{}", null_string) == "(null)");
    CHECK(fmt("{} {}", true, false) == "true false");
    CHECK(fmt("{}", reinterpret_cast<const void*>(0x1000)) == "0x1000");
    CHECK(fmt("{:c}", 65) == "A");
}

TEST_CASE("format.enums_use_underlying_value") {
    enum class Color : u8 { red = 3 };
    CHECK(fmt("{}", Color::red) == "3");
}

TEST_CASE("format.placeholder_mismatch_is_visible") {
    CHECK(fmt("{} {}", 1) == "1 {?}");
    CHECK(fmt("{}", 1, 2, 3) == "1");
    CHECK(fmt("{{}} {}", 7) == "{} 7");
    CHECK(fmt("{oops} {}", 7) == "{oops} 7");
    CHECK(fmt("unterminated {:x", 7) == "unterminated {:x");
}

TEST_CASE("format.buffer_truncates_and_terminates") {
    char buf[8];
    BufferSink sink(buf, sizeof(buf));
    format(sink, "{}", "0123456789");
    CHECK(std::string(buf) == "0123456");
    CHECK(sink.truncated());
    CHECK(sink.length() == 7);
}
