// The multiboot guest loader against crafted ELF images and a fake guest RAM.
#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <vector>

#include "nestor/virt/guest_loader.hpp"

using namespace nestor;
using namespace nestor::virt;

namespace {

class FakeRam final : public GuestRam {
public:
    explicit FakeRam(u64 size) : bytes(size, 0xAA) {}
    u64 size() const override { return bytes.size(); }
    u64 high_size() const override { return high; }
    bool write(u64 gpa, const void* data, usize length) override {
        if (gpa > bytes.size() || length > bytes.size() - gpa) return false;
        if (length) std::memcpy(bytes.data() + gpa, data, length);
        return true;
    }
    bool fill(u64 gpa, u8 value, usize length) override {
        if (gpa > bytes.size() || length > bytes.size() - gpa) return false;
        std::memset(bytes.data() + gpa, value, length);
        return true;
    }
    u32 u32_at(u64 gpa) const {
        u32 v;
        std::memcpy(&v, bytes.data() + gpa, 4);
        return v;
    }
    u64 u64_at(u64 gpa) const {
        u64 v;
        std::memcpy(&v, bytes.data() + gpa, 8);
        return v;
    }
    std::string string_at(u64 gpa) const { return reinterpret_cast<const char*>(bytes.data() + gpa); }
    std::vector<u8> bytes;
    u64 high = 0;  // RAM from 4 GiB, only in the memory maps (nothing is loaded there)
};

template <typename T> void put(std::vector<u8>& f, usize at, T v) {
    if (f.size() < at + sizeof(T)) f.resize(at + sizeof(T));
    std::memcpy(f.data() + at, &v, sizeof(T));
}

// An ELF64 with one PT_LOAD segment of `code` at physical `load` (memory size `memsz`), a
// multiboot header at file offset 0x80, and entry `entry`.
std::vector<u8> elf64(u64 load, u64 entry, std::vector<u8> code, u64 memsz, u32 mb_flags = 3) {
    std::vector<u8> f(0x1000 + code.size(), 0);
    const u8 ident[] = {0x7F, 'E', 'L', 'F', 2, 1, 1};
    std::memcpy(f.data(), ident, sizeof(ident));
    put<u16>(f, 16, 2);   // ET_EXEC
    put<u16>(f, 18, 62);  // EM_X86_64
    put<u64>(f, 24, entry);
    put<u64>(f, 32, 64);  // phoff
    put<u16>(f, 54, 56);
    put<u16>(f, 56, 1);
    put<u32>(f, 64, 1);  // PT_LOAD
    put<u64>(f, 64 + 8, 0x1000);
    put<u64>(f, 64 + 16, load);
    put<u64>(f, 64 + 24, load);
    put<u64>(f, 64 + 32, code.size());
    put<u64>(f, 64 + 40, memsz);
    put<u32>(f, 0x80, 0x1BADB002);
    put<u32>(f, 0x84, mb_flags);
    put<u32>(f, 0x88, static_cast<u32>(-(0x1BADB002 + mb_flags)));
    std::memcpy(f.data() + 0x1000, code.data(), code.size());
    return f;
}

// An ELF32 x86 executable with one segment and no multiboot header: only multiboot can start
// a 32-bit kernel, so it is refused.
std::vector<u8> elf32_without_multiboot() {
    std::vector<u8> f(0x1000 + 16, 0);
    const u8 ident[] = {0x7F, 'E', 'L', 'F', 1, 1, 1};
    std::memcpy(f.data(), ident, sizeof(ident));
    put<u16>(f, 16, 2);  // ET_EXEC
    put<u16>(f, 18, 3);  // EM_386
    put<u32>(f, 24, 0x100000);
    put<u32>(f, 28, 52);  // phoff
    put<u16>(f, 42, 32);
    put<u16>(f, 44, 1);
    put<u32>(f, 52, 1);  // PT_LOAD
    put<u32>(f, 52 + 4, 0x1000);
    put<u32>(f, 52 + 8, 0x100000);
    put<u32>(f, 52 + 12, 0x100000);
    put<u32>(f, 52 + 16, 16);
    put<u32>(f, 52 + 20, 16);
    return f;
}

Result<LoadedGuest, LoadError> load(const std::vector<u8>& image, FakeRam& ram, const char* cmdline = "",
                                    const GuestModule* mods = nullptr, usize count = 0) {
    return load_multiboot_guest(image.data(), image.size(), cmdline, mods, count, ram);
}

LoadError refusal(const std::vector<u8>& image, u64 ram_size = 4u << 20) {
    FakeRam ram(ram_size);
    auto r = load(image, ram);
    REQUIRE_FALSE(r);
    return r.error();
}

}  // namespace

TEST_CASE("loader.loads_segment_zeroes_bss_and_reports_entry") {
    FakeRam ram(4u << 20);
    auto r = load(elf64(0x100000, 0x100010, {1, 2, 3, 4}, 0x2000), ram, "verbose x=1");
    REQUIRE(r);
    CHECK(r->entry == 0x100010);
    CHECK(r->info_gpa == kMultibootInfoGpa);
    CHECK(r->protocol == BootProtocol::multiboot);
    CHECK(r->image_end == 0x102000);
    CHECK(ram.bytes[0x100000] == 1);
    CHECK(ram.bytes[0x100003] == 4);
    CHECK(ram.bytes[0x100004] == 0);  // bss is zero, not the RAM's previous 0xAA
    CHECK(ram.bytes[0x101FFF] == 0);
    CHECK(ram.bytes[0x102000] == 0xAA);
}

TEST_CASE("loader.information_block_follows_multiboot_v1") {
    FakeRam ram(8u << 20);
    REQUIRE(load(elf64(0x100000, 0x100000, {0xF4}, 1), ram, "verbose x=1"));
    const u64 info = kMultibootInfoGpa;
    CHECK(ram.u32_at(info) == (1u | 4u | 8u | 64u));
    CHECK(ram.u32_at(info + 4) == 636);                // mem_lower KiB
    CHECK(ram.u32_at(info + 8) == (7u << 20) / 1024);  // mem_upper KiB above 1 MiB
    CHECK(ram.string_at(ram.u32_at(info + 16)) == "verbose x=1");
    CHECK(ram.u32_at(info + 20) == 0);
    u32 map_length = ram.u32_at(info + 44);
    u32 map = ram.u32_at(info + 48);
    REQUIRE(map_length == 72);
    CHECK(ram.u32_at(map) == 20);
    CHECK(ram.u64_at(map + 4) == 0);
    CHECK(ram.u32_at(map + 20) == 1);
    CHECK(ram.u64_at(map + 24 + 4) == 0x9F000);
    CHECK(ram.u32_at(map + 24 + 20) == 2);  // reserved: the loader's area and the BIOS hole
    CHECK(ram.u64_at(map + 48 + 4) == 0x100000);
    CHECK(ram.u64_at(map + 48 + 12) == (7u << 20));
    CHECK(ram.u32_at(map + 48 + 20) == 1);
}

// A PC's RAM stops at 3 GiB, below its hole (the I/O APIC, the local APIC), and goes on at 4 GiB;
// a bare domain's is one range from 0.
TEST_CASE("loader.pc_ram_is_split_at_3_gib") {
    constexpr u64 kGiB = u64{1} << 30;
    auto same = [](RamLayout a, RamLayout b) { return a.below_4g == b.below_4g && a.above_4g == b.above_4g; };
    CHECK(kPcLowRamEnd == 3 * kGiB);
    CHECK(same(ram_layout(4 * kGiB, true), {3 * kGiB, kGiB}));
    CHECK(same(ram_layout(3 * kGiB, true), {3 * kGiB, 0}));
    CHECK(same(ram_layout(3 * kGiB + 4096, true), {3 * kGiB, 4096}));
    CHECK(same(ram_layout(16u << 20, true), {16u << 20, 0}));
    CHECK(same(ram_layout(4 * kGiB, false), {4 * kGiB, 0}));
}

// The RAM above 4 GiB is a fourth entry of the multiboot memory map; mem_upper counts only the
// RAM from 1 MiB up to the first hole, as multiboot says.
TEST_CASE("loader.memory_map_shows_ram_above_4_gib") {
    FakeRam ram(8u << 20);
    ram.high = 1u << 30;
    REQUIRE(load(elf64(0x100000, 0x100000, {0xF4}, 1), ram));
    const u64 info = kMultibootInfoGpa;
    CHECK(ram.u32_at(info + 8) == (7u << 20) / 1024);
    REQUIRE(ram.u32_at(info + 44) == 96);
    u32 map = ram.u32_at(info + 48);
    CHECK(ram.u64_at(map + 48 + 12) == (7u << 20));
    CHECK(ram.u32_at(map + 72) == 20);
    CHECK(ram.u64_at(map + 72 + 4) == kHighRamBase);
    CHECK(ram.u64_at(map + 72 + 12) == (1u << 30));
    CHECK(ram.u32_at(map + 72 + 20) == 1);
}

TEST_CASE("loader.modules_follow_the_image_page_aligned") {
    FakeRam ram(4u << 20);
    const u8 a[] = {9, 9, 9};
    const u8 b[] = {7};
    const GuestModule mods[] = {{a, sizeof(a), "first arg"}, {b, sizeof(b), "second"}};
    auto r = load(elf64(0x100000, 0x100000, {0xF4}, 0x1800), ram, "", mods, 2);
    REQUIRE(r);
    const u64 info = kMultibootInfoGpa;
    CHECK(ram.u32_at(info + 20) == 2);
    u32 list = ram.u32_at(info + 24);
    CHECK(ram.u32_at(list) == 0x102000);
    CHECK(ram.u32_at(list + 4) == 0x102003);
    CHECK(ram.string_at(ram.u32_at(list + 8)) == "first arg");
    CHECK(ram.u32_at(list + 16) == 0x103000);
    CHECK(ram.string_at(ram.u32_at(list + 24)) == "second");
    CHECK(ram.bytes[0x102001] == 9);
    CHECK(r->image_end == 0x103001);
}

TEST_CASE("loader.long_command_line_is_cut_and_terminated") {
    FakeRam ram(4u << 20);
    std::string cmdline(2000, 'x');
    REQUIRE(load(elf64(0x100000, 0x100000, {0xF4}, 1), ram, cmdline.c_str()));
    CHECK(ram.string_at(ram.u32_at(kMultibootInfoGpa + 16)).size() == 0x1FF);
}

TEST_CASE("loader.refuses_malformed_images") {
    CHECK(refusal({1, 2, 3}) == LoadError::not_elf);
    auto not_x86 = elf64(0x100000, 0x100000, {0xF4}, 1);
    put<u16>(not_x86, 18, 183);  // EM_AARCH64
    CHECK(refusal(not_x86) == LoadError::unsupported_elf);
    CHECK(refusal(elf32_without_multiboot()) == LoadError::no_multiboot_header);
    auto bad_sum = elf64(0x100000, 0x100000, {0xF4}, 1);
    put<u32>(bad_sum, 0x88, 0);
    CHECK(refusal(bad_sum) == LoadError::bad_multiboot_checksum);
    CHECK(refusal(elf64(0x100000, 0x100000, {0xF4}, 1, 3 | (1u << 16))) == LoadError::unsupported_multiboot_flags);
    auto past_file = elf64(0x100000, 0x100000, {0xF4}, 1);
    put<u64>(past_file, 64 + 32, 0x100000);  // filesz far past the file
    put<u64>(past_file, 64 + 40, 0x100000);
    CHECK(refusal(past_file) == LoadError::segment_outside_file);
    auto phdrs_past_file = elf64(0x100000, 0x100000, {0xF4}, 1);
    put<u16>(phdrs_past_file, 56, 1000);
    CHECK(refusal(phdrs_past_file) == LoadError::not_elf);
}

TEST_CASE("loader.keeps_segments_inside_guest_ram_above_the_loader_area") {
    CHECK(refusal(elf64(0x8000, 0x8000, {0xF4}, 1)) == LoadError::segment_outside_ram);  // over the info block
    CHECK(refusal(elf64(0x3FF000, 0x3FF000, {0xF4}, 0x2000)) == LoadError::segment_outside_ram);
    CHECK(refusal(elf64(0xFFFFFFFFFFFFF000ull, 0x100000, {0xF4}, 0x2000)) == LoadError::segment_outside_ram);
    CHECK(refusal(elf64(0x100000, 0x100000, {0xF4}, 1), kLoaderAreaEnd) == LoadError::segment_outside_ram);
}

TEST_CASE("loader.entry_must_be_inside_a_loaded_segment") {
    CHECK(refusal(elf64(0x100000, 0x200000, {0xF4}, 1)) == LoadError::entry_outside_image);
    auto no_load = elf64(0x100000, 0x100000, {0xF4}, 1);
    put<u32>(no_load, 64, 4);  // PT_NOTE
    CHECK(refusal(no_load) == LoadError::no_loadable_segment);
}

TEST_CASE("loader.modules_that_do_not_fit_are_refused") {
    FakeRam ram(2u << 20);
    std::vector<u8> big(1u << 20, 1);
    const GuestModule mods[] = {{big.data(), big.size(), "big"}};
    auto r = load(elf64(0x100000, 0x100000, {0xF4}, 0x1000), ram, "", mods, 1);
    REQUIRE_FALSE(r);
    CHECK(r.error() == LoadError::modules_do_not_fit);
    GuestModule many[kMaxGuestModules + 1] = {};
    auto r2 = load(elf64(0x100000, 0x100000, {0xF4}, 1), ram, "", many, kMaxGuestModules + 1);
    REQUIRE_FALSE(r2);
    CHECK(r2.error() == LoadError::too_many_modules);
}

TEST_CASE("loader.plain_elf64_starts_in_long_mode_on_identity_tables") {
    FakeRam ram(8u << 20);
    auto image = elf64(0x200000, 0x200004, {0x90, 0x90, 0x90, 0x90, 0xF4}, 0x1000);
    put<u32>(image, 0x80, 0);  // no multiboot header: a plain ELF64 kernel
    auto r = load(image, ram, "plain");
    REQUIRE(r);
    CHECK(r->mode == CpuMode::long64);
    CHECK(r->entry == 0x200004);
    CHECK(r->cr3 == kLongModeTablesGpa);
    CHECK(r->stack_top == kLongModeStackTop);
    CHECK(r->info_gpa == kMultibootInfoGpa);  // RDI: the same information block
    CHECK(r->protocol == BootProtocol::elf64);
    CHECK(ram.string_at(ram.u32_at(kMultibootInfoGpa + 16)) == "plain");
    // PML4[0] -> PDPT; PDPT[0..3] -> four PDs; PD entries are 2 MiB identity pages.
    u64 pdpt = ram.u64_at(kLongModeTablesGpa) & ~u64{0xFFF};
    CHECK((ram.u64_at(kLongModeTablesGpa) & 3) == 3);
    u64 pd3 = ram.u64_at(pdpt + 3 * 8) & ~u64{0xFFF};
    CHECK(ram.u64_at(pd3 + 511 * 8) == (((u64{4} << 30) - (2u << 20)) | 0x83));
    u64 pd0 = ram.u64_at(pdpt) & ~u64{0xFFF};
    CHECK(ram.u64_at(pd0 + 1 * 8) == ((2u << 20) | 0x83));
    CHECK(ram.bytes[0x200004] == 0xF4);
}

TEST_CASE("loader.plain_elf64_entry_may_be_above_4_gib_but_must_be_loaded") {
    auto image = elf64(0x100000, 0x300000, {0xF4}, 1);
    put<u32>(image, 0x80, 0);
    CHECK(refusal(image) == LoadError::entry_outside_image);
}
