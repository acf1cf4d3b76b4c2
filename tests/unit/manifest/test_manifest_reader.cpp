// The kernel-side reader of the binary manifest: each refusal at least once (a table that must
// cover the whole error enum), truncation, misalignment, and random corruption that must never
// crash it nor slip past the checksum.
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstring>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "manifest_text.hpp"
#include "nestor/manifest_reader.hpp"

using nestor::manifest::manifest_checksum;
using nestor::manifest::manifest_error_name;
using nestor::manifest::ManifestError;
using nestor::manifest::ManifestFault;
using nestor::manifest::read_manifest;
using Image = std::vector<std::uint8_t>;

namespace {

// Three domains using every part of a record: d0 signals d1 and d2, d1 has modules.
Image base_image() {
    std::string text =
        "version = 1\n"
        "[[domain]]\nname = \"d0\"\nimage = \"img0\"\nmemory = \"16M\"\nvcpus = 2\ncmdline = \"c0\"\n"
        "ioports = [\"0x3f8-0x3ff\", 0x60]\nsignals = [\"d1\", \"d2\"]\n"
        "[[domain]]\nname = \"d1\"\nimage = \"img1\"\nmemory = \"1M\"\n"
        "modules = [{ image = \"m0\", cmdline = \"mc\" }, { image = \"m1\" }]\n"
        "[[domain]]\nname = \"d2\"\nimage = \"img2\"\nmemory = \"4G\"\nflags = [\"nested_virt\"]\n";
    auto outcome = nestor::manifest_text::parse_manifest(text, "base", {true});
    REQUIRE(outcome.errors.empty());
    return nestor::manifest_text::pack_manifest(outcome.manifest);
}

void reseal(Image& image) {
    std::uint32_t checksum = manifest_checksum(image.data(), image.size());
    std::memcpy(image.data() + offsetof(nestor_manifest_header, checksum), &checksum, sizeof(checksum));
}

template <typename T> void put(Image& image, std::size_t offset, T value) {
    std::memcpy(image.data() + offset, &value, sizeof(T));
}

std::size_t record(std::size_t index, std::size_t field) {
    return sizeof(nestor_manifest_header) + index * sizeof(nestor_manifest_domain) + field;
}

#define HEADER(field) offsetof(nestor_manifest_header, field)
#define DOMAIN(index, field) record(index, offsetof(nestor_manifest_domain, field))

ManifestFault fault_of(const Image& image) {
    auto read = read_manifest(image.data(), image.size());
    REQUIRE_FALSE(read.ok());
    return read.error();
}

struct Corruption {
    ManifestError expected;
    std::uint32_t domain;  // ManifestFault::kNoDomain for header errors
    std::function<void(Image&)> mutate;
    bool reseal = true;  // recompute the checksum, so the refusal comes from the field itself
};

constexpr std::uint32_t kHeader = ManifestFault::kNoDomain;

// Appends a component record (name, size) after the records and counts it in the header.
void add_component(Image& image, const char* name, std::uint64_t size) {
    nestor_manifest_component record;
    std::memset(&record, 0, sizeof(record));
    std::memcpy(record.name, name, std::strlen(name));
    record.size = size;
    record.sha256[0] = 0xab;
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(&record);
    image.insert(image.end(), bytes, bytes + sizeof(record));
    std::uint16_t count = 0;
    std::memcpy(&count, image.data() + HEADER(component_count), 2);
    put<std::uint16_t>(image, HEADER(component_count), static_cast<std::uint16_t>(count + 1));
    put<std::uint32_t>(image, HEADER(total_size), static_cast<std::uint32_t>(image.size()));
}

std::vector<Corruption> corruptions() {
    return {
        {ManifestError::too_small, kHeader, [](Image& i) { i.resize(sizeof(nestor_manifest_header) - 1); }, false},
        {ManifestError::bad_magic, kHeader, [](Image& i) { put<std::uint32_t>(i, HEADER(magic), 0x12345678); }},
        {ManifestError::unsupported_version, kHeader,
         [](Image& i) { put<std::uint16_t>(i, HEADER(format_version), 2); }},
        {ManifestError::bad_header_size, kHeader, [](Image& i) { put<std::uint16_t>(i, HEADER(header_size), 64); }},
        {ManifestError::size_mismatch, kHeader, [](Image& i) { i.push_back(0); }},
        {ManifestError::bad_checksum, kHeader, [](Image& i) { i[DOMAIN(1, cmdline)] = 'x'; }, false},
        {ManifestError::header_reserved_not_zero, kHeader,
         [](Image& i) { put<std::uint16_t>(i, HEADER(reserved), 1); }},
        {ManifestError::too_many_components, kHeader,
         [](Image& i) {
             for (int n = 0; n < 5; ++n) add_component(i, "nested", 1);
         }},
        {ManifestError::unknown_component, kHeader, [](Image& i) { add_component(i, "turbo", 1); }},
        {ManifestError::string_padding_not_zero, kHeader,
         [](Image& i) {
             add_component(i, "nested", 1);
             i[i.size() - 72 + 20] = 'x';  // after the name's NUL
         }},
        {ManifestError::duplicate_component, kHeader,
         [](Image& i) {
             add_component(i, "nested", 1);
             add_component(i, "nested", 1);
         }},
        {ManifestError::component_empty, kHeader, [](Image& i) { add_component(i, "nested", 0); }},
        {ManifestError::no_domains, kHeader, [](Image& i) { put<std::uint32_t>(i, HEADER(domain_count), 0); }},
        {ManifestError::too_many_domains, kHeader, [](Image& i) { put<std::uint32_t>(i, HEADER(domain_count), 17); }},
        {ManifestError::bad_record_size, kHeader,
         [](Image& i) { put<std::uint32_t>(i, HEADER(domain_record_size), 1024); }},
        {ManifestError::domain_table_out_of_bounds, kHeader,
         [](Image& i) { put<std::uint32_t>(i, HEADER(domain_offset), 40); }},
        {ManifestError::trailing_bytes, kHeader,
         [](Image& i) {
             i.resize(i.size() + 8);
             put<std::uint32_t>(i, HEADER(total_size), static_cast<std::uint32_t>(i.size()));
         }},
        {ManifestError::name_unterminated, 1, [](Image& i) { std::memset(&i[DOMAIN(1, name)], 'a', 32); }},
        {ManifestError::name_invalid, 1, [](Image& i) { i[DOMAIN(1, name)] = 'D'; }},
        {ManifestError::duplicate_name, 2, [](Image& i) { i[DOMAIN(2, name) + 1] = '0'; }},
        {ManifestError::image_unterminated, 0, [](Image& i) { std::memset(&i[DOMAIN(0, image)], 'a', 32); }},
        {ManifestError::image_invalid, 0, [](Image& i) { std::memset(&i[DOMAIN(0, image)], 0, 32); }},
        {ManifestError::cmdline_unterminated, 0, [](Image& i) { std::memset(&i[DOMAIN(0, cmdline)], 'a', 256); }},
        {ManifestError::cmdline_invalid, 0, [](Image& i) { i[DOMAIN(0, cmdline)] = '\n'; }},
        {ManifestError::string_padding_not_zero, 0, [](Image& i) { i[DOMAIN(0, name) + 20] = 'z'; }},
        {ManifestError::memory_unaligned, 0,
         [](Image& i) { put<std::uint64_t>(i, DOMAIN(0, memory_bytes), 0x100100 + 1); }},
        {ManifestError::memory_too_small, 0, [](Image& i) { put<std::uint64_t>(i, DOMAIN(0, memory_bytes), 0); }},
        {ManifestError::memory_too_large, 2,
         [](Image& i) { put<std::uint64_t>(i, DOMAIN(2, memory_bytes), (4ull << 30) + 4096); }},
        {ManifestError::vcpus_out_of_range, 0, [](Image& i) { put<std::uint32_t>(i, DOMAIN(0, vcpus), 65); }},
        {ManifestError::unknown_flags, 2, [](Image& i) { put<std::uint32_t>(i, DOMAIN(2, flags), 3); }},
        {ManifestError::unknown_cpuid_policy, 1,
         [](Image& i) { put<std::uint32_t>(i, DOMAIN(1, cpuid_policy), NESTOR_CPUID_POLICY_COUNT); }},
        {ManifestError::unknown_platform, 1,
         [](Image& i) { put<std::uint16_t>(i, DOMAIN(1, platform), NESTOR_MANIFEST_PLATFORM_COUNT); }},
        {ManifestError::unknown_console, 1,
         [](Image& i) { put<std::uint16_t>(i, DOMAIN(1, console), NESTOR_MANIFEST_CONSOLE_COUNT); }},
        {ManifestError::console_input_without_pc, 2,
         [](Image& i) { put<std::uint16_t>(i, DOMAIN(2, console), NESTOR_MANIFEST_CONSOLE_INPUT); }},
        {ManifestError::console_input_twice, 2,
         [](Image& i) {
             for (std::uint32_t d : {0u, 2u}) {
                 put<std::uint16_t>(i, DOMAIN(d, platform), NESTOR_MANIFEST_PLATFORM_PC);
                 put<std::uint16_t>(i, DOMAIN(d, console), NESTOR_MANIFEST_CONSOLE_INPUT);
             }
         }},
        {ManifestError::unknown_on_reset, 2,
         [](Image& i) { put<std::uint8_t>(i, DOMAIN(2, on_reset), NESTOR_MANIFEST_ON_RESET_COUNT); }},
        {ManifestError::domain_reserved_not_zero, 1, [](Image& i) { put<std::uint8_t>(i, DOMAIN(1, reserved1), 7); }},
        {ManifestError::too_many_ioport_ranges, 0,
         [](Image& i) { put<std::uint16_t>(i, DOMAIN(0, ioport_range_count), 9); }},
        {ManifestError::ioport_range_inverted, 0,
         [](Image& i) { put<std::uint16_t>(i, DOMAIN(0, ioport_ranges) + 4, 0x61); }},  // second range 0x61-0x60
        {ManifestError::too_many_signals, 0, [](Image& i) { put<std::uint16_t>(i, DOMAIN(0, signal_count), 9); }},
        {ManifestError::signal_out_of_range, 0, [](Image& i) { i[DOMAIN(0, signals) + 1] = 3; }},
        {ManifestError::signal_to_self, 0, [](Image& i) { i[DOMAIN(0, signals)] = 0; }},
        {ManifestError::duplicate_signal, 0, [](Image& i) { i[DOMAIN(0, signals) + 1] = 1; }},
        {ManifestError::too_many_modules, 1, [](Image& i) { put<std::uint16_t>(i, DOMAIN(1, module_count), 5); }},
        {ManifestError::module_image_unterminated, 1,
         [](Image& i) { std::memset(&i[DOMAIN(1, modules) + offsetof(nestor_manifest_module, image)], 'm', 32); }},
        {ManifestError::module_image_invalid, 1,
         [](Image& i) { i[DOMAIN(1, modules) + sizeof(nestor_manifest_module)] = '/'; }},
        {ManifestError::module_cmdline_unterminated, 1,
         [](Image& i) { std::memset(&i[DOMAIN(1, modules) + offsetof(nestor_manifest_module, cmdline)], 'c', 128); }},
        {ManifestError::module_cmdline_invalid, 1,
         [](Image& i) { i[DOMAIN(1, modules) + offsetof(nestor_manifest_module, cmdline)] = 0x7f; }},
        {ManifestError::unused_entry_not_zero, 1, [](Image& i) { i[DOMAIN(1, signals) + 7] = 1; }},
    };
}

// Touches everything an accepted image offers, so ASan sees any read outside it.
std::size_t walk(const nestor::manifest::Manifest& m) {
    std::size_t sum = 0;
    for (std::uint32_t d = 0; d < m.domain_count(); ++d) {
        auto domain = m.domain(d);
        sum += std::strlen(domain.name()) + std::strlen(domain.image()) + std::strlen(domain.cmdline());
        sum += domain.memory_bytes() + domain.vcpus() + domain.flags() + domain.cpuid_policy();
        for (std::uint32_t i = 0; i < domain.ioport_range_count(); ++i) sum += domain.ioport_range(i).last;
        for (std::uint32_t i = 0; i < domain.signal_count(); ++i)
            sum += std::strlen(m.domain(domain.signal_target(i)).name());
        for (std::uint32_t i = 0; i < domain.module_count(); ++i) {
            sum += std::strlen(domain.module(i).image) + std::strlen(domain.module(i).cmdline);
        }
    }
    return sum;
}

}  // namespace

TEST_CASE("manifest_reader.accepts_packed_image") {
    Image image = base_image();
    auto read = read_manifest(image.data(), image.size());
    REQUIRE(read.ok());
    CHECK(read.value().domain_count() == 3);
    CHECK(walk(read.value()) > 0);
}

TEST_CASE("manifest_reader.checksum_is_crc32_with_field_zeroed") {
    // zlib.crc32(b"123456789abc\0\0\0\0gh"): bytes 12..15 are where the checksum field lies,
    // so whatever they hold, the checksum is that of the image with them zero.
    std::uint8_t bytes[18];
    std::memcpy(bytes, "123456789abcdefggh", 18);  // NOLINT(bugprone-not-null-terminated-result): 18 bytes, no NUL
    CHECK(manifest_checksum(bytes, sizeof(bytes)) == 0x6c23273fu);
    std::memset(bytes + 12, 0, 4);
    CHECK(manifest_checksum(bytes, sizeof(bytes)) == 0x6c23273fu);

    Image image = base_image();
    std::uint32_t stored = 0;
    std::memcpy(&stored, image.data() + HEADER(checksum), 4);
    CHECK(stored == manifest_checksum(image.data(), image.size()));
}

TEST_CASE("manifest_reader.component_read_back") {
    Image image = base_image();
    add_component(image, "nested", 12345);
    reseal(image);
    auto read = read_manifest(image.data(), image.size());
    REQUIRE(read.ok());
    REQUIRE(read->component_count() == 1);
    nestor::manifest::ManifestComponent component{};
    REQUIRE(read->find_component("nested", component));
    CHECK(std::string(component.name) == "nested");
    CHECK(component.size == 12345);
    CHECK(component.sha256[0] == 0xab);
    CHECK_FALSE(read->find_component("other", component));
}

TEST_CASE("manifest_reader.each_error_refused") {
    std::set<ManifestError> covered;
    for (const Corruption& c : corruptions()) {
        Image image = base_image();
        c.mutate(image);
        if (c.reseal) reseal(image);
        INFO("expected " << manifest_error_name(c.expected));
        ManifestFault fault = fault_of(image);
        CHECK(std::string(manifest_error_name(fault.error)) == manifest_error_name(c.expected));
        CHECK(fault.domain == c.domain);
        covered.insert(c.expected);
    }
    // Every enumerator has a case above.
    CHECK(covered.size() == nestor::manifest::kManifestErrorCount);
}

TEST_CASE("manifest_reader.error_names_are_distinct") {
    std::set<std::string> names;
    for (std::uint32_t e = 0; e < nestor::manifest::kManifestErrorCount; ++e) {
        names.insert(manifest_error_name(static_cast<ManifestError>(e)));
    }
    CHECK(names.size() == nestor::manifest::kManifestErrorCount);
    CHECK(names.count("unknown_manifest_error") == 0);
}

TEST_CASE("manifest_reader.null_and_every_truncation_refused") {
    CHECK(fault_of(Image{}).error == ManifestError::too_small);
    CHECK_FALSE(read_manifest(nullptr, 0).ok());
    Image image = base_image();
    for (std::size_t size = 0; size < image.size(); ++size) {
        // A fresh allocation of exactly size bytes, so ASan catches any read past the end.
        Image prefix(image.begin(), image.begin() + static_cast<std::ptrdiff_t>(size));
        CHECK_FALSE(read_manifest(prefix.data(), prefix.size()).ok());
    }
}

TEST_CASE("manifest_reader.misaligned_image_is_read") {
    Image image = base_image();
    Image shifted(image.size() + 1);
    std::memcpy(shifted.data() + 1, image.data(), image.size());
    auto read = read_manifest(shifted.data() + 1, image.size());
    REQUIRE(read.ok());
    CHECK(read.value().domain(2).memory_bytes() == (4ull << 30));
    CHECK(read.value().domain(0).ioport_range(0).first == 0x3f8);
}

TEST_CASE("manifest_reader.random_corruption_never_crashes_nor_passes_the_checksum") {
    const Image original = base_image();
    std::mt19937 rng(20240611);
    std::uniform_int_distribution<std::size_t> offset(0, original.size() - 1);
    std::uniform_int_distribution<int> byte(0, 255), flips(1, 4);
    int accepted_unsealed = 0, accepted_resealed = 0;
    for (int round = 0; round < 3000; ++round) {
        Image image = original;
        int n = flips(rng);
        for (int k = 0; k < n; ++k) image[offset(rng)] = static_cast<std::uint8_t>(byte(rng));
        bool changed = image != original;

        // Without a matching checksum, a changed image is never accepted.
        auto read = read_manifest(image.data(), image.size());
        if (read.ok()) {
            ++accepted_unsealed;
            CHECK(walk(read.value()) > 0);
            std::uint32_t stored = 0;
            std::memcpy(&stored, image.data() + HEADER(checksum), 4);
            CHECK(stored == manifest_checksum(image.data(), image.size()));
        }
        if (changed) CHECK_FALSE(read.ok());

        // Resealed, the corruption reaches the field checks: refused or consistent, never a crash.
        reseal(image);
        auto resealed = read_manifest(image.data(), image.size());
        if (resealed.ok()) {
            ++accepted_resealed;
            CHECK(walk(resealed.value()) > 0);
        }
    }
    CHECK(accepted_unsealed < 3000);
    CHECK(accepted_resealed < 3000);
}
