// libFuzzer target: arbitrary bytes as a boot manifest module. The reader must refuse or accept
// without reading outside the image (ASan) or undefined behaviour (UBSan), and whatever it
// accepts must be safe to walk through every accessor.
#include <cstring>

#include "nestor/manifest_reader.hpp"

using namespace nestor;

namespace {

usize walk(const manifest::Manifest& m) {
    usize sum = 0;
    for (u32 d = 0; d < m.domain_count(); ++d) {
        manifest::ManifestDomain domain = m.domain(d);
        sum += std::strlen(domain.name()) + std::strlen(domain.image()) + std::strlen(domain.cmdline());
        sum += domain.memory_bytes() + domain.vcpus() + domain.flags() + domain.cpuid_policy();
        for (u32 i = 0; i < domain.ioport_range_count(); ++i) sum += domain.ioport_range(i).last;
        for (u32 i = 0; i < domain.signal_count(); ++i) sum += std::strlen(m.domain(domain.signal_target(i)).name());
        for (u32 i = 0; i < domain.module_count(); ++i) {
            sum += std::strlen(domain.module(i).image) + std::strlen(domain.module(i).cmdline);
        }
    }
    return sum;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const u8* data, usize size) {
    // Random bytes almost never carry a valid CRC, which would stop every input at the checksum;
    // fixing the checksum up lets the fuzzer explore the field checks behind it.
    static u8 copy[1u << 16];
    if (size > sizeof(copy)) return 0;
    std::memcpy(copy, data, size);
    if (size >= sizeof(nestor_manifest_header)) {
        u32 checksum = manifest::manifest_checksum(copy, size);
        std::memcpy(copy + __builtin_offsetof(nestor_manifest_header, checksum), &checksum, sizeof(checksum));
    }
    auto read = manifest::read_manifest(copy, size);
    if (read.ok()) (void)walk(read.value());
    // The untouched input too: the checksum path itself.
    auto raw = manifest::read_manifest(data, size);
    if (raw.ok()) (void)walk(raw.value());
    return 0;
}
