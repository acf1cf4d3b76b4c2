// Multiboot v1 / multiboot2 parsing: crafted valid tables and one malformed table per error.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <set>
#include <string>

#include "fake_physical.hpp"
#include "nestor/x86/multiboot.hpp"

using namespace test;
using nestor::x86::MultibootError;

namespace {

struct MmapEntry {
    u64 base;
    u64 length;
    nestor::u32 type;
};

constexpr paddr kInfoAddress = 0x10000;
constexpr paddr kMmapAddress = 0x11000;
constexpr paddr kModulesAddress = 0x12000;
constexpr paddr kStringsAddress = 0x13000;

// ---- v1 table builder ----

struct V1Table {
    nestor::u32 flags = 0;
    nestor::u32 mem_lower = 0;
    nestor::u32 mem_upper = 0;
    nestor::u32 cmdline = 0;
    nestor::u32 mods_count = 0;
    nestor::u32 mods_addr = 0;
    nestor::u32 mmap_length = 0;
    nestor::u32 mmap_addr = 0;

    Bytes bytes() const {
        Bytes b;
        b.u32(flags).u32(mem_lower).u32(mem_upper).u32(0).u32(cmdline).u32(mods_count).u32(mods_addr);
        b.zeros(16).u32(mmap_length).u32(mmap_addr);
        b.zeros(kMultiboot1InfoSize - b.size());
        return b;
    }
};

Bytes v1_mmap(const std::vector<MmapEntry>& entries, nestor::u32 size_field = 20) {
    Bytes b;
    for (const auto& e : entries) {
        b.u32(size_field).u64(e.base).u64(e.length).u32(e.type);
        b.zeros(size_field - 20);
    }
    return b;
}

const std::vector<MmapEntry> kTypicalMap = {
    {0x0, 0x9FC00, 1},        {0x9FC00, 0x400, 2},     {0xF0000, 0x10000, 2},
    {0x100000, 0x7EE0000, 1}, {0x7FE0000, 0x20000, 3}, {0xFFFC0000, 0x40000, 2},
};

// A v1 table with the typical map, a command line and two modules.
V1Table place_v1(FakePhysical& mem) {
    V1Table t;
    Bytes map = v1_mmap(kTypicalMap);
    mem.place(kMmapAddress, map.bytes());
    Bytes strings;
    strings.str("console=com1").str("initrd one").str("second");
    mem.place(kStringsAddress, strings.bytes());
    Bytes mods;
    mods.u32(0x200000).u32(0x203000).u32(kStringsAddress + 13).u32(0);
    mods.u32(0x300000).u32(0x300800).u32(kStringsAddress + 24).u32(0);
    mem.place(kModulesAddress, mods.bytes());
    t.flags = (1u << 0) | (1u << 2) | (1u << 3) | (1u << 6);
    t.mem_lower = 639;
    t.mem_upper = 0x1F000;
    t.cmdline = kStringsAddress;
    t.mods_count = 2;
    t.mods_addr = kModulesAddress;
    t.mmap_length = static_cast<nestor::u32>(map.size());
    t.mmap_addr = kMmapAddress;
    return t;
}

auto parse_v1(FakePhysical& mem, const V1Table& t, BootInfo& info) {
    mem.place(kInfoAddress, t.bytes().bytes());
    return parse_multiboot(kMultiboot1BootMagic, kInfoAddress, mem, info);
}

MultibootError v1_error(FakePhysical& mem, const V1Table& t) {
    BootInfo info{};
    auto result = parse_v1(mem, t, info);
    REQUIRE_FALSE(result.ok());
    return result.error();
}

// ---- v2 table builder ----

class V2Table {
public:
    V2Table() { b_.u32(0).u32(0); }
    V2Table& tag(nestor::u32 type, const Bytes& body) {
        b_.u32(type).u32(static_cast<nestor::u32>(8 + body.size())).raw(body.bytes().data(), body.size());
        b_.align(8);
        return *this;
    }
    V2Table& cmdline(const char* s) { return tag(1, Bytes().str(s)); }
    V2Table& module(nestor::u32 start, nestor::u32 end, const char* s) {
        return tag(3, Bytes().u32(start).u32(end).str(s));
    }
    V2Table& basic_memory(nestor::u32 lower, nestor::u32 upper) { return tag(4, Bytes().u32(lower).u32(upper)); }
    V2Table& mmap(const std::vector<MmapEntry>& entries, nestor::u32 entry_size = 24) {
        Bytes body;
        body.u32(entry_size).u32(0);
        for (const auto& e : entries) {
            body.u64(e.base).u64(e.length).u32(e.type).u32(0);
            body.zeros(entry_size - 24);
        }
        return tag(6, body);
    }
    V2Table& end() { return tag(0, Bytes()); }
    Bytes& raw() { return b_; }
    std::vector<u8> build() {
        b_.patch_u32(0, static_cast<nestor::u32>(b_.size()));
        return b_.bytes();
    }

private:
    Bytes b_;
};

auto parse_v2(FakePhysical& mem, V2Table& t, BootInfo& info, paddr at = kInfoAddress) {
    mem.place(at, t.build());
    return parse_multiboot(kMultiboot2BootMagic, at, mem, info);
}

MultibootError v2_error(V2Table& t) {
    FakePhysical mem;
    BootInfo info{};
    auto result = parse_v2(mem, t, info);
    REQUIRE_FALSE(result.ok());
    return result.error();
}

MultibootError v2_error_raw(const std::vector<u8>& bytes, paddr at = kInfoAddress) {
    FakePhysical mem;
    mem.place(at, bytes);
    BootInfo info{};
    auto result = parse_multiboot(kMultiboot2BootMagic, at, mem, info);
    REQUIRE_FALSE(result.ok());
    return result.error();
}

void check_typical_map(const BootInfo& info) {
    REQUIRE(info.memory_count == kTypicalMap.size());
    for (size_t i = 0; i < kTypicalMap.size(); ++i) {
        CHECK(info.memory[i].base == kTypicalMap[i].base);
        CHECK(info.memory[i].length == kTypicalMap[i].length);
    }
    CHECK(info.memory[0].kind == MemoryKind::usable);
    CHECK(info.memory[1].kind == MemoryKind::reserved);
    CHECK(info.memory[3].kind == MemoryKind::usable);
    CHECK(info.memory[4].kind == MemoryKind::acpi_reclaimable);
}

}  // namespace

// ---------------- v1 ----------------

TEST_CASE("multiboot.v1_memory_map") {
    FakePhysical mem;
    BootInfo info{};
    auto result = parse_v1(mem, place_v1(mem), info);
    REQUIRE(result.ok());
    CHECK(info.protocol == 1);
    check_typical_map(info);
    CHECK(std::string(info.cmdline) == "console=com1");
    REQUIRE(info.module_count == 2);
    CHECK(info.modules[0].start == 0x200000);
    CHECK(info.modules[0].end == 0x203000);
    CHECK(std::string(info.modules[0].cmdline) == "initrd one");
    CHECK(std::string(info.modules[1].cmdline) == "second");
    CHECK(info.info_start == kInfoAddress);
    CHECK(info.info_end == kInfoAddress + kMultiboot1InfoSize);
    CHECK(result->memory_ranges_dropped == 0);
    CHECK(result->strings_truncated == 0);
    CHECK_FALSE(result->memory_from_basic_info);
}

TEST_CASE("multiboot.v1_memory_types") {
    FakePhysical mem;
    V1Table t = place_v1(mem);
    Bytes map = v1_mmap({{0x100000, 0x1000, 1},
                         {0x200000, 0x1000, 2},
                         {0x300000, 0x1000, 3},
                         {0x400000, 0x1000, 4},
                         {0x500000, 0x1000, 5},
                         {0x600000, 0x1000, 99}});
    FakePhysical mem2;
    mem2.place(kMmapAddress, map.bytes());
    t.flags = 1u << 6;
    t.mmap_length = static_cast<nestor::u32>(map.size());
    BootInfo info{};
    REQUIRE(parse_v1(mem2, t, info).ok());
    REQUIRE(info.memory_count == 6);
    CHECK(info.memory[0].kind == MemoryKind::usable);
    CHECK(info.memory[1].kind == MemoryKind::reserved);
    CHECK(info.memory[2].kind == MemoryKind::acpi_reclaimable);
    CHECK(info.memory[3].kind == MemoryKind::acpi_nvs);
    CHECK(info.memory[4].kind == MemoryKind::bad);
    CHECK(info.memory[5].kind == MemoryKind::reserved);
}

TEST_CASE("multiboot.v1_larger_entry_size") {
    FakePhysical mem;
    Bytes map = v1_mmap({{0x100000, 0x100000, 1}, {0x200000, 0x1000, 2}}, 28);
    mem.place(kMmapAddress, map.bytes());
    V1Table t;
    t.flags = 1u << 6;
    t.mmap_addr = kMmapAddress;
    t.mmap_length = static_cast<nestor::u32>(map.size());
    BootInfo info{};
    REQUIRE(parse_v1(mem, t, info).ok());
    REQUIRE(info.memory_count == 2);
    CHECK(info.memory[1].base == 0x200000);
    CHECK(info.memory[1].kind == MemoryKind::reserved);
}

TEST_CASE("multiboot.v1_basic_memory_fallback") {
    FakePhysical mem;
    V1Table t;
    t.flags = 1u << 0;
    t.mem_lower = 639;
    t.mem_upper = 130048;
    BootInfo info{};
    auto result = parse_v1(mem, t, info);
    REQUIRE(result.ok());
    CHECK(result->memory_from_basic_info);
    REQUIRE(info.memory_count == 2);
    CHECK(info.memory[0].base == 0);
    CHECK(info.memory[0].length == 639 * 1024);
    CHECK(info.memory[1].base == 0x100000);
    CHECK(info.memory[1].length == 130048ull * 1024);
    CHECK(info.memory[1].kind == MemoryKind::usable);
    CHECK(info.module_count == 0);
    CHECK(info.cmdline[0] == '\0');
}

TEST_CASE("multiboot.v1_map_preferred_over_basic_memory") {
    FakePhysical mem;
    BootInfo info{};
    auto result = parse_v1(mem, place_v1(mem), info);
    REQUIRE(result.ok());
    CHECK_FALSE(result->memory_from_basic_info);
    CHECK(info.memory_count == kTypicalMap.size());
}

TEST_CASE("multiboot.v1_zero_length_entries_skipped") {
    FakePhysical mem;
    Bytes map = v1_mmap({{0x100000, 0, 1}, {0x100000, 0x1000, 1}, {0x5000, 0, 2}});
    mem.place(kMmapAddress, map.bytes());
    V1Table t;
    t.flags = 1u << 6;
    t.mmap_addr = kMmapAddress;
    t.mmap_length = static_cast<nestor::u32>(map.size());
    BootInfo info{};
    REQUIRE(parse_v1(mem, t, info).ok());
    CHECK(info.memory_count == 1);
}

TEST_CASE("multiboot.v1_null_module_string_is_empty") {
    FakePhysical mem;
    V1Table t = place_v1(mem);
    Bytes mods;
    mods.u32(0x200000).u32(0x200000).u32(0).u32(0);
    FakePhysical mem2;
    mem2.place(kModulesAddress, mods.bytes());
    t.flags = (1u << 0) | (1u << 3);
    t.mods_count = 1;
    BootInfo info{};
    REQUIRE(parse_v1(mem2, t, info).ok());
    REQUIRE(info.module_count == 1);
    CHECK(info.modules[0].cmdline[0] == '\0');
    CHECK(info.modules[0].start == info.modules[0].end);
}

TEST_CASE("multiboot.v1_string_truncated") {
    FakePhysical mem;
    V1Table t = place_v1(mem);
    std::string long_line(300, 'x');
    FakePhysical mem2;
    mem2.place(kMmapAddress, v1_mmap(kTypicalMap).bytes());
    mem2.place(0x20000, long_line.c_str(), long_line.size() + 1);
    t.flags = (1u << 2) | (1u << 6);
    t.cmdline = 0x20000;
    BootInfo info{};
    auto result = parse_v1(mem2, t, info);
    REQUIRE(result.ok());
    CHECK(result->strings_truncated == 1);
    CHECK(std::strlen(info.cmdline) == BootInfo::kMaxCmdline - 1);
    CHECK(info.cmdline[BootInfo::kMaxCmdline - 1] == '\0');
}

TEST_CASE("multiboot.v1_string_exactly_fits") {
    FakePhysical mem;
    V1Table t = place_v1(mem);
    std::string line(BootInfo::kMaxCmdline - 1, 'y');
    FakePhysical mem2;
    mem2.place(kMmapAddress, v1_mmap(kTypicalMap).bytes());
    mem2.place(0x20000, line.c_str(), line.size() + 1);
    t.flags = (1u << 2) | (1u << 6);
    t.cmdline = 0x20000;
    BootInfo info{};
    auto result = parse_v1(mem2, t, info);
    REQUIRE(result.ok());
    CHECK(result->strings_truncated == 0);
    CHECK(std::string(info.cmdline) == line);
}

TEST_CASE("multiboot.bad_magic_refused") {
    FakePhysical mem;
    V1Table t = place_v1(mem);
    mem.place(kInfoAddress, t.bytes().bytes());
    BootInfo info{};
    auto result = parse_multiboot(0x1BADB002, kInfoAddress, mem, info);
    REQUIRE_FALSE(result.ok());
    CHECK(result.error() == MultibootError::bad_magic);
}

TEST_CASE("multiboot.null_info_pointer_refused") {
    FakePhysical mem;
    BootInfo info{};
    auto v1 = parse_multiboot(kMultiboot1BootMagic, 0, mem, info);
    REQUIRE_FALSE(v1.ok());
    CHECK(v1.error() == MultibootError::info_pointer_null);
    auto v2 = parse_multiboot(kMultiboot2BootMagic, 0, mem, info);
    REQUIRE_FALSE(v2.ok());
    CHECK(v2.error() == MultibootError::info_pointer_null);
}

TEST_CASE("multiboot.v1_info_unreadable_refused") {
    FakePhysical mem;
    BootInfo info{};
    auto result = parse_multiboot(kMultiboot1BootMagic, 0x7000, mem, info);
    REQUIRE_FALSE(result.ok());
    CHECK(result.error() == MultibootError::info_unreadable);
    // A struct cut short (only 40 bytes readable) is unreadable too.
    FakePhysical mem2;
    mem2.place(0x7000, std::vector<u8>(40, 0));
    auto cut = parse_multiboot(kMultiboot1BootMagic, 0x7000, mem2, info);
    REQUIRE_FALSE(cut.ok());
    CHECK(cut.error() == MultibootError::info_unreadable);
}

TEST_CASE("multiboot.v1_mmap_unreadable_refused") {
    FakePhysical mem;
    V1Table t;
    t.flags = 1u << 6;
    t.mmap_addr = 0x50000;  // nothing there
    t.mmap_length = 48;
    CHECK(v1_error(mem, t) == MultibootError::info_unreadable);
}

TEST_CASE("multiboot.v1_mmap_entry_too_small_refused") {
    FakePhysical mem;
    Bytes map = v1_mmap({{0x100000, 0x1000, 1}});
    map.patch_u32(0, 16);
    mem.place(kMmapAddress, map.bytes());
    V1Table t;
    t.flags = 1u << 6;
    t.mmap_addr = kMmapAddress;
    t.mmap_length = static_cast<nestor::u32>(map.size());
    CHECK(v1_error(mem, t) == MultibootError::v1_mmap_entry_too_small);
}

TEST_CASE("multiboot.v1_mmap_entry_past_end_refused") {
    FakePhysical mem;
    Bytes map = v1_mmap({{0x100000, 0x1000, 1}, {0x200000, 0x1000, 1}});
    mem.place(kMmapAddress, map.bytes());
    V1Table t;
    t.flags = 1u << 6;
    t.mmap_addr = kMmapAddress;
    t.mmap_length = 24 + 10;  // the second entry is cut
    CHECK(v1_error(mem, t) == MultibootError::mmap_entry_past_end);
    t.mmap_length = 24 + 2;  // not even its size field fits
    CHECK(v1_error(mem, t) == MultibootError::mmap_entry_past_end);
}

TEST_CASE("multiboot.v1_range_overflow_refused") {
    FakePhysical mem;
    Bytes map = v1_mmap({{0xFFFFFFFFFFFFF000ull, 0x2000, 2}});
    mem.place(kMmapAddress, map.bytes());
    V1Table t;
    t.flags = 1u << 6;
    t.mmap_addr = kMmapAddress;
    t.mmap_length = static_cast<nestor::u32>(map.size());
    CHECK(v1_error(mem, t) == MultibootError::range_overflow);
}

TEST_CASE("multiboot.v1_module_end_before_start_refused") {
    FakePhysical mem;
    Bytes mods;
    mods.u32(0x300000).u32(0x200000).u32(0).u32(0);
    mem.place(kModulesAddress, mods.bytes());
    V1Table t;
    t.flags = (1u << 0) | (1u << 3);
    t.mods_count = 1;
    t.mods_addr = kModulesAddress;
    CHECK(v1_error(mem, t) == MultibootError::module_end_before_start);
}

TEST_CASE("multiboot.v1_too_many_modules_refused") {
    FakePhysical mem;
    Bytes mods;
    for (int i = 0; i < 17; ++i) mods.u32(0x200000).u32(0x201000).u32(0).u32(0);
    mem.place(kModulesAddress, mods.bytes());
    V1Table t;
    t.flags = (1u << 0) | (1u << 3);
    t.mods_count = 17;
    t.mods_addr = kModulesAddress;
    CHECK(v1_error(mem, t) == MultibootError::too_many_modules);
    t.mods_count = 16;  // exactly the capacity is fine
    t.mem_upper = 1024;
    BootInfo info{};
    REQUIRE(parse_v1(mem, t, info).ok());
    CHECK(info.module_count == 16);
}

TEST_CASE("multiboot.v1_module_list_unreadable_refused") {
    FakePhysical mem;
    V1Table t;
    t.flags = (1u << 0) | (1u << 3);
    t.mods_count = 2;
    t.mods_addr = 0x60000;
    CHECK(v1_error(mem, t) == MultibootError::info_unreadable);
}

TEST_CASE("multiboot.v1_string_unreadable_refused") {
    FakePhysical mem;
    V1Table t;
    t.flags = (1u << 0) | (1u << 2);
    t.cmdline = 0x70000;  // nothing readable there
    CHECK(v1_error(mem, t) == MultibootError::string_unreadable);
    // A string that runs into unreadable memory before its NUL.
    mem.place(0x70000, "abc", 3);
    CHECK(v1_error(mem, t) == MultibootError::string_unreadable);
}

TEST_CASE("multiboot.v1_string_unterminated_refused") {
    FakePhysical mem;
    mem.place(0x80000, std::vector<u8>(kMaxV1StringScan + 16, 'a'));
    V1Table t;
    t.flags = (1u << 0) | (1u << 2);
    t.cmdline = 0x80000;
    CHECK(v1_error(mem, t) == MultibootError::string_unterminated);
}

TEST_CASE("multiboot.v1_no_memory_information_refused") {
    FakePhysical mem;
    V1Table t;
    t.flags = 1u << 2;
    mem.place(kStringsAddress, "x", 2);
    t.cmdline = kStringsAddress;
    CHECK(v1_error(mem, t) == MultibootError::no_memory_map);
}

// ---------------- memory map capacity policy ----------------

namespace {
// A v1 table whose map holds `entries`.
Result<MultibootNotes, MultibootError> parse_v1_map(const std::vector<MmapEntry>& entries, BootInfo& info) {
    FakePhysical mem;
    Bytes map = v1_mmap(entries);
    mem.place(kMmapAddress, map.bytes());
    V1Table t;
    t.flags = 1u << 6;
    t.mmap_addr = kMmapAddress;
    t.mmap_length = static_cast<nestor::u32>(map.size());
    mem.place(kInfoAddress, t.bytes().bytes());
    return parse_multiboot(kMultiboot1BootMagic, kInfoAddress, mem, info);
}

// `count` disjoint, non-adjacent ranges of one type.
std::vector<MmapEntry> spaced(size_t count, nestor::u32 type, u64 first = 0x1000000) {
    std::vector<MmapEntry> out;
    out.reserve(count);
    for (size_t i = 0; i < count; ++i) out.push_back({first + i * 0x20000, 0x10000, type});
    return out;
}
}  // namespace

TEST_CASE("multiboot.too_many_usable_ranges_dropped") {
    auto entries = spaced(BootInfo::kMaxMemoryRanges, 2);
    entries.push_back({0x90000000, 0x1000, 1});
    BootInfo info{};
    auto result = parse_v1_map(entries, info);
    REQUIRE(result.ok());
    CHECK(result->memory_ranges_dropped == 1);
    CHECK(info.memory_count == BootInfo::kMaxMemoryRanges);
    for (size_t i = 0; i < info.memory_count; ++i) CHECK(info.memory[i].kind == MemoryKind::reserved);
}

TEST_CASE("multiboot.full_map_reserved_replaces_usable") {
    auto entries = spaced(BootInfo::kMaxMemoryRanges, 1);
    entries.push_back({0x90000000, 0x1000, 2});
    BootInfo info{};
    auto result = parse_v1_map(entries, info);
    REQUIRE(result.ok());
    CHECK(result->memory_ranges_dropped == 1);
    size_t reserved = 0;
    for (size_t i = 0; i < info.memory_count; ++i) {
        if (info.memory[i].kind == MemoryKind::reserved) {
            ++reserved;
            CHECK(info.memory[i].base == 0x90000000);
        }
    }
    CHECK(reserved == 1);
}

TEST_CASE("multiboot.full_map_merges_adjacent") {
    auto entries = spaced(BootInfo::kMaxMemoryRanges, 2);
    // Adjacent to the last reserved range and of the same kind: merged, nothing lost.
    const MmapEntry& last = entries.back();
    entries.push_back({last.base + last.length, 0x1000, 2});
    BootInfo info{};
    auto result = parse_v1_map(entries, info);
    REQUIRE(result.ok());
    CHECK(result->memory_ranges_dropped == 0);
    CHECK(info.memory[BootInfo::kMaxMemoryRanges - 1].length == 0x11000);
}

TEST_CASE("multiboot.too_many_reserved_ranges_refused") {
    auto entries = spaced(BootInfo::kMaxMemoryRanges + 1, 2);
    BootInfo info{};
    auto result = parse_v1_map(entries, info);
    REQUIRE_FALSE(result.ok());
    CHECK(result.error() == MultibootError::too_many_memory_ranges);
}

// ---------------- v2 ----------------

TEST_CASE("multiboot.v2_full_table") {
    FakePhysical mem;
    V2Table t;
    t.cmdline("root=/dev/vda quiet")
        .basic_memory(639, 1000)
        .module(0x400000, 0x410000, "guest kernel")
        .tag(21, Bytes().u32(7))  // an unknown tag is skipped
        .module(0x500000, 0x500001, "")
        .mmap(kTypicalMap)
        .end();
    BootInfo info{};
    auto result = parse_v2(mem, t, info);
    REQUIRE(result.ok());
    CHECK(info.protocol == 2);
    check_typical_map(info);
    CHECK_FALSE(result->memory_from_basic_info);
    CHECK(std::string(info.cmdline) == "root=/dev/vda quiet");
    REQUIRE(info.module_count == 2);
    CHECK(info.modules[0].start == 0x400000);
    CHECK(info.modules[0].end == 0x410000);
    CHECK(std::string(info.modules[0].cmdline) == "guest kernel");
    CHECK(std::string(info.modules[1].cmdline).empty());
    CHECK(info.info_start == kInfoAddress);
    CHECK(info.info_end == kInfoAddress + t.raw().size());
}

TEST_CASE("multiboot.v2_larger_mmap_entry_size") {
    FakePhysical mem;
    V2Table t;
    t.mmap({{0x100000, 0x200000, 1}, {0x300000, 0x1000, 4}}, 32).end();
    BootInfo info{};
    REQUIRE(parse_v2(mem, t, info).ok());
    REQUIRE(info.memory_count == 2);
    CHECK(info.memory[1].base == 0x300000);
    CHECK(info.memory[1].kind == MemoryKind::acpi_nvs);
}

TEST_CASE("multiboot.v2_basic_memory_fallback") {
    FakePhysical mem;
    V2Table t;
    t.basic_memory(600, 2048).end();
    BootInfo info{};
    auto result = parse_v2(mem, t, info);
    REQUIRE(result.ok());
    CHECK(result->memory_from_basic_info);
    REQUIRE(info.memory_count == 2);
    CHECK(info.memory[0].length == 600 * 1024);
    CHECK(info.memory[1].base == 0x100000);
    CHECK(info.memory[1].length == 2048 * 1024);
}

TEST_CASE("multiboot.v2_string_truncated") {
    FakePhysical mem;
    std::string name(200, 'm');
    V2Table t;
    t.module(0x400000, 0x401000, name.c_str()).basic_memory(1, 1).end();
    BootInfo info{};
    auto result = parse_v2(mem, t, info);
    REQUIRE(result.ok());
    CHECK(result->strings_truncated == 1);
    CHECK(std::string(info.modules[0].cmdline) == name.substr(0, sizeof(BootModule::cmdline) - 1));
}

TEST_CASE("multiboot.v2_info_misaligned_refused") {
    V2Table t;
    t.basic_memory(1, 1).end();
    CHECK(v2_error_raw(t.build(), kInfoAddress + 4) == MultibootError::v2_info_misaligned);
}

TEST_CASE("multiboot.v2_info_unreadable_refused") {
    FakePhysical mem;
    BootInfo info{};
    auto result = parse_multiboot(kMultiboot2BootMagic, 0x9000, mem, info);
    REQUIRE_FALSE(result.ok());
    CHECK(result.error() == MultibootError::info_unreadable);
    // total_size claims more than the loader actually left readable.
    V2Table t;
    t.basic_memory(1, 1).end();
    auto bytes = t.build();
    std::vector<u8> cut(bytes.begin(), bytes.begin() + 16);
    std::memcpy(cut.data(), &bytes[0], 4);
    CHECK(v2_error_raw(cut) == MultibootError::info_unreadable);
}

TEST_CASE("multiboot.v2_total_size_too_small_refused") {
    CHECK(v2_error_raw(Bytes().u32(8).u32(0).bytes()) == MultibootError::v2_total_size_too_small);
    CHECK(v2_error_raw(Bytes().u32(0).u32(0).bytes()) == MultibootError::v2_total_size_too_small);
}

TEST_CASE("multiboot.v2_total_size_too_large_refused") {
    CHECK(v2_error_raw(Bytes().u32(kMultiboot2MaxInfoSize + 8).u32(0).u32(0).u32(8).bytes()) ==
          MultibootError::v2_total_size_too_large);
}

TEST_CASE("multiboot.v2_total_size_misaligned_refused") {
    CHECK(v2_error_raw(Bytes().u32(20).u32(0).u32(0).u32(8).u32(0).bytes()) ==
          MultibootError::v2_total_size_misaligned);
}

TEST_CASE("multiboot.v2_tag_past_end_refused") {
    V2Table t;
    t.mmap(kTypicalMap).end();
    auto bytes = t.build();
    nestor::u32 bigger = 16 + 24 * 6 + 64;  // the mmap tag claims 64 more bytes than exist
    std::memcpy(&bytes[12], &bigger, 4);
    CHECK(v2_error_raw(bytes) == MultibootError::v2_tag_past_end);
}

TEST_CASE("multiboot.v2_tag_too_small_refused") {
    V2Table t;
    t.basic_memory(1, 1).end();
    auto bytes = t.build();
    nestor::u32 tiny = 4;
    std::memcpy(&bytes[12], &tiny, 4);
    CHECK(v2_error_raw(bytes) == MultibootError::v2_tag_too_small);
}

TEST_CASE("multiboot.v2_tag_truncated_refused") {
    V2Table module;
    module.tag(3, Bytes().u32(0x400000)).basic_memory(1, 1).end();  // no end address
    CHECK(v2_error(module) == MultibootError::v2_tag_truncated);
    V2Table basic;
    basic.tag(4, Bytes().u32(640)).end();
    CHECK(v2_error(basic) == MultibootError::v2_tag_truncated);
    V2Table mmap;
    mmap.tag(6, Bytes().u32(24)).end();
    CHECK(v2_error(mmap) == MultibootError::v2_tag_truncated);
}

TEST_CASE("multiboot.v2_missing_end_tag_refused") {
    V2Table t;
    t.basic_memory(1, 1);
    CHECK(v2_error(t) == MultibootError::v2_missing_end_tag);
}

TEST_CASE("multiboot.v2_mmap_entry_size_invalid_refused") {
    V2Table small;
    small.tag(6, Bytes().u32(16).u32(0).u64(0x100000).u64(0x1000)).end();
    CHECK(v2_error(small) == MultibootError::v2_mmap_entry_size_invalid);
    V2Table odd;
    odd.tag(6, Bytes().u32(28).u32(0).zeros(28)).end();
    CHECK(v2_error(odd) == MultibootError::v2_mmap_entry_size_invalid);
}

TEST_CASE("multiboot.v2_mmap_entry_past_end_refused") {
    V2Table t;
    t.tag(6, Bytes().u32(24).u32(0).u64(0x100000).u64(0x1000).u32(1).u32(0).zeros(8)).end();
    CHECK(v2_error(t) == MultibootError::mmap_entry_past_end);
}

TEST_CASE("multiboot.v2_range_overflow_refused") {
    V2Table t;
    t.mmap({{0x100000, 0x1000, 1}, {0x8000000000000000ull, 0x8000000000000000ull, 1}}).end();
    CHECK(v2_error(t) == MultibootError::range_overflow);
}

TEST_CASE("multiboot.v2_module_end_before_start_refused") {
    V2Table t;
    t.module(0x500000, 0x4FFFFF, "m").basic_memory(1, 1).end();
    CHECK(v2_error(t) == MultibootError::module_end_before_start);
}

TEST_CASE("multiboot.v2_too_many_modules_refused") {
    V2Table t;
    for (size_t i = 0; i <= BootInfo::kMaxModules; ++i) t.module(0x400000, 0x401000, "m");
    t.basic_memory(1, 1).end();
    CHECK(v2_error(t) == MultibootError::too_many_modules);
}

TEST_CASE("multiboot.v2_string_unterminated_refused") {
    V2Table t;
    t.tag(1, Bytes().raw("abcdefgh", 8)).basic_memory(1, 1).end();
    CHECK(v2_error(t) == MultibootError::string_unterminated);
    V2Table empty;  // a command-line tag with no bytes at all has no NUL either
    empty.tag(1, Bytes()).basic_memory(1, 1).end();
    CHECK(v2_error(empty) == MultibootError::string_unterminated);
}

TEST_CASE("multiboot.v2_no_memory_map_refused") {
    V2Table t;
    t.cmdline("x").end();
    CHECK(v2_error(t) == MultibootError::no_memory_map);
}

TEST_CASE("multiboot.v2_reads_nothing_past_the_end_tag") {
    // Garbage after the end tag (but inside total_size) is ignored.
    V2Table t;
    t.basic_memory(1, 1).end().tag(6, Bytes().u32(3));
    FakePhysical mem;
    BootInfo info{};
    REQUIRE(parse_v2(mem, t, info).ok());
}

// ---------------- common ----------------

TEST_CASE("multiboot.error_clears_boot_info") {
    V2Table t;
    t.cmdline("hello").mmap(kTypicalMap).module(2, 1, "bad").end();
    FakePhysical mem;
    BootInfo info{};
    std::memset(&info, 0x5A, sizeof(info));
    REQUIRE_FALSE(parse_v2(mem, t, info).ok());
    const auto* bytes = reinterpret_cast<const u8*>(&info);
    CHECK(std::all_of(bytes, bytes + sizeof(info), [](u8 b) { return b == 0; }));
}

TEST_CASE("multiboot.error_names_distinct") {
    std::set<std::string> names;
    const int count = static_cast<int>(MultibootError::no_memory_map) + 1;
    for (int i = 0; i < count; ++i) {
        const char* name = multiboot_error_name(static_cast<MultibootError>(i));
        REQUIRE(name != nullptr);
        CHECK(std::strlen(name) > 0);
        names.insert(name);
    }
    CHECK(names.size() == static_cast<size_t>(count));
}

TEST_CASE("multiboot.windowed_reader") {
    // The kernel's reader: physical memory seen through a linear window (here: a host buffer).
    alignas(8) static u8 window[0x2000];
    V2Table t;
    t.cmdline("direct map").mmap(kTypicalMap).end();
    auto bytes = t.build();
    std::memcpy(window + 0x1000, bytes.data(), bytes.size());
    WindowedPhysicalMemory reader(reinterpret_cast<u64>(window), sizeof(window));
    BootInfo info{};
    auto result = parse_multiboot(kMultiboot2BootMagic, 0x1000, reader, info);
    REQUIRE(result.ok());
    CHECK(std::string(info.cmdline) == "direct map");
    check_typical_map(info);
    // Outside the window: refused, not read.
    auto outside = parse_multiboot(kMultiboot2BootMagic, 0x2000, reader, info);
    REQUIRE_FALSE(outside.ok());
    CHECK(outside.error() == MultibootError::info_unreadable);
    u8 byte = 0;
    CHECK_FALSE(reader.read(0x1FFF, &byte, 2));
    CHECK_FALSE(reader.read(~u64{0}, &byte, 2));
    CHECK(reader.read(0x1FFF, &byte, 1));
}
