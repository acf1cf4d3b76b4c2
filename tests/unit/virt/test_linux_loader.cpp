// The Linux bzImage loader against synthetic setup headers and a fake guest RAM.
#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <vector>

#include "nestor/virt/linux_loader.hpp"

using namespace nestor;
using namespace nestor::virt;

namespace {

constexpr u64 kMiB = 1 << 20;
constexpr u64 kBp = kLinuxBootParamsGpa;

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
    u64 at(u64 gpa, usize width) const {
        u64 v = 0;
        std::memcpy(&v, bytes.data() + gpa, width);
        return v;
    }
    std::string string_at(u64 gpa) const { return reinterpret_cast<const char*>(bytes.data() + gpa); }
    std::vector<u8> bytes;
    u64 high = 0;  // RAM from 4 GiB, only in the memory maps (nothing is loaded there)
};

template <typename T> void put(std::vector<u8>& f, usize at, T v) { std::memcpy(f.data() + at, &v, sizeof(T)); }

// What a synthetic bzImage says in its setup header.
struct Header {
    u16 version = 0x020F;
    u8 setup_sects = 1;
    u8 header_length = 0x6A;  // past 0x202: a 2.15 header ends at 0x26C
    u16 xloadflags = 0x3;     // XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G
    u32 initrd_addr_max = 0x7FFFFFFF;
    u32 kernel_alignment = 0x200000;
    u8 relocatable = 1;
    u32 cmdline_size = 2047;
    u64 pref_address = 0x1000000;
    u32 init_size = 0x400000;
    usize kernel_bytes = 0x1000;
};

// The real-mode setup sectors, then a protected-mode kernel whose byte i is (i * 7) & 0xFF.
std::vector<u8> bzimage(const Header& h) {
    usize setup = (usize{h.setup_sects} + 1) * 512;
    std::vector<u8> f(setup + h.kernel_bytes, 0);
    put<u16>(f, 0x1FE, 0xAA55);
    f[0x1F1] = h.setup_sects;
    f[0x200] = 0xEB;
    f[0x201] = h.header_length;
    put<u32>(f, 0x202, 0x53726448);
    put<u16>(f, 0x206, h.version);
    f[0x211] = 0x01;  // LOADED_HIGH
    put<u32>(f, 0x22C, h.initrd_addr_max);
    put<u32>(f, 0x230, h.kernel_alignment);
    f[0x234] = h.relocatable;
    put<u16>(f, 0x236, h.xloadflags);
    put<u32>(f, 0x238, h.cmdline_size);
    put<u64>(f, 0x258, h.pref_address);
    put<u32>(f, 0x260, h.init_size);
    for (usize i = 0; i < h.kernel_bytes; ++i) f[setup + i] = static_cast<u8>(i * 7);
    return f;
}

Result<LoadedGuest, LoadError> load(const std::vector<u8>& image, FakeRam& ram, const char* cmdline = "console=ttyS0",
                                    const std::vector<GuestModule>& initrd = {}) {
    return load_linux_guest(image.data(), image.size(), cmdline, initrd.data(), initrd.size(), ram);
}

LoadError refusal(const std::vector<u8>& image, u64 ram_size = 64 * kMiB, const std::vector<GuestModule>& initrd = {}) {
    FakeRam ram(ram_size);
    auto loaded = load(image, ram, "", initrd);
    REQUIRE_FALSE(loaded);
    return loaded.error();
}

}  // namespace

TEST_CASE("linux_loader.tells_a_bzimage_by_its_setup_header") {
    std::vector<u8> image = bzimage({});
    CHECK(is_bzimage(image.data(), image.size()));
    CHECK_FALSE(is_bzimage(image.data(), 0x207));  // cut inside the version
    std::vector<u8> no_magic = image;
    no_magic[0x202] = 'h';
    CHECK_FALSE(is_bzimage(no_magic.data(), no_magic.size()));
    std::vector<u8> no_boot_flag = image;
    no_boot_flag[0x1FE] = 0;
    CHECK_FALSE(is_bzimage(no_boot_flag.data(), no_boot_flag.size()));
    const u8 elf[0x300] = {0x7F, 'E', 'L', 'F', 2, 1, 1};
    CHECK_FALSE(is_bzimage(elf, sizeof(elf)));
}

TEST_CASE("linux_loader.loads_the_kernel_at_pref_address_and_enters_at_its_64_bit_entry") {
    std::vector<u8> image = bzimage({});
    FakeRam ram(64 * kMiB);
    auto loaded = load(image, ram);
    REQUIRE(loaded);
    CHECK(loaded->mode == CpuMode::long64);
    CHECK(loaded->protocol == BootProtocol::linux_bzimage);
    CHECK(loaded->entry == 0x1000200);
    CHECK(loaded->info_gpa == kLinuxBootParamsGpa);
    CHECK(loaded->cr3 == kLongModeTablesGpa);
    CHECK(loaded->image_end == 0x1000000 + 0x400000);  // init_size, larger than the file
    CHECK(std::memcmp(ram.bytes.data() + 0x1000000, image.data() + 1024, 0x1000) == 0);
    CHECK(ram.at(kLongModeTablesGpa, 8) == (kLongModeTablesGpa + 0x1000 + 0x3));  // PML4[0] -> PDPT
}

TEST_CASE("linux_loader.boot_params_hold_the_setup_header_and_the_loader_fields") {
    std::vector<u8> image = bzimage({});
    FakeRam ram(64 * kMiB);
    REQUIRE(load(image, ram));
    CHECK(ram.at(kBp + 0x202, 4) == 0x53726448);  // the header, copied
    CHECK(ram.at(kBp + 0x206, 2) == 0x020F);
    CHECK(ram.at(kBp + 0x258, 8) == 0x1000000);
    CHECK(ram.at(kBp + 0x210, 1) == 0xFF);              // type_of_loader
    CHECK(ram.at(kBp + 0x214, 4) == 0x1000000);         // code32_start
    CHECK(ram.at(kBp + 0x228, 4) == kLinuxCmdlineGpa);  // cmd_line_ptr
    CHECK(ram.string_at(kLinuxCmdlineGpa) == "console=ttyS0");
    CHECK(ram.at(kBp + 0x218, 4) == 0);  // no initrd
    CHECK(ram.at(kBp + 0x21C, 4) == 0);
    CHECK(ram.at(kBp + 0x1EF, 1) == 0);  // sentinel: nothing to sanitise
    CHECK(ram.at(kBp + 0x000, 8) == 0);  // zeroed outside the header
    CHECK(ram.at(kBp + 0x26C, 8) == 0);
    CHECK(ram.at(kBp + 0xFF8, 8) == 0);
}

TEST_CASE("linux_loader.e820_maps_ram_and_reserves_the_bios_area") {
    FakeRam ram(64 * kMiB);
    REQUIRE(load(bzimage({}), ram));
    REQUIRE(ram.at(kBp + 0x1E8, 1) == 3);
    const u64 expected[3][3] = {{0, 0x9F000, 1}, {0x9F000, 0x61000, 2}, {0x100000, 63 * kMiB, 1}};
    for (u64 i = 0; i < 3; ++i) {
        u64 entry = kBp + 0x2D0 + 20 * i;
        CHECK(ram.at(entry, 8) == expected[i][0]);
        CHECK(ram.at(entry + 8, 8) == expected[i][1]);
        CHECK(ram.at(entry + 16, 4) == expected[i][2]);
    }
    CHECK(ram.at(kBp + 0x2D0 + 60, 8) == 0);  // nothing after the third entry
}

// A PC's RAM above its hole (from 4 GiB) is a fourth RAM entry; the initrd still goes at the top
// of the RAM below the hole.
TEST_CASE("linux_loader.e820_maps_ram_above_4_gib") {
    std::vector<u8> initrd(10000, 0x5C);
    FakeRam ram(64 * kMiB);
    ram.high = 1024 * kMiB;
    REQUIRE(load(bzimage({}), ram, "", {{initrd.data(), initrd.size(), nullptr}}));
    REQUIRE(ram.at(kBp + 0x1E8, 1) == 4);
    const u64 expected[4][3] = {
        {0, 0x9F000, 1}, {0x9F000, 0x61000, 2}, {0x100000, 63 * kMiB, 1}, {kHighRamBase, 1024 * kMiB, 1}};
    for (u64 i = 0; i < 4; ++i) {
        u64 entry = kBp + 0x2D0 + 20 * i;
        CHECK(ram.at(entry, 8) == expected[i][0]);
        CHECK(ram.at(entry + 8, 8) == expected[i][1]);
        CHECK(ram.at(entry + 16, 4) == expected[i][2]);
    }
    CHECK(ram.at(kBp + 0x2D0 + 80, 8) == 0);  // nothing after the fourth entry
    CHECK(ram.at(kBp + 0x218, 4) == ((64 * kMiB - 10000) & ~u64{0xFFF}));
}

TEST_CASE("linux_loader.initrd_goes_high_page_aligned_below_initrd_addr_max") {
    std::vector<u8> initrd(10000, 0x5C);
    FakeRam ram(64 * kMiB);
    auto loaded = load(bzimage({}), ram, "", {{initrd.data(), initrd.size(), nullptr}});
    REQUIRE(loaded);
    u64 at = (64 * kMiB - 10000) & ~u64{0xFFF};
    CHECK(ram.at(kBp + 0x218, 4) == at);
    CHECK(ram.at(kBp + 0x21C, 4) == 10000);
    CHECK(std::memcmp(ram.bytes.data() + at, initrd.data(), initrd.size()) == 0);
    CHECK(loaded->image_end == at + 10000);

    Header capped;
    capped.initrd_addr_max = 48 * kMiB - 1;
    FakeRam ram2(64 * kMiB);
    REQUIRE(load(bzimage(capped), ram2, "", {{initrd.data(), initrd.size(), nullptr}}));
    CHECK(ram2.at(kBp + 0x218, 4) == ((48 * kMiB - 10000) & ~u64{0xFFF}));
}

TEST_CASE("linux_loader.initrd_parts_follow_each_other_padded_to_four_bytes") {
    const u8 first[5] = {1, 2, 3, 4, 5};
    const u8 second[8] = {6, 6, 6, 6, 6, 6, 6, 6};
    FakeRam ram(64 * kMiB);
    REQUIRE(load(bzimage({}), ram, "", {{first, 5, nullptr}, {second, 8, nullptr}}));
    u64 at = ram.at(kBp + 0x218, 4);
    CHECK(ram.at(kBp + 0x21C, 4) == 16);
    const u8 expected[16] = {1, 2, 3, 4, 5, 0, 0, 0, 6, 6, 6, 6, 6, 6, 6, 6};
    CHECK(std::memcmp(ram.bytes.data() + at, expected, 16) == 0);
}

TEST_CASE("linux_loader.command_line_is_cut_at_the_kernel_s_cmdline_size") {
    Header small;
    small.cmdline_size = 8;
    FakeRam ram(64 * kMiB);
    REQUIRE(load(bzimage(small), ram, "console=ttyS0 quiet"));
    CHECK(ram.string_at(kLinuxCmdlineGpa) == "console=");
    FakeRam ram2(64 * kMiB);
    REQUIRE(load(bzimage({}), ram2, nullptr));
    CHECK(ram2.string_at(kLinuxCmdlineGpa).empty());
}

TEST_CASE("linux_loader.command_line_gets_the_tsc_rate_unless_it_has_one") {
    std::vector<u8> image = bzimage({});
    auto with_rate = [&](const char* cmdline) {
        FakeRam ram(64 * kMiB);
        REQUIRE(load_linux_guest(image.data(), image.size(), cmdline, nullptr, 0, ram, 2120469));
        return ram.string_at(kLinuxCmdlineGpa);
    };
    CHECK(with_rate("console=ttyS0") == "console=ttyS0 tsc_early_khz=2120469");
    CHECK(with_rate("") == "tsc_early_khz=2120469");
    CHECK(with_rate(nullptr) == "tsc_early_khz=2120469");
    CHECK(with_rate("console=ttyS0 tsc_early_khz=1000") == "console=ttyS0 tsc_early_khz=1000");
    FakeRam ram(64 * kMiB);
    REQUIRE(load(image, ram, "console=ttyS0"));  // no rate known: the line as given
    CHECK(ram.string_at(kLinuxCmdlineGpa) == "console=ttyS0");
    Header small;
    small.cmdline_size = 20;  // no room for the whole rate: none (a cut number would be wrong)
    std::vector<u8> short_line = bzimage(small);
    FakeRam cut(64 * kMiB);
    REQUIRE(load_linux_guest(short_line.data(), short_line.size(), "console=ttyS0", nullptr, 0, cut, 2120469));
    CHECK(cut.string_at(kLinuxCmdlineGpa) == "console=ttyS0");
}

TEST_CASE("linux_loader.relocatable_kernel_preferring_low_memory_goes_above_the_loader_area") {
    Header low;
    low.pref_address = 0x10000;
    FakeRam ram(64 * kMiB);
    auto loaded = load(bzimage(low), ram);
    REQUIRE(loaded);
    CHECK(loaded->entry == 0x200000 + 0x200);  // 1 MiB aligned up to kernel_alignment
    low.relocatable = 0;
    CHECK(refusal(bzimage(low)) == LoadError::linux_does_not_fit);
}

TEST_CASE("linux_loader.refuses_what_is_not_a_usable_bzimage_by_name") {
    CHECK(refusal(std::vector<u8>(0x1000, 0)) == LoadError::not_bzimage);
    Header old;
    old.version = 0x020B;
    CHECK(refusal(bzimage(old)) == LoadError::linux_protocol_too_old);
    Header no64;
    no64.xloadflags = 0x2;
    CHECK(refusal(bzimage(no64)) == LoadError::linux_no_64bit_entry);
    Header long_header;
    long_header.header_length = 0x90;  // past boot_params' room for it
    CHECK(refusal(bzimage(long_header)) == LoadError::not_bzimage);
    Header short_header;
    short_header.header_length = 0x20;  // ends before init_size
    CHECK(refusal(bzimage(short_header)) == LoadError::not_bzimage);
    Header no_kernel;
    no_kernel.kernel_bytes = 0x200;  // no byte at the 64-bit entry
    CHECK(refusal(bzimage(no_kernel)) == LoadError::not_bzimage);
    std::vector<u8> cut = bzimage({});
    cut.resize(0x250);  // the header of a 2.12 kernel runs past the file
    CHECK(refusal(cut) == LoadError::not_bzimage);
    std::vector<GuestModule> too_many(kMaxGuestModules + 1, GuestModule{nullptr, 0, nullptr});
    CHECK(refusal(bzimage({}), 64 * kMiB, too_many) == LoadError::too_many_modules);
}

TEST_CASE("linux_loader.refuses_a_kernel_and_initrd_that_do_not_fit") {
    CHECK(refusal(bzimage({}), 16 * kMiB) == LoadError::linux_does_not_fit);  // pref_address is the end of RAM
    Header big;
    big.init_size = 0x3001000;  // 48 MiB and a page from 16 MiB
    CHECK(refusal(bzimage(big), 64 * kMiB) == LoadError::linux_does_not_fit);
    std::vector<u8> initrd(44 * kMiB + 1, 0);  // 64 MiB - (16 + 4) MiB leaves 44 MiB
    CHECK(refusal(bzimage({}), 64 * kMiB, {{initrd.data(), initrd.size(), nullptr}}) == LoadError::linux_does_not_fit);
    Header capped;
    capped.initrd_addr_max = 0x1100000;  // below the kernel's init_size
    const u8 part[16] = {};
    CHECK(refusal(bzimage(capped), 64 * kMiB, {{part, sizeof(part), nullptr}}) == LoadError::linux_does_not_fit);
    std::vector<u8> fits(44 * kMiB, 0);
    FakeRam ram(64 * kMiB);
    CHECK(load(bzimage({}), ram, "", {{fits.data(), fits.size(), nullptr}}));
}

TEST_CASE("linux_loader.refusals_have_names") {
    CHECK(std::string(load_error_name(LoadError::not_bzimage)).find("bzImage") != std::string::npos);
    CHECK(std::string(load_error_name(LoadError::linux_protocol_too_old)).find("2.12") != std::string::npos);
    CHECK(std::string(load_error_name(LoadError::linux_no_64bit_entry)).find("64-bit") != std::string::npos);
    CHECK(std::string(load_error_name(LoadError::linux_does_not_fit)).find("initrd") != std::string::npos);
    CHECK(std::string(boot_protocol_name(BootProtocol::linux_bzimage)) == "Linux bzImage");
}
