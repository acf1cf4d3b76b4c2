// The SMBIOS tables of the PC platform (DMTF DSP0134, version 3.0), written into a buffer the
// platform places in guest memory at 0xF0000, where a guest's search for the entry point looks:
// the 64-bit entry point ("_SM3_") and a structure table of BIOS Information (type 0), System
// Information (type 1) and End-of-Table (type 127). A guest learns from them who made the machine,
// that it is a virtual machine, its UUID, and a BIOS date (Linux trusts PCI configuration
// mechanism #1 without probing for a host bridge when the BIOS is from 2001 or later).
// docs/platform.md.
#pragma once

#include "nestor/lib/result.hpp"

namespace nestor::pc {

// Where the platform places the tables: the entry point's search runs over 0xF0000-0xFFFFF.
inline constexpr u64 kSmbiosAddress = 0xF0000;

// What the tables say the machine is (the strings of types 0 and 1).
inline constexpr char kSmbiosVendor[] = "Nestor";
inline constexpr char kSmbiosProduct[] = "Nestor PC";
inline constexpr char kSmbiosBiosVersion[] = "1.0";
inline constexpr char kSmbiosBiosDate[] = "12/07/2026";  // MM/DD/YYYY, as the specification writes it

// A machine's UUID in the order its canonical text writes it (00112233-4455-6677-8899-aabbccddeeff
// is bytes 0x00, 0x11, ... 0xff).
struct MachineUuid {
    u8 bytes[16];
};

// A domain's machine UUID, made from its name alone: the same at every boot and on every host
// (what a guest keys its identity on, such as systemd's machine ID or cloud-init's instance),
// different for different names. The first 16 bytes of SHA-256 of "Nestor domain " and the name,
// marked as an RFC 9562 version 8 (custom) UUID.
MachineUuid domain_uuid(const char* name, usize length);

enum class SmbiosError : u8 {
    buffer_too_small,    // capacity below smbios_tables_size()
    misaligned_address,  // guest_physical not 16-byte aligned (where the entry point's search looks)
};

const char* smbios_error_name(SmbiosError error);

// Where the entry point and the structure table landed (guest-physical) and how many bytes of
// the buffer were written.
struct SmbiosLayout {
    u64 entry_point;
    u64 table;
    usize table_size;
    usize size;
};

// Bytes the tables take.
usize smbios_tables_size();

// Writes the entry point at the start of `out` and the structure table after it, the caller
// placing `out` at guest-physical `guest_physical`. Nothing is written when refused.
// System Information holds `uuid`.
Result<SmbiosLayout, SmbiosError> build_smbios_tables(u8* out, usize capacity, u64 guest_physical,
                                                      const MachineUuid& uuid);

}  // namespace nestor::pc
