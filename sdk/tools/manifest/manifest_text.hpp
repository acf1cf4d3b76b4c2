// nestor_manifest_text: the manifest text format (docs/manifest.md) read, validated and packed
// into the binary module the kernel reads (sdk/include/nestor/manifest.h). Every refusal is a
// Diagnostic "file:line: what is wrong"; a manifest with any diagnostic is never packed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace nestor::manifest_text {

// The options the image is built with that decide what a manifest may ask for.
struct BuildOptions {
    bool nested_virt = false;  // NESTED_VIRT=ON
};

struct Diagnostic {
    std::string file;
    int line = 0;
    std::string message;
    std::string str() const { return file + ":" + std::to_string(line) + ": " + message; }
};

struct IoPortSpec {
    std::uint16_t first = 0;
    std::uint16_t last = 0;
};

struct ModuleSpec {
    std::string image;
    std::string cmdline;
};

struct DomainSpec {
    int line = 0;  // of its [[domain]] header
    std::string name;
    std::string image;
    std::string cmdline;
    std::uint64_t memory_bytes = 0;
    std::uint32_t vcpus = 1;
    std::uint32_t flags = 0;         // NESTOR_DOMAIN_FLAG_*
    std::uint32_t cpuid_policy = 0;  // NESTOR_CPUID_POLICY_*
    std::uint16_t platform = 0;      // NESTOR_MANIFEST_PLATFORM_*
    std::uint16_t console = 0;       // NESTOR_MANIFEST_CONSOLE_*
    std::uint8_t on_reset = 0;       // NESTOR_MANIFEST_ON_RESET_*
    std::vector<IoPortSpec> ioports;
    std::vector<std::string> signals;  // names of other domains
    std::vector<ModuleSpec> modules;
};

// A loadable component (`components = ["nested"]`): pack needs its boot module's bytes, whose
// size and SHA-256 the packed manifest records for the kernel to check.
struct ComponentSpec {
    int line = 0;
    std::string name;
    std::uint64_t size = 0;
    std::uint8_t sha256[32] = {};
};

struct ManifestSpec {
    std::uint32_t version = 0;
    std::vector<ComponentSpec> components;
    std::vector<DomainSpec> domains;
};

struct ParseOutcome {
    ManifestSpec manifest;           // meaningful only when ok()
    std::vector<Diagnostic> errors;  // in line order within each pass
    bool ok() const { return errors.empty(); }
};

// Parses and validates text; file names the source in diagnostics.
ParseOutcome parse_manifest(std::string_view text, const std::string& file, const BuildOptions& options);

// The same for a file on disk; an unreadable file is a diagnostic at line 0.
ParseOutcome parse_manifest_file(const std::string& path, const BuildOptions& options);

// Records the size and SHA-256 of component `name`'s module file; false (with `problem`) when the
// manifest does not name that component or the file cannot be read.
bool attach_component(ManifestSpec& manifest, const std::string& name, const std::string& path, std::string& problem);

// The binary image of a validated manifest (little-endian, checksum filled in).
std::vector<std::uint8_t> pack_manifest(const ManifestSpec& manifest);

// Reads an image with the kernel's reader and describes what the kernel would see. Returns false
// and puts the reader's refusal in text when the kernel would refuse it.
bool dump_manifest(const std::uint8_t* image, std::size_t size, std::string& text);

// "16M", "4G", "1536K" or a byte count: how sizes are written in the text and in dumps.
std::string format_size(std::uint64_t bytes);

}  // namespace nestor::manifest_text
