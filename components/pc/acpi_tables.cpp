#include "nestor/pc/acpi_tables.hpp"

#include "nestor/lib/util.hpp"
#include "nestor/pc/acpi_pm.hpp"
#include "nestor/pc/table_bytes.hpp"

namespace nestor::pc {

namespace {

// The DSDT's AML, as iasl -tc wrote it (components/pc/CMakeLists.txt): `dsdt_aml_code`.
#include "dsdt.hex"

// Offsets of the tables in the buffer: the RSDP first (16-byte aligned, where the guest's scan
// finds it), the FACS on its 64-byte boundary, the fixed-size tables, then the MADT, which grows
// with the processors.
constexpr usize kRsdpOffset = 0;
constexpr usize kFacsOffset = 64;
constexpr usize kXsdtOffset = 128;
constexpr usize kFadtOffset = 192;
constexpr usize kDsdtOffset = 480;
constexpr usize kTableAlign = 16;

constexpr usize kHeaderLength = 36;
constexpr usize kRsdpLength = 36;
constexpr usize kRsdpV1Length = 20;  // what the first checksum covers
constexpr usize kFacsLength = 64;
constexpr usize kXsdtEntries = 2;  // FADT, MADT
constexpr usize kXsdtLength = kHeaderLength + 8 * kXsdtEntries;
constexpr usize kFadtLength = 276;
constexpr usize kDsdtLength = sizeof(dsdt_aml_code);
constexpr usize kMadtOffset = align_up(kDsdtOffset + kDsdtLength, kTableAlign);

// MADT: the fixed part (header, local APIC address, flags) and its interrupt controller structures.
constexpr usize kMadtFixedLength = kHeaderLength + 8;
constexpr usize kMadtLocalApicLength = 8;
constexpr usize kMadtIoApicLength = 12;
constexpr usize kMadtOverrideLength = 10;
constexpr usize kMadtLocalApicNmiLength = 6;
constexpr usize kMadtOverrides = 2;
constexpr usize kMadtTailLength = kMadtIoApicLength + kMadtOverrides * kMadtOverrideLength + kMadtLocalApicNmiLength;

static_assert(kXsdtOffset + kXsdtLength <= kFadtOffset && kFadtOffset + kFadtLength <= kDsdtOffset);
static_assert(kFacsOffset % 64 == 0 && kRsdpOffset + kRsdpLength <= kFacsOffset);

// Revisions (ACPI 6.0): the RSDP that carries an XSDT, FADT 6.0, MADT 4, FACS 2, and a DSDT of
// 64-bit integers (the .asl's DefinitionBlock).
constexpr u8 kRsdpRevision = 2;
constexpr u8 kXsdtRevision = 1;
constexpr u8 kFadtRevision = 6;
constexpr u8 kFadtMinorRevision = 0;
constexpr u8 kMadtRevision = 4;
constexpr u8 kFacsVersion = 2;

constexpr char kOemId[] = "NESTOR";
constexpr char kOemTableId[] = "NESTORPC";
constexpr u32 kOemRevision = 1;
constexpr char kCreatorId[] = "NSTR";
constexpr u32 kCreatorRevision = 1;

// MADT structure types and flags.
constexpr u8 kMadtTypeLocalApic = 0;
constexpr u8 kMadtTypeIoApic = 1;
constexpr u8 kMadtTypeOverride = 2;
constexpr u8 kMadtTypeLocalApicNmi = 4;
constexpr u32 kMadtPcatCompat = 1u << 0;  // there is a pair of 8259As to mask
constexpr u32 kLocalApicEnabled = 1u << 0;
constexpr u16 kMpsActiveHigh = 0b01;
constexpr u16 kMpsLevelTriggered = 0b11 << 2;
constexpr u8 kAllProcessors = 0xFF;
constexpr u8 kLint1 = 1;
constexpr u8 kIsaBus = 0;
constexpr u8 kTimerIrq = 0;
constexpr u32 kTimerGsi = 2;  // the 8254 reaches I/O APIC pin 2, as on every PC

// FADT fields (ACPI 6.x table 5.33).
constexpr u32 kFadtWbinvd = 1u << 0;
constexpr u32 kFadtProcC1 = 1u << 2;
constexpr u32 kFadtPowerButton = 1u << 4;  // no fixed-feature power button
constexpr u32 kFadtSleepButton = 1u << 5;  // no fixed-feature sleep button
constexpr u32 kFadtTimerValExt = 1u << 8;  // the PM timer counts 32 bits
constexpr u32 kFadtResetRegSup = 1u << 10;
constexpr u32 kFadtFlags =
    kFadtWbinvd | kFadtProcC1 | kFadtPowerButton | kFadtSleepButton | kFadtTimerValExt | kFadtResetRegSup;
constexpr u16 kBootArchLegacyDevices = 1u << 0;  // ISA devices (PIT, RTC, COM1); no 8042 (bit 1 clear)
constexpr u16 kNoC2Latency = 101;                // above 100 us: C2 not supported
constexpr u16 kNoC3Latency = 1001;               // above 1000 us: C3 not supported
constexpr u8 kSpaceSystemIo = 1;
constexpr u8 kAccessByte = 1;
constexpr u8 kAccessWord = 2;
constexpr u8 kAccessDword = 3;

using namespace table_bytes;

// A fixed-width name field from a string literal (without its terminator).
template <usize N> void put_name(u8* at, const char (&name)[N]) { copy_bytes(at, name, N - 1); }

// The common header of every table but the RSDP and FACS (ACPI 6.x table 5.29); the checksum
// (byte 9) is set by finish_table once the body is written.
void put_header(u8* table, const char (&signature)[5], u32 length, u8 revision) {
    put_name(table, signature);
    put32(table + 4, length);
    put8(table + 8, revision);
    put_name(table + 10, kOemId);
    put_name(table + 16, kOemTableId);
    put32(table + 24, kOemRevision);
    put_name(table + 28, kCreatorId);
    put32(table + 32, kCreatorRevision);
}

void finish_table(u8* table, u32 length) {
    table[9] = 0;
    table[9] = checksum(table, length);
}

// A Generic Address Structure (ACPI 6.x table 5.25) in system I/O space.
void put_io_gas(u8* at, u8 bit_width, u8 access_size, u64 port) {
    put8(at, kSpaceSystemIo);
    put8(at + 1, bit_width);
    put8(at + 2, 0);
    put8(at + 3, access_size);
    put64(at + 4, port);
}

void write_rsdp(u8* rsdp, u64 xsdt) {
    put_name(rsdp, "RSD PTR ");
    put_name(rsdp + 9, kOemId);
    put8(rsdp + 15, kRsdpRevision);
    put32(rsdp + 16, 0);  // no RSDT: every table is in the XSDT
    put32(rsdp + 20, kRsdpLength);
    put64(rsdp + 24, xsdt);
    rsdp[8] = checksum(rsdp, kRsdpV1Length);
    rsdp[32] = checksum(rsdp, kRsdpLength);
}

void write_facs(u8* facs) {
    put_name(facs, "FACS");
    put32(facs + 4, kFacsLength);
    put8(facs + 32, kFacsVersion);
}

void write_xsdt(u8* xsdt, u64 fadt, u64 madt) {
    put_header(xsdt, "XSDT", kXsdtLength, kXsdtRevision);
    put64(xsdt + kHeaderLength, fadt);
    put64(xsdt + kHeaderLength + 8, madt);
    finish_table(xsdt, kXsdtLength);
}

// The PM blocks as 32-bit port fields and, with the same values, as X_ generic addresses.
void put_pm_blocks(u8* fadt, u16 pm_base) {
    u16 event = pm_base + kPm1EventOffset;
    u16 control = pm_base + kPm1ControlOffset;
    u16 timer = pm_base + kPmTimerOffset;
    put32(fadt + 56, event);  // PM1a_EVT_BLK
    put32(fadt + 64, control);
    put32(fadt + 76, timer);
    put8(fadt + 88, kPm1EventLength);
    put8(fadt + 89, kPm1ControlLength);
    put8(fadt + 91, kPmTimerLength);
    put_io_gas(fadt + 148, 8 * kPm1EventLength, kAccessWord, event);  // X_PM1a_EVT_BLK
    put_io_gas(fadt + 172, 8 * kPm1ControlLength, kAccessWord, control);
    put_io_gas(fadt + 208, 8 * kPmTimerLength, kAccessDword, timer);
}

void write_fadt(u8* fadt, const AcpiConfig& config, u64 facs, u64 dsdt) {
    put_header(fadt, "FACP", kFadtLength, kFadtRevision);
    put32(fadt + 36, static_cast<u32>(facs));  // FIRMWARE_CTRL, equal to X_FIRMWARE_CTRL
    put32(fadt + 40, static_cast<u32>(dsdt));  // DSDT, equal to X_DSDT
    put16(fadt + 46, config.sci_irq);          // SCI_INT; SMI_CMD stays 0: ACPI is always on
    put_pm_blocks(fadt, config.pm_base);
    put16(fadt + 96, kNoC2Latency);
    put16(fadt + 98, kNoC3Latency);
    put8(fadt + 108, config.rtc_century_index);
    put16(fadt + 109, kBootArchLegacyDevices);
    put32(fadt + 112, kFadtFlags);
    put_io_gas(fadt + 116, 8, kAccessByte, kAcpiResetPort);  // RESET_REG
    put8(fadt + 128, kAcpiResetValue);
    put8(fadt + 131, kFadtMinorRevision);
    put64(fadt + 132, facs);  // X_FIRMWARE_CTRL
    put64(fadt + 140, dsdt);  // X_DSDT
    finish_table(fadt, kFadtLength);
}

usize madt_length(u32 vcpus) { return kMadtFixedLength + vcpus * kMadtLocalApicLength + kMadtTailLength; }

u8* put_local_apic(u8* at, u8 processor) {
    put8(at, kMadtTypeLocalApic);
    put8(at + 1, kMadtLocalApicLength);
    put8(at + 2, processor);  // ACPI processor UID
    put8(at + 3, processor);  // APIC ID
    put32(at + 4, kLocalApicEnabled);
    return at + kMadtLocalApicLength;
}

u8* put_io_apic(u8* at, u8 id) {
    put8(at, kMadtTypeIoApic);
    put8(at + 1, kMadtIoApicLength);
    put8(at + 2, id);
    put32(at + 4, kIoApicAddress);
    put32(at + 8, 0);  // GSI base
    return at + kMadtIoApicLength;
}

u8* put_override(u8* at, u8 irq, u32 gsi, u16 flags) {
    put8(at, kMadtTypeOverride);
    put8(at + 1, kMadtOverrideLength);
    put8(at + 2, kIsaBus);
    put8(at + 3, irq);
    put32(at + 4, gsi);
    put16(at + 8, flags);
    return at + kMadtOverrideLength;
}

u8* put_local_apic_nmi(u8* at) {
    put8(at, kMadtTypeLocalApicNmi);
    put8(at + 1, kMadtLocalApicNmiLength);
    put8(at + 2, kAllProcessors);
    put16(at + 3, 0);  // polarity and trigger of the bus
    put8(at + 5, kLint1);
    return at + kMadtLocalApicNmiLength;
}

void write_madt(u8* madt, const AcpiConfig& config) {
    u32 length = static_cast<u32>(madt_length(config.vcpus));
    put_header(madt, "APIC", length, kMadtRevision);
    put32(madt + kHeaderLength, kLocalApicAddress);
    put32(madt + kHeaderLength + 4, kMadtPcatCompat);
    u8* at = madt + kMadtFixedLength;
    for (u32 i = 0; i < config.vcpus; ++i) at = put_local_apic(at, static_cast<u8>(i));
    at = put_io_apic(at, config.io_apic_id);
    at = put_override(at, kTimerIrq, kTimerGsi, 0);
    at = put_override(at, config.sci_irq, config.sci_irq, kMpsActiveHigh | kMpsLevelTriggered);
    put_local_apic_nmi(at);
    finish_table(madt, length);
}

Status<AcpiError> check_config(const AcpiConfig& config) {
    if (config.vcpus == 0) return fail(AcpiError::no_vcpus);
    if (config.vcpus > kAcpiMaxVcpus) return fail(AcpiError::too_many_vcpus);
    if (config.pm_base == 0 || u32{config.pm_base} + kPmPortCount > 0x10000) return fail(AcpiError::invalid_pm_base);
    if (config.sci_irq >= 16 || config.sci_irq == kTimerIrq || config.sci_irq == kTimerGsi)
        return fail(AcpiError::invalid_sci_irq);
    return {};
}

Status<AcpiError> check_placement(usize size, usize capacity, u64 guest_physical) {
    if (capacity < size) return fail(AcpiError::buffer_too_small);
    if (!is_aligned(guest_physical, 64)) return fail(AcpiError::misaligned_address);
    u64 end;
    if (!checked_add(guest_physical, size, end) || end > (u64{1} << 32)) return fail(AcpiError::above_4g);
    return {};
}

}  // namespace

const char* acpi_error_name(AcpiError error) {
    switch (error) {
    case AcpiError::no_vcpus: return "no vCPUs";
    case AcpiError::too_many_vcpus: return "more vCPUs than the MADT's APIC IDs";
    case AcpiError::buffer_too_small: return "buffer too small for the tables";
    case AcpiError::misaligned_address: return "tables' address not 64-byte aligned";
    case AcpiError::above_4g: return "tables would lie above 4 GiB";
    case AcpiError::invalid_pm_base: return "PM registers' base port out of range";
    case AcpiError::invalid_sci_irq: return "SCI IRQ not a free ISA IRQ";
    }
    return "unknown ACPI error";
}

usize acpi_tables_size(u32 vcpus) { return kMadtOffset + madt_length(vcpus); }

Result<AcpiLayout, AcpiError> build_acpi_tables(const AcpiConfig& config, u8* out, usize capacity, u64 guest_physical) {
    NESTOR_TRY_STATUS(check_config(config));
    usize size = acpi_tables_size(config.vcpus);
    NESTOR_TRY_STATUS(check_placement(size, capacity, guest_physical));

    AcpiLayout layout{guest_physical + kRsdpOffset,
                      guest_physical + kXsdtOffset,
                      guest_physical + kFadtOffset,
                      guest_physical + kFacsOffset,
                      guest_physical + kDsdtOffset,
                      guest_physical + kMadtOffset,
                      size};
    fill_bytes(out, 0, size);
    write_rsdp(out + kRsdpOffset, layout.xsdt);
    write_facs(out + kFacsOffset);
    write_xsdt(out + kXsdtOffset, layout.fadt, layout.madt);
    write_fadt(out + kFadtOffset, config, layout.facs, layout.dsdt);
    copy_bytes(out + kDsdtOffset, dsdt_aml_code, kDsdtLength);
    write_madt(out + kMadtOffset, config);
    return layout;
}

}  // namespace nestor::pc
