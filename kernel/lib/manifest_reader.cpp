// Reads the binary boot manifest without trusting it. Fields are copied out byte-wise (never
// through a cast pointer into the image), so a misaligned module cannot fault and no aliasing
// rule is bent; field offsets come from the C structs the host tool writes.
#include "nestor/manifest_reader.hpp"

#include "nestor/lib/util.hpp"

namespace nestor::manifest {
namespace {

using Header = nestor_manifest_header;
using Record = nestor_manifest_domain;
using Module = nestor_manifest_module;

#define FIELD_OFFSET(type, field) __builtin_offsetof(type, field)

template <typename T> T load(const u8* at) {
    T value;
    copy_bytes(&value, at, sizeof(T));
    return value;
}

template <typename T> T header_field(const u8* image, usize offset) { return load<T>(image + offset); }

// --- strings ---------------------------------------------------------------------------------

bool is_name_char(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'; }
bool is_image_char(char c) { return is_name_char(c) || (c >= 'A' && c <= 'Z') || c == '.'; }
bool is_printable(char c) { return c >= 0x20 && c <= 0x7e; }

// Length up to the first NUL, or size if the field holds none.
usize field_length(const u8* field, usize size) {
    usize length = 0;
    while (length < size && field[length] != 0) ++length;
    return length;
}

bool all_zero(const u8* bytes, usize size) {
    for (usize i = 0; i < size; ++i) {
        if (bytes[i] != 0) return false;
    }
    return true;
}

enum class Charset { name, image, printable };

bool char_allowed(Charset charset, char c) {
    switch (charset) {
    case Charset::name: return is_name_char(c);
    case Charset::image: return is_image_char(c);
    case Charset::printable: return is_printable(c);
    }
    return false;
}

struct StringRule {
    Charset charset;
    bool may_be_empty;
    ManifestError unterminated;
    ManifestError invalid;
};

// A NUL-terminated string inside its field, in its charset, zero-padded after the NUL.
Status<ManifestError> check_string(const u8* field, usize size, const StringRule& rule) {
    usize length = field_length(field, size);
    if (length == size) return fail(rule.unterminated);
    if (length == 0 && !rule.may_be_empty) return fail(rule.invalid);
    for (usize i = 0; i < length; ++i) {
        if (!char_allowed(rule.charset, static_cast<char>(field[i]))) return fail(rule.invalid);
    }
    if (!all_zero(field + length, size - length)) return fail(ManifestError::string_padding_not_zero);
    return {};
}

bool strings_equal(const char* a, const char* b) {
    while (*a && *a == *b) {
        ++a;
        ++b;
    }
    return *a == *b;
}

// --- checksum --------------------------------------------------------------------------------

// Bitwise CRC-32 (IEEE 802.3, reflected): manifests are a few KiB, read once at boot, so a
// table is not worth its data.
u32 crc32_update(u32 crc, const u8* bytes, usize size) {
    for (usize i = 0; i < size; ++i) {
        crc ^= bytes[i];
        for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
    }
    return crc;
}

// --- header ----------------------------------------------------------------------------------

struct Table {
    u32 count;
    u32 offset;
    u32 component_count;  // records right after the domains
};

Status<ManifestError> check_identity(const u8* image, usize size) {
    if (size < sizeof(Header)) return fail(ManifestError::too_small);
    if (header_field<u32>(image, FIELD_OFFSET(Header, magic)) != NESTOR_MANIFEST_MAGIC) {
        return fail(ManifestError::bad_magic);
    }
    if (header_field<u16>(image, FIELD_OFFSET(Header, format_version)) != NESTOR_MANIFEST_FORMAT_VERSION) {
        return fail(ManifestError::unsupported_version);
    }
    if (header_field<u16>(image, FIELD_OFFSET(Header, header_size)) != sizeof(Header)) {
        return fail(ManifestError::bad_header_size);
    }
    if (header_field<u32>(image, FIELD_OFFSET(Header, total_size)) != size) return fail(ManifestError::size_mismatch);
    // Checked before any other field is believed: a corrupted image stops here.
    if (header_field<u32>(image, FIELD_OFFSET(Header, checksum)) != manifest_checksum(image, size)) {
        return fail(ManifestError::bad_checksum);
    }
    if (header_field<u16>(image, FIELD_OFFSET(Header, reserved)) != 0) {
        return fail(ManifestError::header_reserved_not_zero);
    }
    return {};
}

Result<Table, ManifestError> check_domain_table(const u8* image, usize size) {
    u32 count = header_field<u32>(image, FIELD_OFFSET(Header, domain_count));
    u32 offset = header_field<u32>(image, FIELD_OFFSET(Header, domain_offset));
    if (count == 0) return fail(ManifestError::no_domains);
    if (count > NESTOR_MANIFEST_MAX_DOMAINS) return fail(ManifestError::too_many_domains);
    if (header_field<u32>(image, FIELD_OFFSET(Header, domain_record_size)) != sizeof(Record)) {
        return fail(ManifestError::bad_record_size);
    }
    u32 components = header_field<u16>(image, FIELD_OFFSET(Header, component_count));
    if (components > NESTOR_MANIFEST_MAX_COMPONENTS) return fail(ManifestError::too_many_components);
    // count is at most 16, so the product cannot overflow; the sum is checked.
    u64 end = 0;
    if (offset < sizeof(Header) ||
        !checked_add(offset, u64{count} * sizeof(Record) + u64{components} * sizeof(nestor_manifest_component), end) ||
        end > size) {
        return fail(ManifestError::domain_table_out_of_bounds);
    }
    if (end != size) return fail(ManifestError::trailing_bytes);
    return Table{count, offset, components};
}

// --- one domain record -----------------------------------------------------------------------

constexpr StringRule kNameRule{Charset::name, false, ManifestError::name_unterminated, ManifestError::name_invalid};
constexpr StringRule kImageRule{Charset::image, false, ManifestError::image_unterminated, ManifestError::image_invalid};
constexpr StringRule kCmdlineRule{Charset::printable, true, ManifestError::cmdline_unterminated,
                                  ManifestError::cmdline_invalid};
constexpr StringRule kModuleImageRule{Charset::image, false, ManifestError::module_image_unterminated,
                                      ManifestError::module_image_invalid};
constexpr StringRule kModuleCmdlineRule{Charset::printable, true, ManifestError::module_cmdline_unterminated,
                                        ManifestError::module_cmdline_invalid};

template <typename T> T record_field(const u8* record, usize offset) { return load<T>(record + offset); }

Status<ManifestError> check_record_strings(const u8* record) {
    Status<ManifestError> status = check_string(record + FIELD_OFFSET(Record, name), sizeof(Record::name), kNameRule);
    if (!status) return status;
    status = check_string(record + FIELD_OFFSET(Record, image), sizeof(Record::image), kImageRule);
    if (!status) return status;
    return check_string(record + FIELD_OFFSET(Record, cmdline), sizeof(Record::cmdline), kCmdlineRule);
}

// The same limits sanitise_domain_config applies, plus the manifest's own memory bounds.
Status<ManifestError> check_record_config(const u8* record) {
    u64 memory = record_field<u64>(record, FIELD_OFFSET(Record, memory_bytes));
    if (!is_aligned(memory, NESTOR_MANIFEST_MEMORY_ALIGN)) return fail(ManifestError::memory_unaligned);
    if (memory < NESTOR_MANIFEST_MIN_MEMORY) return fail(ManifestError::memory_too_small);
    if (memory > NESTOR_MANIFEST_MAX_MEMORY) return fail(ManifestError::memory_too_large);
    u32 vcpus = record_field<u32>(record, FIELD_OFFSET(Record, vcpus));
    if (vcpus == 0 || vcpus > NESTOR_MANIFEST_MAX_VCPUS) return fail(ManifestError::vcpus_out_of_range);
    if ((record_field<u32>(record, FIELD_OFFSET(Record, flags)) & ~NESTOR_DOMAIN_FLAGS_VALID) != 0) {
        return fail(ManifestError::unknown_flags);
    }
    if (record_field<u32>(record, FIELD_OFFSET(Record, cpuid_policy)) >= NESTOR_CPUID_POLICY_COUNT) {
        return fail(ManifestError::unknown_cpuid_policy);
    }
    if (record_field<u16>(record, FIELD_OFFSET(Record, platform)) >= NESTOR_MANIFEST_PLATFORM_COUNT) {
        return fail(ManifestError::unknown_platform);
    }
    u16 console = record_field<u16>(record, FIELD_OFFSET(Record, console));
    if (console >= NESTOR_MANIFEST_CONSOLE_COUNT) return fail(ManifestError::unknown_console);
    if (console == NESTOR_MANIFEST_CONSOLE_INPUT &&
        record_field<u16>(record, FIELD_OFFSET(Record, platform)) != NESTOR_MANIFEST_PLATFORM_PC) {
        return fail(ManifestError::console_input_without_pc);
    }
    if (record_field<u8>(record, FIELD_OFFSET(Record, on_reset)) >= NESTOR_MANIFEST_ON_RESET_COUNT) {
        return fail(ManifestError::unknown_on_reset);
    }
    if (record_field<u8>(record, FIELD_OFFSET(Record, reserved1)) != 0) {
        return fail(ManifestError::domain_reserved_not_zero);
    }
    return {};
}

// Entries past the count must be zero: the image stays canonical and nothing hides there.
Status<ManifestError> check_unused(const u8* array, usize entry_size, u32 count, u32 capacity) {
    if (!all_zero(array + count * entry_size, (capacity - count) * entry_size)) {
        return fail(ManifestError::unused_entry_not_zero);
    }
    return {};
}

Status<ManifestError> check_record_ioports(const u8* record) {
    constexpr u32 kCapacity = NESTOR_MANIFEST_MAX_IOPORT_RANGES;
    constexpr usize kEntry = sizeof(nestor_manifest_ioport_range);
    u32 count = record_field<u16>(record, FIELD_OFFSET(Record, ioport_range_count));
    if (count > kCapacity) return fail(ManifestError::too_many_ioport_ranges);
    const u8* ranges = record + FIELD_OFFSET(Record, ioport_ranges);
    for (u32 i = 0; i < count; ++i) {
        u16 first = load<u16>(ranges + i * kEntry + FIELD_OFFSET(nestor_manifest_ioport_range, first));
        u16 last = load<u16>(ranges + i * kEntry + FIELD_OFFSET(nestor_manifest_ioport_range, last));
        if (first > last) return fail(ManifestError::ioport_range_inverted);
    }
    return check_unused(ranges, kEntry, count, kCapacity);
}

Status<ManifestError> check_record_signals(const u8* record, u32 self, u32 domain_count) {
    constexpr u32 kCapacity = NESTOR_MANIFEST_MAX_SIGNALS;
    u32 count = record_field<u16>(record, FIELD_OFFSET(Record, signal_count));
    if (count > kCapacity) return fail(ManifestError::too_many_signals);
    const u8* targets = record + FIELD_OFFSET(Record, signals);
    for (u32 i = 0; i < count; ++i) {
        if (targets[i] >= domain_count) return fail(ManifestError::signal_out_of_range);
        if (targets[i] == self) return fail(ManifestError::signal_to_self);
        for (u32 j = 0; j < i; ++j) {
            if (targets[j] == targets[i]) return fail(ManifestError::duplicate_signal);
        }
    }
    return check_unused(targets, 1, count, kCapacity);
}

Status<ManifestError> check_record_modules(const u8* record) {
    constexpr u32 kCapacity = NESTOR_MANIFEST_MAX_MODULES;
    u32 count = record_field<u16>(record, FIELD_OFFSET(Record, module_count));
    if (count > kCapacity) return fail(ManifestError::too_many_modules);
    const u8* modules = record + FIELD_OFFSET(Record, modules);
    for (u32 i = 0; i < count; ++i) {
        const u8* module = modules + i * sizeof(Module);
        Status<ManifestError> status =
            check_string(module + FIELD_OFFSET(Module, image), sizeof(Module::image), kModuleImageRule);
        if (!status) return status;
        status = check_string(module + FIELD_OFFSET(Module, cmdline), sizeof(Module::cmdline), kModuleCmdlineRule);
        if (!status) return status;
    }
    return check_unused(modules, sizeof(Module), count, kCapacity);
}

Status<ManifestError> check_record(const u8* record, u32 self, u32 domain_count) {
    Status<ManifestError> status = check_record_strings(record);
    if (status) status = check_record_config(record);
    if (status) status = check_record_ioports(record);
    if (status) status = check_record_signals(record, self, domain_count);
    if (status) status = check_record_modules(record);
    return status;
}

// Names are already known to be terminated; the later of two equal names is the one at fault.
Status<ManifestFault> check_names_unique(const Manifest& manifest) {
    for (u32 i = 1; i < manifest.domain_count(); ++i) {
        for (u32 j = 0; j < i; ++j) {
            if (strings_equal(manifest.domain(i).name(), manifest.domain(j).name())) {
                return fail(ManifestFault{ManifestError::duplicate_name, i});
            }
        }
    }
    return {};
}

// The host's console input goes to one domain at most; the second to ask is the one at fault.
Status<ManifestFault> check_one_console_input(const Manifest& manifest) {
    bool taken = false;
    for (u32 i = 0; i < manifest.domain_count(); ++i) {
        if (manifest.domain(i).console() != NESTOR_MANIFEST_CONSOLE_INPUT) continue;
        if (taken) return fail(ManifestFault{ManifestError::console_input_twice, i});
        taken = true;
    }
    return {};
}

// A component record: a known name, NUL-padded, a size; no name twice.
constexpr StringRule kComponentRule{Charset::name, false, ManifestError::unknown_component,
                                    ManifestError::unknown_component};

const u8* component_record(const u8* image, const Table& table, u32 index) {
    return image + table.offset + table.count * sizeof(Record) + index * sizeof(nestor_manifest_component);
}

Status<ManifestError> check_components(const u8* image, const Table& table) {
    for (u32 i = 0; i < table.component_count; ++i) {
        const u8* record = component_record(image, table, i);
        Status<ManifestError> name = check_string(record, NESTOR_MANIFEST_NAME_SIZE, kComponentRule);
        if (!name) return name;
        const char* text = reinterpret_cast<const char*>(record);
        if (!strings_equal(text, NESTOR_MANIFEST_COMPONENT_NESTED)) return fail(ManifestError::unknown_component);
        for (u32 j = 0; j < i; ++j)
            if (strings_equal(text, reinterpret_cast<const char*>(component_record(image, table, j))))
                return fail(ManifestError::duplicate_component);
        if (load<u64>(record + FIELD_OFFSET(nestor_manifest_component, size)) == 0)
            return fail(ManifestError::component_empty);
    }
    return {};
}

Failure<ManifestFault> header_fault(ManifestError error) {
    return fail(ManifestFault{error, ManifestFault::kNoDomain});
}

}  // namespace

// --- public ----------------------------------------------------------------------------------

const char* manifest_error_name(ManifestError error) {
    switch (error) {
    case ManifestError::too_small: return "too_small";
    case ManifestError::bad_magic: return "bad_magic";
    case ManifestError::unsupported_version: return "unsupported_version";
    case ManifestError::bad_header_size: return "bad_header_size";
    case ManifestError::size_mismatch: return "size_mismatch";
    case ManifestError::bad_checksum: return "bad_checksum";
    case ManifestError::header_reserved_not_zero: return "header_reserved_not_zero";
    case ManifestError::no_domains: return "no_domains";
    case ManifestError::too_many_domains: return "too_many_domains";
    case ManifestError::bad_record_size: return "bad_record_size";
    case ManifestError::domain_table_out_of_bounds: return "domain_table_out_of_bounds";
    case ManifestError::trailing_bytes: return "trailing_bytes";
    case ManifestError::name_unterminated: return "name_unterminated";
    case ManifestError::name_invalid: return "name_invalid";
    case ManifestError::duplicate_name: return "duplicate_name";
    case ManifestError::image_unterminated: return "image_unterminated";
    case ManifestError::image_invalid: return "image_invalid";
    case ManifestError::cmdline_unterminated: return "cmdline_unterminated";
    case ManifestError::cmdline_invalid: return "cmdline_invalid";
    case ManifestError::string_padding_not_zero: return "string_padding_not_zero";
    case ManifestError::memory_unaligned: return "memory_unaligned";
    case ManifestError::memory_too_small: return "memory_too_small";
    case ManifestError::memory_too_large: return "memory_too_large";
    case ManifestError::vcpus_out_of_range: return "vcpus_out_of_range";
    case ManifestError::unknown_flags: return "unknown_flags";
    case ManifestError::unknown_cpuid_policy: return "unknown_cpuid_policy";
    case ManifestError::unknown_platform: return "unknown_platform";
    case ManifestError::unknown_console: return "unknown_console";
    case ManifestError::console_input_without_pc: return "console_input_without_pc";
    case ManifestError::console_input_twice: return "console_input_twice";
    case ManifestError::unknown_on_reset: return "unknown_on_reset";
    case ManifestError::domain_reserved_not_zero: return "domain_reserved_not_zero";
    case ManifestError::too_many_ioport_ranges: return "too_many_ioport_ranges";
    case ManifestError::ioport_range_inverted: return "ioport_range_inverted";
    case ManifestError::too_many_signals: return "too_many_signals";
    case ManifestError::signal_out_of_range: return "signal_out_of_range";
    case ManifestError::signal_to_self: return "signal_to_self";
    case ManifestError::duplicate_signal: return "duplicate_signal";
    case ManifestError::too_many_modules: return "too_many_modules";
    case ManifestError::module_image_unterminated: return "module_image_unterminated";
    case ManifestError::module_image_invalid: return "module_image_invalid";
    case ManifestError::module_cmdline_unterminated: return "module_cmdline_unterminated";
    case ManifestError::module_cmdline_invalid: return "module_cmdline_invalid";
    case ManifestError::unused_entry_not_zero: return "unused_entry_not_zero";
    case ManifestError::too_many_components: return "too_many_components";
    case ManifestError::unknown_component: return "unknown_component";
    case ManifestError::duplicate_component: return "duplicate_component";
    case ManifestError::component_empty: return "component_empty";
    }
    return "unknown_manifest_error";
}

u32 manifest_checksum(const void* image, usize size) {
    const u8* bytes = static_cast<const u8*>(image);
    constexpr usize kAt = FIELD_OFFSET(Header, checksum);
    constexpr u8 kZero[sizeof(Header::checksum)] = {};
    if (size < kAt + sizeof(kZero)) return 0;
    u32 crc = ~0u;
    crc = crc32_update(crc, bytes, kAt);
    crc = crc32_update(crc, kZero, sizeof(kZero));
    crc = crc32_update(crc, bytes + kAt + sizeof(kZero), size - kAt - sizeof(kZero));
    return ~crc;
}

Result<Manifest, ManifestFault> read_manifest(const void* image, usize size) {
    const u8* bytes = static_cast<const u8*>(image);
    if (!bytes) return header_fault(ManifestError::too_small);
    Status<ManifestError> identity = check_identity(bytes, size);
    if (!identity) return header_fault(identity.error());
    Result<Table, ManifestError> table = check_domain_table(bytes, size);
    if (!table) return header_fault(table.error());
    for (u32 i = 0; i < table->count; ++i) {
        Status<ManifestError> record = check_record(bytes + table->offset + i * sizeof(Record), i, table->count);
        if (!record) return fail(ManifestFault{record.error(), i});
    }
    Manifest manifest(bytes, table->count, table->offset, table->component_count);
    Status<ManifestFault> unique = check_names_unique(manifest);
    if (!unique) return fail(unique.error());
    Status<ManifestFault> console_input = check_one_console_input(manifest);
    if (!console_input) return fail(console_input.error());
    Status<ManifestError> components = check_components(bytes, *table);
    if (!components) return header_fault(components.error());
    return manifest;
}

ManifestComponent Manifest::component(u32 index) const {
    ASSERT(index < component_count_);
    const u8* record =
        image_ + domain_offset_ + domain_count_ * sizeof(Record) + index * sizeof(nestor_manifest_component);
    ManifestComponent out{
        reinterpret_cast<const char*>(record), load<u64>(record + FIELD_OFFSET(nestor_manifest_component, size)), {}};
    copy_bytes(out.sha256, record + FIELD_OFFSET(nestor_manifest_component, sha256), sizeof(out.sha256));
    return out;
}

bool Manifest::find_component(const char* name, ManifestComponent& out) const {
    for (u32 i = 0; i < component_count_; ++i) {
        if (strings_equal(component(i).name, name)) {
            out = component(i);
            return true;
        }
    }
    return false;
}

ManifestDomain Manifest::domain(u32 index) const {
    ASSERT(index < domain_count_);
    return ManifestDomain(image_ + domain_offset_ + index * sizeof(Record));
}

bool Manifest::find_domain(const char* name, u32& index) const {
    for (u32 i = 0; i < domain_count_; ++i) {
        if (strings_equal(domain(i).name(), name)) {
            index = i;
            return true;
        }
    }
    return false;
}

const char* ManifestDomain::name() const { return reinterpret_cast<const char*>(record_ + FIELD_OFFSET(Record, name)); }
const char* ManifestDomain::image() const {
    return reinterpret_cast<const char*>(record_ + FIELD_OFFSET(Record, image));
}
const char* ManifestDomain::cmdline() const {
    return reinterpret_cast<const char*>(record_ + FIELD_OFFSET(Record, cmdline));
}
u64 ManifestDomain::memory_bytes() const { return record_field<u64>(record_, FIELD_OFFSET(Record, memory_bytes)); }
u32 ManifestDomain::vcpus() const { return record_field<u32>(record_, FIELD_OFFSET(Record, vcpus)); }
u32 ManifestDomain::flags() const { return record_field<u32>(record_, FIELD_OFFSET(Record, flags)); }
u32 ManifestDomain::cpuid_policy() const { return record_field<u32>(record_, FIELD_OFFSET(Record, cpuid_policy)); }
u32 ManifestDomain::platform() const { return record_field<u16>(record_, FIELD_OFFSET(Record, platform)); }
u32 ManifestDomain::console() const { return record_field<u16>(record_, FIELD_OFFSET(Record, console)); }
u32 ManifestDomain::on_reset() const { return record_field<u8>(record_, FIELD_OFFSET(Record, on_reset)); }
u32 ManifestDomain::ioport_range_count() const {
    return record_field<u16>(record_, FIELD_OFFSET(Record, ioport_range_count));
}

IoPortRange ManifestDomain::ioport_range(u32 index) const {
    ASSERT(index < ioport_range_count());
    const u8* entry = record_ + FIELD_OFFSET(Record, ioport_ranges) + index * sizeof(nestor_manifest_ioport_range);
    return IoPortRange{load<u16>(entry + FIELD_OFFSET(nestor_manifest_ioport_range, first)),
                       load<u16>(entry + FIELD_OFFSET(nestor_manifest_ioport_range, last))};
}

u32 ManifestDomain::signal_count() const { return record_field<u16>(record_, FIELD_OFFSET(Record, signal_count)); }

u32 ManifestDomain::signal_target(u32 index) const {
    ASSERT(index < signal_count());
    return record_[FIELD_OFFSET(Record, signals) + index];
}

u32 ManifestDomain::module_count() const { return record_field<u16>(record_, FIELD_OFFSET(Record, module_count)); }

ManifestModule ManifestDomain::module(u32 index) const {
    ASSERT(index < module_count());
    const u8* entry = record_ + FIELD_OFFSET(Record, modules) + index * sizeof(Module);
    return ManifestModule{reinterpret_cast<const char*>(entry + FIELD_OFFSET(Module, image)),
                          reinterpret_cast<const char*>(entry + FIELD_OFFSET(Module, cmdline))};
}

}  // namespace nestor::manifest
