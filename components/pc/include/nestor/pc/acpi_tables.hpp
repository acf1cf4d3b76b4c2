// The ACPI tables of the PC platform, written into a buffer the platform places in guest memory
// (at 0xE0000, in the BIOS area the guest's RSDP search scans): RSDP (revision 2), XSDT, FADT
// (revision 6), FACS, DSDT (compiled from components/pc/acpi/dsdt.asl at build time) and MADT.
// They describe the platform's local APICs, I/O APIC, interrupt overrides, the PM registers
// (acpi_pm.hpp) and the reset register (port 0xCF9). Layout from ACPI 6.x chapter 5; docs/acpi.md
// lists the tables and their offsets.
#pragma once

#include "nestor/arch/apic_regs.hpp"
#include "nestor/lib/result.hpp"

namespace nestor::pc {

// The interrupt controllers' architectural MMIO bases (Intel SDM vol. 3 section 11.4.1; the
// 82093AA I/O APIC datasheet).
inline constexpr u32 kLocalApicAddress = apic_regs::kXapicBase;
inline constexpr u32 kIoApicAddress = apic_regs::kIoApicBase;

// The FADT's RESET_REG: the reset control register at port 0xCF9, value 0x06 (a full reset).
inline constexpr u16 kAcpiResetPort = 0xCF9;
inline constexpr u8 kAcpiResetValue = 0x06;

// Where the platform places the tables: 0xE0000-0xFFFFF is where a guest looks for the RSDP.
inline constexpr u64 kAcpiTablesAddress = 0xE0000;

// The most processors a MADT of xAPIC entries describes: APIC IDs and processor UIDs are bytes,
// and 0xFF means "all processors" (the LAPIC NMI entry) or broadcast.
inline constexpr u32 kAcpiMaxVcpus = 255;

struct AcpiConfig {
    u32 vcpus = 1;  // processor i has ACPI processor UID i and APIC ID i
    u8 io_apic_id = 0;
    u16 pm_base = 0x600;       // the PM registers' first port (AcpiPm's base)
    u8 sci_irq = 9;            // ISA IRQ of the SCI, level-triggered and active-high
    u8 rtc_century_index = 0;  // the CMOS index of the century, 0 when the RTC has none
};

enum class AcpiError : u8 {
    no_vcpus,
    too_many_vcpus,      // above kAcpiMaxVcpus
    buffer_too_small,    // capacity below acpi_tables_size(vcpus)
    misaligned_address,  // guest_physical not 64-byte aligned (the FACS's alignment)
    above_4g,            // the tables would not all lie below 4 GiB (the 32-bit pointers)
    invalid_pm_base,     // zero, or the PM registers would run past port 0xFFFF
    invalid_sci_irq,     // not an ISA IRQ, or IRQ 0 or 2 (the timer's override)
};

const char* acpi_error_name(AcpiError error);

// Where each table landed (guest-physical) and how many bytes of the buffer were written.
struct AcpiLayout {
    u64 rsdp;
    u64 xsdt;
    u64 fadt;
    u64 facs;
    u64 dsdt;
    u64 madt;
    usize size;
};

// Bytes the tables take for `vcpus` processors (the MADT grows by 8 per processor).
usize acpi_tables_size(u32 vcpus);

// Writes every table into `out`, which the caller will place at guest-physical `guest_physical`;
// the RSDP is at its start. Nothing is written when refused.
Result<AcpiLayout, AcpiError> build_acpi_tables(const AcpiConfig& config, u8* out, usize capacity, u64 guest_physical);

}  // namespace nestor::pc
