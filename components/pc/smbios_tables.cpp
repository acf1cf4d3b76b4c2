#include "nestor/pc/smbios_tables.hpp"

#include "nestor/lib/sha256.hpp"
#include "nestor/lib/util.hpp"
#include "nestor/pc/table_bytes.hpp"

namespace nestor::pc {

namespace {

using namespace table_bytes;

// The 64-bit entry point (DSP0134 3.0, section 5.2.2), the structure table after it on a 32-byte
// boundary.
constexpr char kAnchor[] = "_SM3_";
constexpr usize kEntryPointLength = 0x18;
constexpr usize kTableOffset = 0x20;
constexpr u8 kMajorVersion = 3;
constexpr u8 kMinorVersion = 0;
constexpr u8 kEntryPointRevision = 1;

// Structure types (section 7) and the formatted lengths of the versions written.
constexpr u8 kTypeBios = 0;
constexpr u8 kTypeSystem = 1;
constexpr u8 kTypeEndOfTable = 127;
constexpr u8 kBiosLength = 0x18;    // through the embedded controller's release (2.4 and later)
constexpr u8 kSystemLength = 0x1B;  // through the family string (2.4 and later)
constexpr u8 kEndOfTableLength = 4;

// BIOS Information fields (section 7.1).
constexpr u16 kBiosSegment = kSmbiosAddress >> 4;
constexpr u64 kCharacteristicsNotSupported = u64{1} << 3;
constexpr u8 kExtension1Acpi = 1u << 0;
constexpr u8 kExtension2VirtualMachine = 1u << 4;
constexpr u8 kNoRelease = 0xFF;  // the major and minor releases: not given
// System Information (section 7.2): woken by the power switch.
constexpr u8 kWakeUpPowerSwitch = 0x06;

// A structure's strings follow its formatted part, each with its terminator, and one more zero
// ends the set (two zeros when it has none).
template <usize N> constexpr usize string_bytes(const char (&)[N]) { return N; }
constexpr usize kBiosStrings =
    string_bytes(kSmbiosVendor) + string_bytes(kSmbiosBiosVersion) + string_bytes(kSmbiosBiosDate) + 1;
constexpr usize kSystemStrings = string_bytes(kSmbiosVendor) + string_bytes(kSmbiosProduct) + 1;
constexpr usize kTableSize = kBiosLength + kBiosStrings + kSystemLength + kSystemStrings + kEndOfTableLength + 2;

class StructureWriter {
public:
    explicit StructureWriter(u8* at) : at_(at) {}
    // Starts a structure: its header, its formatted part zeroed.
    u8* begin(u8 type, u8 length) {
        u8* s = at_;
        for (usize i = 0; i < length; ++i) s[i] = 0;
        put8(s, type);
        put8(s + 1, length);
        put16(s + 2, handle_++);
        at_ += length;
        return s;
    }
    // Appends a string to the structure begun last; its number (from 1) is what its field holds.
    template <usize N> u8 string(const char (&text)[N]) {
        copy_bytes(at_, text, N);
        at_ += N;
        return ++strings_;
    }
    void end() {
        if (strings_ == 0) *at_++ = 0;
        *at_++ = 0;
        strings_ = 0;
    }
    usize written(const u8* from) const { return static_cast<usize>(at_ - from); }

private:
    u8* at_;
    u16 handle_ = 0;
    u8 strings_ = 0;
};

// SMBIOS 2.6 and later store the UUID's first three fields little-endian (DSP0134 7.2.1), the
// rest as the text writes it.
void put_uuid(u8* at, const MachineUuid& uuid) {
    constexpr u8 kOrder[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
    for (usize i = 0; i < 16; ++i) at[i] = uuid.bytes[kOrder[i]];
}

void write_structures(u8* table, const MachineUuid& uuid) {
    StructureWriter w(table);
    u8* bios = w.begin(kTypeBios, kBiosLength);
    put8(bios + 0x04, w.string(kSmbiosVendor));
    put8(bios + 0x05, w.string(kSmbiosBiosVersion));
    put16(bios + 0x06, kBiosSegment);
    put8(bios + 0x08, w.string(kSmbiosBiosDate));
    put8(bios + 0x09, 0);  // ROM size: 64 KiB
    put64(bios + 0x0A, kCharacteristicsNotSupported);
    put8(bios + 0x12, kExtension1Acpi);
    put8(bios + 0x13, kExtension2VirtualMachine);
    put8(bios + 0x14, kNoRelease);
    put8(bios + 0x15, kNoRelease);
    put8(bios + 0x16, kNoRelease);
    put8(bios + 0x17, kNoRelease);
    w.end();
    u8* system = w.begin(kTypeSystem, kSystemLength);
    put8(system + 0x04, w.string(kSmbiosVendor));
    put8(system + 0x05, w.string(kSmbiosProduct));
    put_uuid(system + 0x08, uuid);
    put8(system + 0x18, kWakeUpPowerSwitch);  // version, serial, SKU, family: none
    w.end();
    w.begin(kTypeEndOfTable, kEndOfTableLength);
    w.end();
}

void write_entry_point(u8* entry, u64 table_address) {
    for (usize i = 0; i < kEntryPointLength; ++i) entry[i] = 0;
    copy_bytes(entry, kAnchor, sizeof(kAnchor) - 1);
    put8(entry + 0x06, kEntryPointLength);
    put8(entry + 0x07, kMajorVersion);
    put8(entry + 0x08, kMinorVersion);
    put8(entry + 0x0A, kEntryPointRevision);
    put32(entry + 0x0C, kTableSize);
    put64(entry + 0x10, table_address);
    put8(entry + 0x05, checksum(entry, kEntryPointLength));
}

}  // namespace

const char* smbios_error_name(SmbiosError error) {
    switch (error) {
    case SmbiosError::buffer_too_small: return "buffer too small for the SMBIOS tables";
    case SmbiosError::misaligned_address: return "SMBIOS entry point not 16-byte aligned";
    }
    return "unknown SMBIOS error";
}

usize smbios_tables_size() { return kTableOffset + kTableSize; }

MachineUuid domain_uuid(const char* name, usize length) {
    constexpr char kPrefix[] = "Nestor domain ";
    Sha256 hash;
    hash.update(kPrefix, sizeof(kPrefix) - 1);
    hash.update(name, length);
    const Sha256Digest digest = hash.finish();
    MachineUuid uuid{};
    copy_bytes(uuid.bytes, digest.bytes, sizeof(uuid.bytes));
    uuid.bytes[6] = static_cast<u8>((uuid.bytes[6] & 0x0F) | 0x80);  // version 8
    uuid.bytes[8] = static_cast<u8>((uuid.bytes[8] & 0x3F) | 0x80);  // the RFC's variant
    return uuid;
}

Result<SmbiosLayout, SmbiosError> build_smbios_tables(u8* out, usize capacity, u64 guest_physical,
                                                      const MachineUuid& uuid) {
    if (guest_physical % 16 != 0) return fail(SmbiosError::misaligned_address);
    if (capacity < smbios_tables_size()) return fail(SmbiosError::buffer_too_small);
    for (usize i = kEntryPointLength; i < kTableOffset; ++i) out[i] = 0;
    write_structures(out + kTableOffset, uuid);
    write_entry_point(out, guest_physical + kTableOffset);
    return SmbiosLayout{guest_physical, guest_physical + kTableOffset, kTableSize, smbios_tables_size()};
}

}  // namespace nestor::pc
