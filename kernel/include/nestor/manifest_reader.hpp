// The kernel-side reader of the binary boot manifest (layout in sdk/include/nestor/manifest.h).
// The image comes from a boot module and is not trusted: read_manifest() checks every field once,
// and only then hands out typed views. Views read the image lazily, byte-wise, so the image needs
// no particular alignment; it must not change after it was read (the kernel owns module memory).
#pragma once

#include "nestor/lib/result.hpp"
#include "nestor/lib/types.hpp"
#include "nestor/manifest.h"

namespace nestor::manifest {

// One value per refusal, so the boot log says exactly what is wrong. Header problems first, in
// the order they are checked, then per-domain problems.
enum class ManifestError : u8 {
    too_small,                    // fewer bytes than a header
    bad_magic,                    // not a Nestor manifest
    unsupported_version,          // a format version this kernel does not read
    bad_header_size,              // header_size is not sizeof(nestor_manifest_header)
    size_mismatch,                // total_size differs from the module's size
    bad_checksum,                 // CRC-32 does not match: corrupted or edited
    header_reserved_not_zero,     // the header's reserved field is set
    no_domains,                   // domain_count is 0
    too_many_domains,             // domain_count above NESTOR_MANIFEST_MAX_DOMAINS
    bad_record_size,              // domain_record_size is not sizeof(nestor_manifest_domain)
    domain_table_out_of_bounds,   // records overlap the header or run past the image
    trailing_bytes,               // bytes after the last record
    name_unterminated,            // name has no NUL inside its field
    name_invalid,                 // name empty or outside [a-z0-9_-]
    duplicate_name,               // two domains share a name
    image_unterminated,           // image name has no NUL inside its field
    image_invalid,                // image name empty or outside [A-Za-z0-9._-]
    cmdline_unterminated,         // command line has no NUL inside its field
    cmdline_invalid,              // command line holds a byte that is not printable ASCII
    string_padding_not_zero,      // a byte after a string's NUL is not zero
    memory_unaligned,             // memory_bytes not a page multiple (zero counts as too small)
    memory_too_small,             // below NESTOR_MANIFEST_MIN_MEMORY
    memory_too_large,             // above NESTOR_MANIFEST_MAX_MEMORY
    vcpus_out_of_range,           // 0 or above NESTOR_MANIFEST_MAX_VCPUS
    unknown_flags,                // bits outside NESTOR_DOMAIN_FLAGS_VALID
    unknown_cpuid_policy,         // not a NESTOR_CPUID_POLICY_*
    unknown_platform,             // not a NESTOR_MANIFEST_PLATFORM_*
    domain_reserved_not_zero,     // a domain record's reserved field is set
    too_many_ioport_ranges,       // ioport_range_count above the array
    ioport_range_inverted,        // first > last
    too_many_signals,             // signal_count above the array
    signal_out_of_range,          // a signal target index >= domain_count
    signal_to_self,               // a domain signalling itself
    duplicate_signal,             // the same target listed twice
    too_many_modules,             // module_count above the array
    module_image_unterminated,    // an extra module's image name has no NUL
    module_image_invalid,         // an extra module's image name empty or outside the charset
    module_cmdline_unterminated,  // an extra module's command line has no NUL
    module_cmdline_invalid,       // an extra module's command line is not printable ASCII
    unused_entry_not_zero,        // an array entry past its count is not all zero
    too_many_components,          // component_count above NESTOR_MANIFEST_MAX_COMPONENTS
    unknown_component,            // a component name unterminated, badly padded or not known
    duplicate_component,          // the same component twice
    component_empty,              // a component of size 0
    unknown_console,              // not a NESTOR_MANIFEST_CONSOLE_*
    console_input_without_pc,     // console input asked of a domain without the PC platform
    console_input_twice,          // a second domain asks for the host's console input
    unknown_on_reset,             // not a NESTOR_MANIFEST_ON_RESET_*
};

inline constexpr u32 kManifestErrorCount = static_cast<u32>(ManifestError::unknown_on_reset) + 1;

// For the boot log: the enumerator's name, e.g. "bad_checksum".
const char* manifest_error_name(ManifestError error);

// What was refused and where: domain is the record index, or kNoDomain for header problems.
struct ManifestFault {
    static constexpr u32 kNoDomain = ~u32{0};
    ManifestError error = ManifestError::too_small;
    u32 domain = kNoDomain;
};

struct IoPortRange {
    u16 first;
    u16 last;  // inclusive
};

struct ManifestModule {
    const char* image;    // NUL-terminated, inside the image
    const char* cmdline;  // NUL-terminated, possibly empty
};

// One validated domain record.
class ManifestDomain {
public:
    explicit ManifestDomain(const u8* record) : record_(record) {}

    const char* name() const;
    const char* image() const;
    const char* cmdline() const;
    u64 memory_bytes() const;
    u32 vcpus() const;
    u32 flags() const;         // NESTOR_DOMAIN_FLAG_*
    u32 cpuid_policy() const;  // NESTOR_CPUID_POLICY_*
    u32 platform() const;      // NESTOR_MANIFEST_PLATFORM_*
    u32 console() const;       // NESTOR_MANIFEST_CONSOLE_*
    u32 on_reset() const;      // NESTOR_MANIFEST_ON_RESET_*
    u32 ioport_range_count() const;
    IoPortRange ioport_range(u32 index) const;  // index < ioport_range_count()
    u32 signal_count() const;
    u32 signal_target(u32 index) const;  // a domain index; index < signal_count()
    u32 module_count() const;
    ManifestModule module(u32 index) const;  // index < module_count()

private:
    const u8* record_;
};

// A loadable component the manifest asks for: the boot module called `name` must hold exactly
// `size` bytes with this SHA-256.
struct ManifestComponent {
    const char* name;  // NUL-terminated, inside the image
    u64 size;
    u8 sha256[32];
};

// A validated manifest image.
class Manifest {
public:
    Manifest(const u8* image, u32 domain_count, u32 domain_offset, u32 component_count = 0)
        : image_(image),
          domain_count_(domain_count),
          domain_offset_(domain_offset),
          component_count_(component_count) {}

    u32 domain_count() const { return domain_count_; }
    u32 component_count() const { return component_count_; }
    ManifestComponent component(u32 index) const;  // index < component_count()
    // The component called name, or false if the manifest does not ask for it.
    bool find_component(const char* name, ManifestComponent& out) const;
    ManifestDomain domain(u32 index) const;  // index < domain_count()
    // The index of the domain called name, or false if there is none.
    bool find_domain(const char* name, u32& index) const;

private:
    const u8* image_;
    u32 domain_count_;
    u32 domain_offset_;
    u32 component_count_;
};

// Validates the whole image (size bytes at image) and returns a view of it, or the first fault.
Result<Manifest, ManifestFault> read_manifest(const void* image, usize size);

// CRC-32 of size bytes at image, the header's checksum field taken as zero (size must cover the
// header). What `nestor-manifest pack` stores and read_manifest() compares.
u32 manifest_checksum(const void* image, usize size);

}  // namespace nestor::manifest
