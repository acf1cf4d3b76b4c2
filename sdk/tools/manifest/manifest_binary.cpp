// Packing a validated manifest into the binary module, and describing a module the way the
// kernel reads it (through the kernel's own reader, so `dump` shows exactly what boots).
#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include "manifest_text.hpp"
#include "nestor/manifest.h"
#include "nestor/lib/sha256.hpp"
#include "nestor/manifest_reader.hpp"

namespace nestor::manifest_text {
namespace {

// The structs are written as they lie in memory, which is the file's byte order only here.
static_assert(std::endian::native == std::endian::little, "the manifest is little-endian");

// Copies text into a fixed field, NUL-padded; the validator has already bounded its length.
template <std::size_t N> void put_string(char (&field)[N], const std::string& text) {
    std::memset(field, 0, N);
    std::memcpy(field, text.data(), std::min(text.size(), N - 1));
}

std::uint8_t domain_index(const ManifestSpec& manifest, const std::string& name) {
    auto at = std::find_if(manifest.domains.begin(), manifest.domains.end(),
                           [&](const DomainSpec& d) { return d.name == name; });
    return static_cast<std::uint8_t>(at - manifest.domains.begin());
}

nestor_manifest_domain pack_domain(const ManifestSpec& manifest, const DomainSpec& spec) {
    nestor_manifest_domain record;
    std::memset(&record, 0, sizeof(record));  // reserved fields, padding and unused entries
    put_string(record.name, spec.name);
    put_string(record.image, spec.image);
    put_string(record.cmdline, spec.cmdline);
    record.memory_bytes = spec.memory_bytes;
    record.vcpus = spec.vcpus;
    record.flags = spec.flags;
    record.cpuid_policy = spec.cpuid_policy;
    record.platform = spec.platform;
    record.console = spec.console;
    record.on_reset = spec.on_reset;
    record.ioport_range_count = static_cast<std::uint16_t>(spec.ioports.size());
    for (std::size_t i = 0; i < spec.ioports.size(); ++i) {
        record.ioport_ranges[i] = nestor_manifest_ioport_range{spec.ioports[i].first, spec.ioports[i].last};
    }
    record.signal_count = static_cast<std::uint16_t>(spec.signals.size());
    for (std::size_t i = 0; i < spec.signals.size(); ++i) record.signals[i] = domain_index(manifest, spec.signals[i]);
    record.module_count = static_cast<std::uint16_t>(spec.modules.size());
    for (std::size_t i = 0; i < spec.modules.size(); ++i) {
        put_string(record.modules[i].image, spec.modules[i].image);
        put_string(record.modules[i].cmdline, spec.modules[i].cmdline);
    }
    return record;
}

const char* cpuid_policy_name(std::uint32_t policy) {
    switch (policy) {
    case NESTOR_CPUID_POLICY_DEFAULT: return "default";
    case NESTOR_CPUID_POLICY_MINIMAL: return "minimal";
    case NESTOR_CPUID_POLICY_HOST: return "host";
    default: return "?";
    }
}

std::string hex(std::uint64_t value) {
    std::ostringstream out;
    out << "0x" << std::hex << value;
    return out.str();
}

void dump_domain(const manifest::Manifest& manifest, std::uint32_t index, std::ostringstream& out) {
    manifest::ManifestDomain domain = manifest.domain(index);
    out << "domain " << index << " \"" << domain.name() << "\"\n";
    out << "  image    \"" << domain.image() << "\"\n";
    out << "  memory   " << format_size(domain.memory_bytes()) << " (" << domain.memory_bytes() << " bytes)\n";
    out << "  vcpus    " << domain.vcpus() << "\n";
    out << "  cpuid    " << cpuid_policy_name(domain.cpuid_policy()) << "\n";
    out << "  platform " << (domain.platform() == NESTOR_MANIFEST_PLATFORM_PC ? "pc" : "bare") << "\n";
    out << "  console  " << (domain.console() == NESTOR_MANIFEST_CONSOLE_INPUT ? "input" : "output") << "\n";
    out << "  on_reset " << (domain.on_reset() == NESTOR_MANIFEST_ON_RESET_RESTART ? "restart" : "stop") << "\n";
    out << "  flags    " << ((domain.flags() & NESTOR_DOMAIN_FLAG_NESTED_VIRT) ? "nested_virt" : "none") << "\n";
    out << "  cmdline  \"" << domain.cmdline() << "\"\n";
    for (std::uint32_t i = 0; i < domain.ioport_range_count(); ++i) {
        manifest::IoPortRange range = domain.ioport_range(i);
        out << "  ioports  " << hex(range.first) << "-" << hex(range.last) << "\n";
    }
    for (std::uint32_t i = 0; i < domain.signal_count(); ++i) {
        std::uint32_t target = domain.signal_target(i);
        out << "  signals  " << target << " \"" << manifest.domain(target).name() << "\"\n";
    }
    for (std::uint32_t i = 0; i < domain.module_count(); ++i) {
        manifest::ManifestModule module = domain.module(i);
        out << "  module   \"" << module.image << "\" cmdline \"" << module.cmdline << "\"\n";
    }
}

}  // namespace

bool attach_component(ManifestSpec& manifest, const std::string& name, const std::string& path, std::string& problem) {
    auto at = std::find_if(manifest.components.begin(), manifest.components.end(),
                           [&](const ComponentSpec& c) { return c.name == name; });
    if (at == manifest.components.end()) {
        problem = "the manifest has no component \"" + name + "\" (components = [...])";
        return false;
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        problem = path + ": cannot read the component's module";
        return false;
    }
    std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (bytes.empty()) {
        problem = path + ": the component's module is empty";
        return false;
    }
    at->size = bytes.size();
    Sha256Digest digest = sha256(bytes.data(), bytes.size());
    std::memcpy(at->sha256, digest.bytes, sizeof(at->sha256));
    return true;
}

std::vector<std::uint8_t> pack_manifest(const ManifestSpec& manifest) {
    const std::size_t count = manifest.domains.size();
    const std::size_t total = sizeof(nestor_manifest_header) + count * sizeof(nestor_manifest_domain) +
                              manifest.components.size() * sizeof(nestor_manifest_component);
    std::vector<std::uint8_t> image(total, 0);

    nestor_manifest_header header;
    std::memset(&header, 0, sizeof(header));
    header.magic = NESTOR_MANIFEST_MAGIC;
    header.format_version = NESTOR_MANIFEST_FORMAT_VERSION;
    header.header_size = sizeof(nestor_manifest_header);
    header.total_size = static_cast<std::uint32_t>(total);
    header.domain_count = static_cast<std::uint32_t>(count);
    header.domain_offset = sizeof(nestor_manifest_header);
    header.domain_record_size = sizeof(nestor_manifest_domain);
    header.component_count = static_cast<std::uint16_t>(manifest.components.size());
    std::memcpy(image.data(), &header, sizeof(header));

    for (std::size_t i = 0; i < count; ++i) {
        nestor_manifest_domain record = pack_domain(manifest, manifest.domains[i]);
        std::memcpy(image.data() + header.domain_offset + i * sizeof(record), &record, sizeof(record));
    }
    const std::size_t components_at = header.domain_offset + count * sizeof(nestor_manifest_domain);
    for (std::size_t i = 0; i < manifest.components.size(); ++i) {
        nestor_manifest_component record;
        std::memset(&record, 0, sizeof(record));
        put_string(record.name, manifest.components[i].name);
        std::memcpy(record.sha256, manifest.components[i].sha256, sizeof(record.sha256));
        record.size = manifest.components[i].size;
        std::memcpy(image.data() + components_at + i * sizeof(record), &record, sizeof(record));
    }
    // Last: the checksum covers everything above.
    header.checksum = manifest::manifest_checksum(image.data(), image.size());
    std::memcpy(image.data() + offsetof(nestor_manifest_header, checksum), &header.checksum, sizeof(header.checksum));
    return image;
}

bool dump_manifest(const std::uint8_t* image, std::size_t size, std::string& text) {
    std::ostringstream out;
    auto read = manifest::read_manifest(image, size);
    if (!read) {
        manifest::ManifestFault fault = read.error();
        out << "refused: " << manifest::manifest_error_name(fault.error);
        if (fault.domain != manifest::ManifestFault::kNoDomain) out << " (domain " << fault.domain << ")";
        text = out.str();
        return false;
    }
    const manifest::Manifest& manifest = read.value();
    std::uint32_t checksum = 0;
    std::memcpy(&checksum, image + offsetof(nestor_manifest_header, checksum), sizeof(checksum));
    out << "manifest format " << NESTOR_MANIFEST_FORMAT_VERSION << ", " << size << " bytes, checksum " << hex(checksum)
        << ", " << manifest.domain_count() << (manifest.domain_count() == 1 ? " domain" : " domains") << "\n";
    for (std::uint32_t i = 0; i < manifest.component_count(); ++i) {
        manifest::ManifestComponent component = manifest.component(i);
        out << "component \"" << component.name << "\" " << component.size << " bytes, sha256 ";
        for (std::uint8_t byte : component.sha256)
            out << "0123456789abcdef"[byte >> 4] << "0123456789abcdef"[byte & 15];
        out << "\n";
    }
    for (std::uint32_t i = 0; i < manifest.domain_count(); ++i) dump_domain(manifest, i, out);
    text = out.str();
    return true;
}

}  // namespace nestor::manifest_text
