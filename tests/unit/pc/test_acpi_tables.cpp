#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "nestor/pc/acpi_pm.hpp"
#include "nestor/pc/acpi_tables.hpp"
#include "table_test_support.hpp"

using namespace nestor;
using namespace nestor::pc;
using namespace nestor::pc::table_test;

namespace {

constexpr usize kCapacity = 8192;
constexpr u64 kBase = kAcpiTablesAddress;

std::string text(const u8* at, usize length) { return std::string(reinterpret_cast<const char*>(at), length); }

// The tables built for `vcpus` processors into a buffer of 0xAA, as the guest would see them.
struct Tables {
    explicit Tables(u32 vcpus, u16 pm_base = kDefaultPmBase) : buffer(kCapacity, 0xAA) {
        AcpiConfig config;
        config.vcpus = vcpus;
        config.pm_base = pm_base;
        auto built = build_acpi_tables(config, buffer.data(), buffer.size(), kBase);
        REQUIRE(built.ok());
        layout = built.value();
    }
    const u8* at(u64 guest_physical) const {
        REQUIRE(guest_physical >= kBase);
        REQUIRE(guest_physical - kBase < layout.size);
        return buffer.data() + (guest_physical - kBase);
    }
    // A table with its header checked: signature, a length within the tables, a zero checksum.
    const u8* table(u64 guest_physical, const char* signature) const {
        const u8* header = at(guest_physical);
        CHECK(text(header, 4) == signature);
        u32 length = le32(header + 4);
        REQUIRE(length >= 36);
        REQUIRE(guest_physical - kBase + length <= layout.size);
        CHECK(byte_sum(header, length) == 0);
        CHECK(text(header + 10, 6) == "NESTOR");
        return header;
    }

    std::vector<u8> buffer;
    AcpiLayout layout{};
};

struct MadtCounts {
    int local_apics = 0;
    int io_apics = 0;
    int overrides = 0;
    int nmis = 0;
    int others = 0;
};

MadtCounts walk_madt(const u8* madt) {
    MadtCounts counts;
    u32 length = le32(madt + 4);
    for (u32 offset = 44; offset < length;) {
        const u8* entry = madt + offset;
        REQUIRE(entry[1] >= 2);
        switch (entry[0]) {
        case 0:
            CHECK(entry[1] == 8);
            CHECK(entry[2] == counts.local_apics);  // processor UID
            CHECK(entry[3] == counts.local_apics);  // APIC ID
            CHECK(le32(entry + 4) == 1);            // enabled
            ++counts.local_apics;
            break;
        case 1:
            CHECK(entry[1] == 12);
            CHECK(le32(entry + 4) == kIoApicAddress);
            CHECK(le32(entry + 8) == 0);
            ++counts.io_apics;
            break;
        case 2:
            CHECK(entry[1] == 10);
            CHECK(entry[2] == 0);  // ISA
            if (entry[3] == 0) {
                CHECK(le32(entry + 4) == 2);
                CHECK(le16(entry + 8) == 0);
            } else {
                CHECK(entry[3] == 9);
                CHECK(le32(entry + 4) == 9);
                CHECK(le16(entry + 8) == 0x000D);  // active-high, level-triggered
            }
            ++counts.overrides;
            break;
        case 4:
            CHECK(entry[1] == 6);
            CHECK(entry[2] == 0xFF);  // all processors
            CHECK(entry[5] == 1);     // LINT1
            ++counts.nmis;
            break;
        default: ++counts.others;
        }
        offset += entry[1];
        CHECK(offset <= length);
    }
    return counts;
}

usize count_of(const std::string& haystack, const std::string& needle) {
    usize count = 0;
    for (usize at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++count;
    return count;
}

// Lines of iasl's output that report an error or a warning.
std::string complaints(const std::string& log) {
    std::string found;
    std::istringstream lines(log);
    for (std::string line; std::getline(lines, line);)
        if (line.find("Error") != std::string::npos || line.find("Warning") != std::string::npos) found += line + "\n";
    return found;
}

// Writes a table to `dir/name.dat`, disassembles it with iasl and returns the disassembly.
std::string disassemble(const TempDir& dir, const char* name, const u8* table, usize length) {
    std::string base = dir.path + "/" + name;
    {
        std::ofstream out(base + ".dat", std::ios::binary);
        out.write(reinterpret_cast<const char*>(table), static_cast<std::streamsize>(length));
    }
    std::string command = "cd '" + dir.path + "' && iasl -d " + name + ".dat > " + name + ".log 2>&1";
    int status = std::system(command.c_str());
    std::string log = read_file(base + ".log");
    INFO(name << ": iasl said:\n" << log);
    REQUIRE(status == 0);  // also when iasl is missing (the shell's 127): this test needs acpica-tools
    CHECK(complaints(log).empty());
    std::string disassembly = read_file(base + ".dsl");
    REQUIRE_FALSE(disassembly.empty());
    INFO(name << ": disassembly:\n" << disassembly);
    CHECK(complaints(disassembly).empty());
    return disassembly;
}

}  // namespace

TEST_CASE("pc.acpi.rsdp_is_found_and_checksummed") {
    Tables tables(1);
    CHECK(tables.layout.rsdp == kBase);
    CHECK(tables.layout.rsdp % 16 == 0);
    const u8* rsdp = tables.at(tables.layout.rsdp);
    CHECK(text(rsdp, 8) == "RSD PTR ");
    CHECK(byte_sum(rsdp, 20) == 0);
    CHECK(byte_sum(rsdp, 36) == 0);
    CHECK(text(rsdp + 9, 6) == "NESTOR");
    CHECK(rsdp[15] == 2);
    CHECK(le32(rsdp + 20) == 36);
    CHECK(le64(rsdp + 24) == tables.layout.xsdt);
    CHECK(tables.layout.size == acpi_tables_size(1));
    CHECK(tables.buffer[tables.layout.size] == 0xAA);  // nothing written past the tables
}

TEST_CASE("pc.acpi.xsdt_points_at_fadt_and_madt") {
    Tables tables(2);
    const u8* xsdt = tables.table(tables.layout.xsdt, "XSDT");
    u32 length = le32(xsdt + 4);
    REQUIRE((length - 36) % 8 == 0);
    REQUIRE((length - 36) / 8 == 2);
    CHECK(le64(xsdt + 36) == tables.layout.fadt);
    CHECK(le64(xsdt + 44) == tables.layout.madt);
    tables.table(le64(xsdt + 36), "FACP");
    tables.table(le64(xsdt + 44), "APIC");
}

TEST_CASE("pc.acpi.fadt_describes_the_pm_registers") {
    Tables tables(1, 0xB000);
    const u8* fadt = tables.table(tables.layout.fadt, "FACP");
    CHECK(le32(fadt + 4) == 276);
    CHECK(fadt[8] == 6);
    CHECK(le16(fadt + 46) == 9);  // SCI_INT
    CHECK(le32(fadt + 48) == 0);  // no SMI_CMD: ACPI is always on
    CHECK(le32(fadt + 56) == 0xB000);
    CHECK(le32(fadt + 64) == 0xB004);
    CHECK(le32(fadt + 76) == 0xB008);
    CHECK(fadt[88] == 4);
    CHECK(fadt[89] == 2);
    CHECK(fadt[91] == 4);
    CHECK(fadt[92] == 0);  // no GPE block
    // The X_ blocks: system I/O, the same ports, the same widths.
    struct Block {
        usize offset;
        u64 port;
        u8 bits;
    };
    for (Block block : {Block{148, 0xB000, 32}, Block{172, 0xB004, 16}, Block{208, 0xB008, 32}}) {
        CHECK(fadt[block.offset] == 1);
        CHECK(fadt[block.offset + 1] == block.bits);
        CHECK(le64(fadt + block.offset + 4) == block.port);
    }
    u32 flags = le32(fadt + 112);
    CHECK(flags == ((1u << 0) | (1u << 2) | (1u << 4) | (1u << 5) | (1u << 8) | (1u << 10)));
    CHECK(le16(fadt + 109) == 1);  // LEGACY_DEVICES, no 8042
    CHECK(fadt[116] == 1);         // RESET_REG in system I/O
    CHECK(le64(fadt + 120) == 0xCF9);
    CHECK(fadt[128] == 0x06);
}

TEST_CASE("pc.acpi.fadt_points_at_dsdt_and_facs") {
    Tables tables(1);
    const u8* fadt = tables.table(tables.layout.fadt, "FACP");
    u64 facs = le64(fadt + 132);
    u64 dsdt = le64(fadt + 140);
    CHECK(le32(fadt + 36) == facs);
    CHECK(le32(fadt + 40) == dsdt);
    CHECK(facs == tables.layout.facs);
    CHECK(dsdt == tables.layout.dsdt);
    CHECK(facs % 64 == 0);
    const u8* facs_table = tables.at(facs);
    CHECK(text(facs_table, 4) == "FACS");
    CHECK(le32(facs_table + 4) == 64);
    const u8* dsdt_table = tables.table(dsdt, "DSDT");
    // \_S5 as Package {5, 5, 0, 0}: NameOp "_S5_" PackageOp, length, 4 elements, BytePrefix 5 twice.
    std::string aml = text(dsdt_table, le32(dsdt_table + 4));
    usize s5 = aml.find("_S5_");
    REQUIRE(s5 != std::string::npos);
    CHECK(aml.substr(s5 + 4, 8) == std::string("\x12\x08\x04\x0A\x05\x0A\x05\x00", 8));
    CHECK(static_cast<u8>(aml[s5 + 6]) == 4);
    CHECK(static_cast<u8>(aml[s5 + 8]) == kSleepTypeS5);
}

TEST_CASE("pc.acpi.madt_lists_every_processor") {
    for (u32 vcpus : {1u, 2u, 4u, kAcpiMaxVcpus}) {
        INFO("vcpus " << vcpus);
        Tables tables(vcpus);
        const u8* madt = tables.table(tables.layout.madt, "APIC");
        CHECK(le32(madt + 4) == 44 + 8 * vcpus + 12 + 2 * 10 + 6);
        CHECK(le32(madt + 36) == kLocalApicAddress);
        CHECK(le32(madt + 40) == 1);  // PCAT_COMPAT
        MadtCounts counts = walk_madt(madt);
        CHECK(counts.local_apics == static_cast<int>(vcpus));
        CHECK(counts.io_apics == 1);
        CHECK(counts.overrides == 2);
        CHECK(counts.nmis == 1);
        CHECK(counts.others == 0);
        CHECK(tables.layout.size == acpi_tables_size(vcpus));
        CHECK(tables.layout.madt + le32(madt + 4) == kBase + tables.layout.size);
    }
}

TEST_CASE("pc.acpi.refusals") {
    std::vector<u8> buffer(kCapacity, 0xAA);
    AcpiConfig config;
    auto refused = [&](const AcpiConfig& with, usize capacity, u64 address) {
        auto built = build_acpi_tables(with, buffer.data(), capacity, address);
        REQUIRE_FALSE(built.ok());
        CHECK(acpi_error_name(built.error()) != nullptr);
        return built.error();
    };
    config.vcpus = 0;
    CHECK(refused(config, kCapacity, kBase) == AcpiError::no_vcpus);
    config.vcpus = kAcpiMaxVcpus + 1;
    CHECK(refused(config, kCapacity, kBase) == AcpiError::too_many_vcpus);
    config.vcpus = 4;
    CHECK(refused(config, acpi_tables_size(4) - 1, kBase) == AcpiError::buffer_too_small);
    CHECK(refused(config, 0, kBase) == AcpiError::buffer_too_small);
    CHECK(refused(config, kCapacity, kBase + 16) == AcpiError::misaligned_address);
    CHECK(refused(config, kCapacity, (u64{1} << 32) - 64) == AcpiError::above_4g);
    CHECK(refused(config, kCapacity, ~u64{0} & ~u64{63}) == AcpiError::above_4g);
    AcpiConfig bad_pm = config;
    bad_pm.pm_base = 0xFFF8;
    CHECK(refused(bad_pm, kCapacity, kBase) == AcpiError::invalid_pm_base);
    bad_pm.pm_base = 0;
    CHECK(refused(bad_pm, kCapacity, kBase) == AcpiError::invalid_pm_base);
    for (u8 irq : {u8{0}, u8{2}, u8{16}, u8{255}}) {
        AcpiConfig bad_sci = config;
        bad_sci.sci_irq = irq;
        CHECK(refused(bad_sci, kCapacity, kBase) == AcpiError::invalid_sci_irq);
    }
    for (u8 byte : buffer) REQUIRE(byte == 0xAA);  // nothing written

    auto exact = build_acpi_tables(config, buffer.data(), acpi_tables_size(4), kBase);
    CHECK(exact.ok());
    CHECK(kAcpiTablesAddress + acpi_tables_size(kAcpiMaxVcpus) <= 0x100000);  // fits the BIOS area
}

TEST_CASE("pc.acpi.iasl_disassembles_every_table") {
    Tables tables(4);
    TempDir dir;
    auto length_of = [](const u8* table) { return le32(table + 4); };
    const u8* xsdt = tables.at(tables.layout.xsdt);
    const u8* fadt = tables.at(tables.layout.fadt);
    const u8* facs = tables.at(tables.layout.facs);
    const u8* dsdt = tables.at(tables.layout.dsdt);
    const u8* madt = tables.at(tables.layout.madt);

    // No RSDP: iasl does not load one from a file (ACPICA's acfileio.c), so
    // pc.acpi.rsdp_is_found_and_checksummed checks it field by field.
    std::string xsdt_dsl = disassemble(dir, "xsdt", xsdt, length_of(xsdt));
    CHECK(count_of(xsdt_dsl, "ACPI Table Address") == 2);

    std::string fadt_dsl = disassemble(dir, "facp", fadt, length_of(fadt));
    CHECK(fadt_dsl.find("PM1A Event Block Address : 00000600") != std::string::npos);
    CHECK(fadt_dsl.find("PM1A Control Block Address : 00000604") != std::string::npos);
    CHECK(fadt_dsl.find("PM Timer Block Address : 00000608") != std::string::npos);
    CHECK(fadt_dsl.find("SCI Interrupt : 0009") != std::string::npos);
    CHECK(fadt_dsl.find("Reset Register Supported (V2) : 1") != std::string::npos);
    CHECK(fadt_dsl.find("Address : 0000000000000CF9") != std::string::npos);

    std::string facs_dsl = disassemble(dir, "facs", facs, length_of(facs));
    CHECK(facs_dsl.find("\"FACS\"") != std::string::npos);

    std::string dsdt_dsl = disassemble(dir, "dsdt", dsdt, length_of(dsdt));
    CHECK(dsdt_dsl.find("_S5") != std::string::npos);

    std::string madt_dsl = disassemble(dir, "apic", madt, length_of(madt));
    CHECK(count_of(madt_dsl, "Processor Local APIC") == 4);
    CHECK(count_of(madt_dsl, "Interrupt Source Override") == 2);
    CHECK(count_of(madt_dsl, "I/O APIC") == 1);
    CHECK(count_of(madt_dsl, "Local APIC NMI") == 1);
}
