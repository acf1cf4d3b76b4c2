// The manifest text format: every refusal with its exact "file:line: message", the defaults, the
// build-option check, and the round trip text -> binary -> kernel reader.
#include <catch2/catch.hpp>
#include <string>
#include <utility>
#include <vector>

#include "manifest_text.hpp"
#include "nestor/manifest_reader.hpp"

using namespace nestor::manifest_text;
using Errors = std::vector<std::string>;

namespace {

Errors errors_of(const std::string& text, BuildOptions options = {}) {
    ParseOutcome outcome = parse_manifest(text, "t.manifest", options);
    Errors lines;
    for (const Diagnostic& d : outcome.errors) lines.push_back(d.str());
    return lines;
}

// A valid one-domain manifest; extra lines start at line 6.
std::string one_domain(const std::string& extra = "") {
    return "version = 1\n"
           "[[domain]]\n"
           "name = \"a\"\n"
           "image = \"a\"\n"
           "memory = \"1M\"\n" +
           extra;
}

// A second valid domain "b" appended; its header is on the line after the text.
std::string with_domain_b(const std::string& text, const std::string& extra = "") {
    return text + "[[domain]]\nname = \"b\"\nimage = \"b\"\nmemory = \"1M\"\n" + extra;
}

Errors one(const std::string& message) { return Errors{"t.manifest:" + message}; }

ManifestSpec parsed(const std::string& text, BuildOptions options = {}) {
    ParseOutcome outcome = parse_manifest(text, "t.manifest", options);
    REQUIRE(outcome.errors.empty());
    return outcome.manifest;
}

}  // namespace

// --- accepted ---------------------------------------------------------------------------------

TEST_CASE("manifest.minimal_domain_gets_defaults") {
    ManifestSpec m = parsed(one_domain());
    REQUIRE(m.version == 1);
    REQUIRE(m.domains.size() == 1);
    const DomainSpec& d = m.domains[0];
    CHECK(d.name == "a");
    CHECK(d.image == "a");
    CHECK(d.memory_bytes == (1u << 20));
    CHECK(d.vcpus == 1);
    CHECK(d.flags == 0);
    CHECK(d.cpuid_policy == NESTOR_CPUID_POLICY_DEFAULT);
    CHECK(d.platform == NESTOR_MANIFEST_PLATFORM_BARE);
    CHECK(d.cmdline.empty());
    CHECK(d.ioports.empty());
    CHECK(d.signals.empty());
    CHECK(d.modules.empty());
}

TEST_CASE("manifest.sizes_and_numbers") {
    CHECK(parsed(one_domain()).domains[0].memory_bytes == (1u << 20));
    auto memory_of = [](const std::string& value) {
        std::string text = "version = 1\n[[domain]]\nname = \"a\"\nimage = \"a\"\nmemory = " + value + "\n";
        return parsed(text).domains[0].memory_bytes;
    };
    CHECK(memory_of("\"2048K\"") == (2u << 20));
    CHECK(memory_of("\"16m\"") == (16u << 20));
    CHECK(memory_of("\"4G\"") == (4ull << 30));
    CHECK(memory_of("0x100000") == (1u << 20));
    CHECK(memory_of("\"1052672\"") == 1052672);
    CHECK(parsed(one_domain("vcpus = 64\n")).domains[0].vcpus == 64);
}

TEST_CASE("manifest.syntax_allows_comments_blank_lines_and_multiline_arrays") {
    std::string text =
        "# header comment\n"
        "\n"
        "version = 1   # trailing comment\r\n"
        "[[ domain ]]\n"
        "  name = \"a\"\n"
        "image = \"a\"\n"
        "memory = \"1M\"\n"
        "ioports = [\n"
        "  \"0x3f8-0x3ff\",  # COM1\n"
        "  0x60,\n"
        "]\n"
        "cmdline = \"say \\\"hi\\\" \\\\ # not a comment\"\n";
    ManifestSpec m = parsed(text);
    REQUIRE(m.domains[0].ioports.size() == 2);
    CHECK(m.domains[0].ioports[1].first == 0x60);
    CHECK(m.domains[0].ioports[1].last == 0x60);
    CHECK(m.domains[0].cmdline == "say \"hi\" \\ # not a comment");
}

TEST_CASE("manifest.checked_in_appliances_are_valid") {
    // The demo has a nested domain: it needs a NESTED_VIRT=ON build (its preset has it on).
    for (auto [name, nested_virt] : {std::pair{"demo", true}, std::pair{"minimal", false}, std::pair{"linux", false}}) {
        std::string path = std::string(NESTOR_SOURCE_DIR) + "/appliances/" + name + ".manifest";
        ParseOutcome outcome = parse_manifest_file(path, BuildOptions{nested_virt});
        INFO(path);
        CHECK(outcome.errors.empty());
    }
    ParseOutcome demo = parse_manifest_file(std::string(NESTOR_SOURCE_DIR) + "/appliances/demo.manifest", {true});
    REQUIRE(demo.manifest.domains.size() == 3);
    CHECK(demo.manifest.domains[0].name == "hello");
    CHECK(demo.manifest.domains[1].name == "ping");
    CHECK(demo.manifest.domains[1].signals == std::vector<std::string>{"hello"});
    CHECK(demo.manifest.domains[2].name == "nested");
    CHECK(demo.manifest.domains[2].flags == NESTOR_DOMAIN_FLAG_NESTED_VIRT);
    // Packed for a NESTED_VIRT=OFF build it is refused.
    CHECK_FALSE(parse_manifest_file(std::string(NESTOR_SOURCE_DIR) + "/appliances/demo.manifest", {}).errors.empty());
}

TEST_CASE("manifest.unreadable_file") {
    ParseOutcome outcome = parse_manifest_file("/nonexistent/x.manifest", {});
    REQUIRE(outcome.errors.size() == 1);
    CHECK(outcome.errors[0].str() == "/nonexistent/x.manifest:0: cannot read the file");
}

// --- round trip -------------------------------------------------------------------------------

TEST_CASE("manifest.round_trip_text_binary_reader") {
    std::string text =
        "version = 1\n"
        "[[domain]]\n"
        "name = \"l1\"\n"
        "image = \"l1.elf\"\n"
        "memory = \"64M\"\n"
        "vcpus = 4\n"
        "flags = [\"nested_virt\"]\n"
        "cpuid = \"host\"\n"
        "platform = \"pc\"\n"
        "on_reset = \"restart\"\n"
        "cmdline = \"verbose console=com1\"\n"
        "ioports = [\"0x3f8-0x3ff\", \"0x2f8\", 0x60]\n"
        "signals = [\"b\", \"c\"]\n"
        "modules = [{ image = \"data\", cmdline = \"x\" }, { image = \"initrd\" }]\n"
        "[[domain]]\nname = \"b\"\nimage = \"b\"\nmemory = 1048576\ncpuid = \"minimal\"\nsignals = [\"l1\"]\n"
        "[[domain]]\nname = \"c\"\nimage = \"c\"\nmemory = \"1G\"\n";
    ManifestSpec spec = parsed(text, BuildOptions{true});
    std::vector<std::uint8_t> image = pack_manifest(spec);
    REQUIRE(image.size() == sizeof(nestor_manifest_header) + 3 * sizeof(nestor_manifest_domain));

    auto read = nestor::manifest::read_manifest(image.data(), image.size());
    REQUIRE(read.ok());
    const nestor::manifest::Manifest& m = read.value();
    REQUIRE(m.domain_count() == 3);
    nestor::manifest::ManifestDomain l1 = m.domain(0);
    CHECK(std::string(l1.name()) == "l1");
    CHECK(std::string(l1.image()) == "l1.elf");
    CHECK(l1.memory_bytes() == (64u << 20));
    CHECK(l1.vcpus() == 4);
    CHECK(l1.flags() == NESTOR_DOMAIN_FLAG_NESTED_VIRT);
    CHECK(l1.cpuid_policy() == NESTOR_CPUID_POLICY_HOST);
    CHECK(l1.platform() == NESTOR_MANIFEST_PLATFORM_PC);
    CHECK(l1.on_reset() == NESTOR_MANIFEST_ON_RESET_RESTART);
    CHECK(std::string(l1.cmdline()) == "verbose console=com1");
    REQUIRE(l1.ioport_range_count() == 3);
    CHECK(l1.ioport_range(0).first == 0x3f8);
    CHECK(l1.ioport_range(0).last == 0x3ff);
    CHECK(l1.ioport_range(1).first == 0x2f8);
    CHECK(l1.ioport_range(1).last == 0x2f8);
    CHECK(l1.ioport_range(2).first == 0x60);
    REQUIRE(l1.signal_count() == 2);
    CHECK(l1.signal_target(0) == 1);
    CHECK(l1.signal_target(1) == 2);
    REQUIRE(l1.module_count() == 2);
    CHECK(std::string(l1.module(0).image) == "data");
    CHECK(std::string(l1.module(0).cmdline) == "x");
    CHECK(std::string(l1.module(1).image) == "initrd");
    CHECK(std::string(l1.module(1).cmdline).empty());

    nestor::manifest::ManifestDomain b = m.domain(1);
    CHECK(b.cpuid_policy() == NESTOR_CPUID_POLICY_MINIMAL);
    CHECK(b.platform() == NESTOR_MANIFEST_PLATFORM_BARE);
    CHECK(b.on_reset() == NESTOR_MANIFEST_ON_RESET_STOP);
    CHECK(b.memory_bytes() == (1u << 20));
    REQUIRE(b.signal_count() == 1);
    CHECK(b.signal_target(0) == 0);
    CHECK(m.domain(2).memory_bytes() == (1u << 30));
    CHECK(m.domain(2).module_count() == 0);

    std::uint32_t index = 99;
    CHECK(m.find_domain("c", index));
    CHECK(index == 2);
    CHECK_FALSE(m.find_domain("d", index));

    // Packing is deterministic: the same text gives the same bytes.
    CHECK(pack_manifest(parsed(text, BuildOptions{true})) == image);
}

TEST_CASE("manifest.dump_describes_what_the_kernel_reads") {
    std::vector<std::uint8_t> image = pack_manifest(parsed(with_domain_b(one_domain("signals = [\"b\"]\n"))));
    std::string text;
    REQUIRE(dump_manifest(image.data(), image.size(), text));
    CHECK(text.find("2 domains") != std::string::npos);
    CHECK(text.find("domain 0 \"a\"") != std::string::npos);
    CHECK(text.find("signals  1 \"b\"") != std::string::npos);
    CHECK(text.find("memory   1M (1048576 bytes)") != std::string::npos);
    CHECK(text.find("platform bare") != std::string::npos);
    CHECK(text.find("on_reset stop") != std::string::npos);

    image[100] ^= 1;
    REQUIRE_FALSE(dump_manifest(image.data(), image.size(), text));
    CHECK(text == "refused: bad_checksum");
}

// --- build options ----------------------------------------------------------------------------

TEST_CASE("manifest.nested_virt_refused_when_build_has_it_off") {
    std::string text = one_domain("flags = [\"nested_virt\"]\n");
    CHECK(errors_of(text, BuildOptions{false}) ==
          one("6: domain \"a\" asks for nested_virt, but this build has NESTED_VIRT=OFF"));
    CHECK(errors_of(text, BuildOptions{true}).empty());
}

TEST_CASE("manifest.nested_virt_line_is_the_flag_even_before_the_name") {
    std::string text =
        "version = 1\n[[domain]]\nflags = [\"nested_virt\"]\nname = \"l1\"\nimage = \"l1\"\nmemory = \"1M\"\n";
    CHECK(errors_of(text) == one("3: domain \"l1\" asks for nested_virt, but this build has NESTED_VIRT=OFF"));
}

TEST_CASE("manifest.nested_virt_conflicts_with_minimal_cpuid") {
    CHECK(errors_of(one_domain("flags = [\"nested_virt\"]\ncpuid = \"minimal\"\n"), BuildOptions{true}) ==
          one("6: domain \"a\" asks for nested_virt, which the \"minimal\" CPUID policy hides"));
}

// --- top level --------------------------------------------------------------------------------

TEST_CASE("manifest.version_missing") {
    CHECK(errors_of("[[domain]]\nname = \"a\"\nimage = \"a\"\nmemory = \"1M\"\n") ==
          one("1: missing \"version = 1\" before the first [[domain]]"));
}

TEST_CASE("manifest.version_unsupported") {
    CHECK(errors_of("\nversion = 2\n[[domain]]\nname = \"a\"\nimage = \"a\"\nmemory = \"1M\"\n") ==
          one("2: unsupported version 2 (this tool reads version 1)"));
}

TEST_CASE("manifest.version_wrong_type") {
    CHECK(errors_of("version = \"1\"\n[[domain]]\nname = \"a\"\nimage = \"a\"\nmemory = \"1M\"\n") ==
          one("1: \"version\" must be a number, not a string"));
}

TEST_CASE("manifest.unknown_top_level_key") {
    CHECK(errors_of("version = 1\nname = \"x\"\n[[domain]]\nname = \"a\"\nimage = \"a\"\nmemory = \"1M\"\n") ==
          one("2: unknown key \"name\" at the top level (only \"version\" and \"components\")"));
}

TEST_CASE("manifest.component_nested_listed") {
    ManifestSpec m = parsed(
        "version = 1\ncomponents = [\"nested\"]\n[[domain]]\nname = \"a\"\nimage = \"a\"\n"
        "memory = \"1M\"\n",
        BuildOptions{true});
    REQUIRE(m.components.size() == 1);
    CHECK(m.components[0].name == "nested");
    CHECK(m.components[0].line == 2);
    CHECK(m.components[0].size == 0);  // pack --component fills in the size and hash
}

TEST_CASE("manifest.component_nested_refused_when_build_has_it_off") {
    std::string text =
        "version = 1\ncomponents = [\n  \"nested\",\n]\n[[domain]]\nname = \"a\"\nimage = \"a\"\n"
        "memory = \"1M\"\n";
    CHECK(errors_of(text) ==
          one("3: component \"nested\" needs nested virtualization, but this build has NESTED_VIRT=OFF"));
    CHECK(errors_of(text, BuildOptions{true}).empty());
}

TEST_CASE("manifest.component_unknown_or_repeated") {
    std::string head = "version = 1\n";
    std::string domain = "[[domain]]\nname = \"a\"\nimage = \"a\"\nmemory = \"1M\"\n";
    CHECK(errors_of(head + "components = [\"gpu\"]\n" + domain, BuildOptions{true}) ==
          one("2: unknown component \"gpu\" (known components: nested)"));
    CHECK(errors_of(head + "components = [\"nested\", \"nested\"]\n" + domain, BuildOptions{true}) ==
          one("2: component \"nested\" listed twice"));
}

TEST_CASE("manifest.no_domains") {
    CHECK(errors_of("version = 1\n") == one("1: no [[domain]] tables: a manifest describes at least one domain"));
}

TEST_CASE("manifest.too_many_domains") {
    std::string text = "version = 1\n";
    for (int i = 0; i < 17; ++i) {
        text += "[[domain]]\nname = \"d" + std::to_string(i) + "\"\nimage = \"x\"\nmemory = \"1M\"\n";
    }
    // The 17th header: line 1 + 16 * 4 + 1.
    CHECK(errors_of(text) == one("66: too many domains: at most 16 are allowed"));
}

// --- domain keys ------------------------------------------------------------------------------

TEST_CASE("manifest.unknown_domain_key") {
    CHECK(errors_of(one_domain("colour = \"blue\"\n")) == one("6: unknown key \"colour\" in [[domain]]"));
}

TEST_CASE("manifest.duplicate_key") {
    CHECK(errors_of(one_domain("name = \"b\"\n")) == one("6: duplicate key \"name\" (first set on line 3)"));
}

TEST_CASE("manifest.duplicate_domain_name") {
    std::string text = one_domain() + "[[domain]]\nname = \"a\"\nimage = \"b\"\nmemory = \"1M\"\n";
    CHECK(errors_of(text) == one("7: duplicate domain name \"a\" (first used on line 3)"));
}

TEST_CASE("manifest.missing_name") {
    CHECK(errors_of("version = 1\n[[domain]]\nimage = \"a\"\nmemory = \"1M\"\n") ==
          one("2: [[domain]] has no \"name\""));
}

TEST_CASE("manifest.missing_image") {
    CHECK(errors_of("version = 1\n[[domain]]\nname = \"a\"\nmemory = \"1M\"\n") ==
          one("2: domain \"a\" has no \"image\""));
}

TEST_CASE("manifest.missing_memory") {
    CHECK(errors_of("version = 1\n[[domain]]\nname = \"a\"\nimage = \"a\"\n") ==
          one("2: domain \"a\" has no \"memory\""));
}

TEST_CASE("manifest.wrong_value_type") {
    CHECK(errors_of(one_domain("vcpus = \"2\"\n")) == one("6: \"vcpus\" must be a number, not a string"));
    CHECK(errors_of(one_domain("flags = \"nested_virt\"\n")) == one("6: \"flags\" must be an array, not a string"));
}

TEST_CASE("manifest.name_bad_charset") {
    CHECK(errors_of("version = 1\n[[domain]]\nname = \"Hello\"\nimage = \"a\"\nmemory = \"1M\"\n") ==
          one("3: domain name \"Hello\" may only use a-z, 0-9, '_' and '-'"));
}

TEST_CASE("manifest.name_too_long") {
    std::string name(32, 'a');
    CHECK(errors_of("version = 1\n[[domain]]\nname = \"" + name + "\"\nimage = \"a\"\nmemory = \"1M\"\n") ==
          one("3: domain name \"" + name + "\" is longer than 31 characters"));
    std::string longest(31, 'a');
    CHECK(errors_of("version = 1\n[[domain]]\nname = \"" + longest + "\"\nimage = \"a\"\nmemory = \"1M\"\n").empty());
}

TEST_CASE("manifest.name_empty") {
    CHECK(errors_of("version = 1\n[[domain]]\nname = \"\"\nimage = \"a\"\nmemory = \"1M\"\n") ==
          one("3: domain name is empty"));
}

TEST_CASE("manifest.image_bad_charset") {
    CHECK(errors_of("version = 1\n[[domain]]\nname = \"a\"\nimage = \"a b\"\nmemory = \"1M\"\n") ==
          one("4: image name \"a b\" may only use A-Z, a-z, 0-9, '.', '_' and '-'"));
}

TEST_CASE("manifest.memory_unaligned") {
    CHECK(errors_of("version = 1\n[[domain]]\nname = \"a\"\nimage = \"a\"\nmemory = 1048577\n") ==
          one("5: memory 1048577 is not a multiple of 4K"));
}

TEST_CASE("manifest.memory_too_small") {
    CHECK(errors_of("version = 1\n[[domain]]\nname = \"a\"\nimage = \"a\"\nmemory = \"512K\"\n") ==
          one("5: memory \"512K\" is less than the minimum 1M"));
}

TEST_CASE("manifest.memory_too_large") {
    CHECK(errors_of("version = 1\n[[domain]]\nname = \"a\"\nimage = \"a\"\nmemory = \"5G\"\n") ==
          one("5: memory \"5G\" is more than the maximum 4G"));
    CHECK(errors_of("version = 1\n[[domain]]\nname = \"a\"\nimage = \"a\"\nmemory = \"99999999999999999999G\"\n") ==
          one("5: memory \"99999999999999999999G\" is more than the maximum 4G"));
}

TEST_CASE("manifest.memory_not_a_size") {
    CHECK(errors_of("version = 1\n[[domain]]\nname = \"a\"\nimage = \"a\"\nmemory = \"16MB\"\n") ==
          one("5: memory \"16MB\" is not a size: write a number of bytes, or a number with a K, M or G suffix"));
}

TEST_CASE("manifest.memory_wrong_type") {
    CHECK(errors_of("version = 1\n[[domain]]\nname = \"a\"\nimage = \"a\"\nmemory = [1]\n") ==
          one("5: \"memory\" must be a string such as \"16M\" or a number, not an array"));
}

TEST_CASE("manifest.vcpus_zero") {
    CHECK(errors_of(one_domain("vcpus = 0\n")) == one("6: vcpus must be between 1 and 64, not 0"));
}

TEST_CASE("manifest.vcpus_too_many") {
    CHECK(errors_of(one_domain("vcpus = 65\n")) == one("6: vcpus must be between 1 and 64, not 65"));
}

TEST_CASE("manifest.unknown_flag") {
    CHECK(errors_of(one_domain("flags = [\"turbo\"]\n")) ==
          one("6: unknown flag \"turbo\" (known flags: nested_virt)"));
}

TEST_CASE("manifest.duplicate_flag") {
    CHECK(errors_of(one_domain("flags = [\"nested_virt\", \"nested_virt\"]\n"), BuildOptions{true}) ==
          one("6: flag \"nested_virt\" is listed twice"));
}

TEST_CASE("manifest.flag_wrong_type") {
    CHECK(errors_of(one_domain("flags = [1]\n")) == one("6: each flag must be a string, not a number"));
}

TEST_CASE("manifest.unknown_cpuid_policy") {
    CHECK(errors_of(one_domain("cpuid = \"fast\"\n")) ==
          one("6: unknown CPUID policy \"fast\" (known: default, minimal, host)"));
}

TEST_CASE("manifest.unknown_platform") {
    CHECK(errors_of(one_domain("platform = \"amiga\"\n")) == one("6: unknown platform \"amiga\" (known: bare, pc)"));
    CHECK(errors_of(one_domain("platform = 1\n")).size() == 1);
    CHECK(parsed(one_domain("platform = \"bare\"\n")).domains[0].platform == NESTOR_MANIFEST_PLATFORM_BARE);
}

TEST_CASE("manifest.console") {
    CHECK(errors_of(one_domain("console = \"keyboard\"\n")) ==
          one("6: unknown console \"keyboard\" (known: output, input)"));
    CHECK(errors_of(one_domain("console = \"input\"\n")) ==
          one("6: domain \"a\" asks for the console's input, which reaches a domain through the serial port of "
              "platform \"pc\""));
    CHECK(parsed(one_domain("console = \"input\"\nplatform = \"pc\"\n")).domains[0].console ==
          NESTOR_MANIFEST_CONSOLE_INPUT);
    CHECK(parsed(one_domain("")).domains[0].console == NESTOR_MANIFEST_CONSOLE_OUTPUT);
}

TEST_CASE("manifest.on_reset") {
    CHECK(errors_of(one_domain("on_reset = \"reboot\"\n")) ==
          one("6: unknown on_reset \"reboot\" (known: stop, restart)"));
    CHECK(errors_of(one_domain("on_reset = 1\n")) == one("6: \"on_reset\" must be a string, not a number"));
    CHECK(errors_of(one_domain("on_reset = \"stop\"\non_reset = \"restart\"\n")) ==
          one("7: duplicate key \"on_reset\" (first set on line 6)"));
    // A bare domain may restart too: a triple fault is its reset.
    CHECK(parsed(one_domain("on_reset = \"restart\"\n")).domains[0].on_reset == NESTOR_MANIFEST_ON_RESET_RESTART);
    CHECK(parsed(one_domain("on_reset = \"stop\"\nplatform = \"pc\"\n")).domains[0].on_reset ==
          NESTOR_MANIFEST_ON_RESET_STOP);
    CHECK(parsed(one_domain("")).domains[0].on_reset == NESTOR_MANIFEST_ON_RESET_STOP);
}

TEST_CASE("manifest.console_input_twice") {
    std::string text = one_domain("console = \"input\"\nplatform = \"pc\"\n") +
                       "[[domain]]\nname = \"b\"\nimage = \"x\"\nmemory = \"1M\"\nplatform = \"pc\"\n"
                       "console = \"input\"\n";
    CHECK(errors_of(text) ==
          one("13: domain \"b\" asks for the console's input, which domain \"a\" already takes: one domain at most"));
}

TEST_CASE("manifest.cmdline_too_long") {
    CHECK(errors_of(one_domain("cmdline = \"" + std::string(256, 'x') + "\"\n")) ==
          one("6: cmdline is longer than 255 characters"));
    CHECK(errors_of(one_domain("cmdline = \"" + std::string(255, 'x') + "\"\n")).empty());
}

// --- signals ----------------------------------------------------------------------------------

TEST_CASE("manifest.signal_unknown_domain") {
    CHECK(errors_of(one_domain("signals = [\"ghost\"]\n")) == one("6: domain \"a\" signals unknown domain \"ghost\""));
}

TEST_CASE("manifest.signal_to_itself") {
    CHECK(errors_of(one_domain("signals = [\"a\"]\n")) == one("6: domain \"a\" signals itself"));
}

TEST_CASE("manifest.signal_listed_twice") {
    CHECK(errors_of(with_domain_b(one_domain("signals = [\"b\",\n  \"b\"]\n"))) ==
          one("7: signal target \"b\" is listed twice"));
}

TEST_CASE("manifest.too_many_signals") {
    std::string text = "version = 1\n";
    for (int i = 0; i < 10; ++i)
        text += "[[domain]]\nname = \"d" + std::to_string(i) + "\"\nimage = \"x\"\nmemory = \"1M\"\n";
    text += "[[domain]]\nname = \"s\"\nimage = \"x\"\nmemory = \"1M\"\n";
    text += "signals = [\"d0\", \"d1\", \"d2\", \"d3\", \"d4\", \"d5\", \"d6\", \"d7\", \"d8\"]\n";
    CHECK(errors_of(text) == one("46: more than 8 signal targets"));
}

// --- I/O ports --------------------------------------------------------------------------------

TEST_CASE("manifest.ioport_range_inverted") {
    CHECK(errors_of(one_domain("ioports = [\"0x3ff-0x3f8\"]\n")) ==
          one("6: I/O port range \"0x3ff-0x3f8\" has its first port above its last"));
}

TEST_CASE("manifest.ioport_range_above_ffff") {
    CHECK(errors_of(one_domain("ioports = [\"0xfff0-0x10000\"]\n")) ==
          one("6: I/O port range \"0xfff0-0x10000\" goes above 0xffff"));
    CHECK(errors_of(one_domain("ioports = [65536]\n")) == one("6: I/O port 65536 is above 0xffff"));
}

TEST_CASE("manifest.ioport_range_malformed") {
    CHECK(
        errors_of(one_domain("ioports = [\"0x3f8..0x3ff\"]\n")) ==
        one("6: I/O port range \"0x3f8..0x3ff\" is malformed: write \"FIRST-LAST\" or \"PORT\", e.g. \"0x3f8-0x3ff\""));
    CHECK(errors_of(one_domain("ioports = [\"-5\"]\n")).size() == 1);
}

TEST_CASE("manifest.ioport_ranges_overlap") {
    CHECK(errors_of(one_domain("ioports = [\"0x3f8-0x3ff\", \"0x3f0-0x3f8\"]\n")) ==
          one("6: I/O port range \"0x3f0-0x3f8\" overlaps \"0x3f8-0x3ff\""));
}

TEST_CASE("manifest.too_many_ioport_ranges") {
    std::string ranges;
    for (int i = 0; i < 9; ++i) ranges += (i ? ", " : "") + std::to_string(0x100 + i);
    CHECK(errors_of(one_domain("ioports = [" + ranges + "]\n")) == one("6: more than 8 I/O port ranges"));
}

// --- modules ----------------------------------------------------------------------------------

TEST_CASE("manifest.module_unknown_key") {
    CHECK(errors_of(one_domain("modules = [{ image = \"m\", path = \"/x\" }]\n")) ==
          one("6: unknown key \"path\" in a module (only \"image\" and \"cmdline\")"));
}

TEST_CASE("manifest.module_missing_image") {
    CHECK(errors_of(one_domain("modules = [{ cmdline = \"x\" }]\n")) == one("6: module has no \"image\""));
}

TEST_CASE("manifest.module_wrong_type") {
    CHECK(errors_of(one_domain("modules = [\"data\"]\n")) == one("6: each module must be a table, not a string"));
}

TEST_CASE("manifest.module_cmdline_too_long") {
    CHECK(errors_of(one_domain("modules = [{ image = \"m\", cmdline = \"" + std::string(128, 'x') + "\" }]\n")) ==
          one("6: module cmdline is longer than 127 characters"));
}

TEST_CASE("manifest.module_image_bad_charset") {
    CHECK(errors_of(one_domain("modules = [{ image = \"a/b\" }]\n")) ==
          one("6: module image name \"a/b\" may only use A-Z, a-z, 0-9, '.', '_' and '-'"));
}

TEST_CASE("manifest.too_many_modules") {
    CHECK(errors_of(one_domain("modules = [{image=\"m1\"}, {image=\"m2\"}, {image=\"m3\"}, {image=\"m4\"},\n"
                               "  {image=\"m5\"}]\n")) == one("7: more than 4 modules"));
}

// --- initrd (a Linux kernel's) -----------------------------------------------------------------

TEST_CASE("manifest.initrd_is_packed_as_the_domain_s_one_module") {
    ManifestSpec m = parsed(one_domain("initrd = \"initramfs\"\ncmdline = \"console=ttyS0\"\n"));
    REQUIRE(m.domains[0].modules.size() == 1);
    CHECK(m.domains[0].modules[0].image == "initramfs");
    CHECK(m.domains[0].modules[0].cmdline.empty());
    std::vector<std::uint8_t> image = pack_manifest(m);
    auto read = nestor::manifest::read_manifest(image.data(), image.size());
    REQUIRE(read);
    REQUIRE(read->domain(0).module_count() == 1);
    CHECK(std::string(read->domain(0).module(0).image) == "initramfs");
}

TEST_CASE("manifest.initrd_with_modules_is_refused") {
    CHECK(errors_of(one_domain("initrd = \"i\"\nmodules = [{ image = \"m\" }]\n")) ==
          one("7: domain \"a\" has both \"initrd\" and \"modules\": a Linux kernel's initrd is its modules, one "
              "after another; list them all in \"modules\""));
}

TEST_CASE("manifest.initrd_image_bad_charset_or_type") {
    CHECK(errors_of(one_domain("initrd = \"a/b\"\n")) ==
          one("6: initrd image name \"a/b\" may only use A-Z, a-z, 0-9, '.', '_' and '-'"));
    CHECK(errors_of(one_domain("initrd = 3\n")) == one("6: \"initrd\" must be a string, not a number"));
}

// --- syntax -----------------------------------------------------------------------------------

TEST_CASE("manifest.unterminated_string") {
    CHECK(errors_of(one_domain("cmdline = \"abc\n")) == one("6: unterminated string: missing the closing '\"'"));
}

TEST_CASE("manifest.unterminated_array") {
    CHECK(errors_of(one_domain("ioports = [\"0x60\",\n")) == one("6: unterminated array: missing ']'"));
}

TEST_CASE("manifest.unterminated_table") {
    CHECK(errors_of(one_domain("modules = [{ image = \"m\"\n")) == one("6: unterminated table: missing '}'"));
}

TEST_CASE("manifest.unknown_escape") {
    CHECK(errors_of(one_domain("cmdline = \"a\\nb\"\n")) ==
          one("6: unknown escape in string: only \\\" and \\\\ are allowed"));
}

TEST_CASE("manifest.control_and_non_ascii_characters") {
    CHECK(errors_of(one_domain("cmdline = \"a\tb\"\n")) == one("6: control character in string"));
    CHECK(errors_of(one_domain("cmdline = \"caf\xc3\xa9\"\n")) ==
          one("6: non-ASCII character in string: strings are ASCII"));
}

TEST_CASE("manifest.unquoted_string") {
    CHECK(errors_of(one_domain("cpuid = host\n")) == one("6: \"host\" is not a value: strings need double quotes"));
}

TEST_CASE("manifest.missing_value") {
    CHECK(errors_of(one_domain("cmdline =   # nothing\n")) ==
          one("6: expected a value (a \"string\", a number, [an, array] or {a = table}), found '#'"));
    CHECK(errors_of(one_domain("cmdline =\n")) == one("6: missing value after \"cmdline =\""));
}

TEST_CASE("manifest.text_after_value") {
    CHECK(errors_of(one_domain("cmdline = \"a\" \"b\"\n")) == one("6: expected the end of the line, found '\"'"));
}

TEST_CASE("manifest.missing_equals") {
    CHECK(errors_of(one_domain("vcpus 2\n")) == one("6: expected '=' after \"vcpus\", found '2'"));
}

TEST_CASE("manifest.unknown_table") {
    CHECK(errors_of(one_domain("[[guest]]\n")) ==
          one("6: unknown table [[guest]]: only [[domain]] tables are allowed"));
    CHECK(errors_of(one_domain("[domain]\n")) == one("6: only [[domain]] tables are allowed"));
}

TEST_CASE("manifest.malformed_numbers") {
    CHECK(errors_of(one_domain("vcpus = 2x\n")) == one("6: \"2x\" is not a number (decimal, or hex with 0x)"));
    CHECK(errors_of(one_domain("vcpus = 99999999999999999999\n")) ==
          one("6: number 99999999999999999999 is too large"));
}

// --- reporting --------------------------------------------------------------------------------

TEST_CASE("manifest.all_meaning_errors_reported_in_line_order") {
    std::string text =
        "version = 1\n"
        "[[domain]]\n"
        "signals = [\"ghost\"]\n"  // 3: reported after the pass over all domains
        "name = \"a\"\n"
        "image = \"a\"\n"
        "memory = \"1M\"\n"
        "vcpus = 0\n";  // 7
    CHECK(errors_of(text) == Errors{"t.manifest:3: domain \"a\" signals unknown domain \"ghost\"",
                                    "t.manifest:7: vcpus must be between 1 and 64, not 0"});
}

TEST_CASE("manifest.kernel_owned_ports_are_refused") {
    const char* text =
        "version = 1\n"
        "[[domain]]\n"
        "name = \"d\"\n"
        "image = \"d\"\n"
        "memory = \"4M\"\n"
        "ioports = [\"0x1f-0x20\", \"0xf4\", \"0x8900\", \"0x60\"]\n";
    ParseOutcome outcome = parse_manifest(text, "t.manifest", BuildOptions{});
    REQUIRE(outcome.errors.size() == 3);
    CHECK(outcome.errors[0].str() ==
          "t.manifest:6: I/O port range \"0x1f-0x20\" includes ports the kernel drives (the PIC 0x20-0x21 and "
          "0xa0-0xa1, the exit ports 0xf4-0xf7 and 0x8900)");
}
