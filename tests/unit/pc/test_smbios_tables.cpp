#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "nestor/pc/smbios_tables.hpp"
#include "table_test_support.hpp"

using namespace nestor;
using namespace nestor::pc;
using namespace nestor::pc::table_test;

namespace {

constexpr usize kCapacity = 512;

// SHA-256("Nestor domain test-domain")'s first 16 bytes with version 8 and the RFC's variant set
// (computed apart, by Python's hashlib): 953338dd-6fa9-81fe-9aae-d36368e6e8bf.
constexpr char kName[] = "test-domain";
constexpr MachineUuid kTestDomainUuid{
    {0x95, 0x33, 0x38, 0xdd, 0x6f, 0xa9, 0x81, 0xfe, 0x9a, 0xae, 0xd3, 0x63, 0x68, 0xe6, 0xe8, 0xbf}};

std::vector<u8> built(u64 address = kSmbiosAddress) {
    std::vector<u8> out(kCapacity, 0xAA);
    auto layout = build_smbios_tables(out.data(), out.size(), address, kTestDomainUuid);
    REQUIRE(layout);
    REQUIRE(layout->entry_point == address);
    REQUIRE(layout->size == smbios_tables_size());
    out.resize(layout->size);
    return out;
}

// One structure of the table: its type, formatted part and strings.
struct Structure {
    u8 type;
    u8 length;
    u16 handle;
    const u8* formatted;
    std::vector<std::string> strings;
    std::string string(u8 number) const { return number == 0 ? "" : strings.at(number - 1); }
};

// Walks the structure table as a guest's parser does; fails the test on a structure that runs
// past the table.
std::vector<Structure> walk(const u8* table, usize size) {
    std::vector<Structure> found;
    usize at = 0;
    while (at < size) {
        REQUIRE(at + 4 <= size);
        Structure s{table[at], table[at + 1], le16(table + at + 2), table + at, {}};
        REQUIRE(s.length >= 4);
        usize p = at + s.length;
        for (;;) {
            REQUIRE(p < size);
            std::string text;
            while (p < size && table[p] != 0) text += static_cast<char>(table[p++]);
            REQUIRE(p < size);
            ++p;
            if (text.empty()) {
                if (s.strings.empty()) {  // no strings: the set is two zeros
                    REQUIRE(p < size);
                    REQUIRE(table[p] == 0);
                    ++p;
                }
                break;
            }
            s.strings.push_back(text);
        }
        found.push_back(s);
        at = p;
        if (s.type == 127) break;
    }
    REQUIRE(at == size);
    return found;
}

}  // namespace

TEST_CASE("pc.smbios.entry_point_is_the_64_bit_one_with_its_checksum") {
    std::vector<u8> t = built();
    CHECK(std::string(reinterpret_cast<const char*>(t.data()), 5) == "_SM3_");
    CHECK(t[6] == 0x18);  // its length
    CHECK(t[7] == 3);     // SMBIOS 3.0
    CHECK(t[8] == 0);
    CHECK(t[10] == 1);  // entry point revision
    CHECK(byte_sum(t.data(), 0x18) == 0);
    CHECK(le64(t.data() + 0x10) == kSmbiosAddress + 0x20);
    CHECK(le32(t.data() + 0x0C) == t.size() - 0x20);  // the table's size, as its maximum
    for (usize i = 0x18; i < 0x20; ++i) CHECK(t[i] == 0);
}

TEST_CASE("pc.smbios.table_holds_bios_system_and_end_of_table") {
    std::vector<u8> t = built();
    std::vector<Structure> s = walk(t.data() + 0x20, t.size() - 0x20);
    REQUIRE(s.size() == 3);
    CHECK(s[0].type == 0);
    CHECK(s[1].type == 1);
    CHECK(s[2].type == 127);
    CHECK(s[0].handle != s[1].handle);
    CHECK(s[1].handle != s[2].handle);
    CHECK(s[2].length == 4);
    CHECK(s[2].strings.empty());
}

TEST_CASE("pc.smbios.bios_information_names_the_vendor_a_date_and_a_virtual_machine") {
    std::vector<u8> t = built();
    const Structure bios = walk(t.data() + 0x20, t.size() - 0x20).at(0);
    REQUIRE(bios.length == 0x18);
    CHECK(bios.string(bios.formatted[0x04]) == kSmbiosVendor);
    CHECK(bios.string(bios.formatted[0x05]) == kSmbiosBiosVersion);
    const std::string date = bios.string(bios.formatted[0x08]);
    REQUIRE(date.size() == 10);  // MM/DD/YYYY
    CHECK(date[2] == '/');
    CHECK(date[5] == '/');
    CHECK(std::stoi(date.substr(6)) >= 2001);  // Linux then trusts PCI mechanism #1 unprobed
    CHECK(le16(bios.formatted + 0x06) == kSmbiosAddress >> 4);
    CHECK(le64(bios.formatted + 0x0A) == u64{1} << 3);  // characteristics not supported
    CHECK((bios.formatted[0x13] & (1u << 4)) != 0);     // a virtual machine
}

TEST_CASE("pc.smbios.system_information_names_the_maker_and_product") {
    std::vector<u8> t = built();
    const Structure system = walk(t.data() + 0x20, t.size() - 0x20).at(1);
    REQUIRE(system.length == 0x1B);
    CHECK(system.string(system.formatted[0x04]) == kSmbiosVendor);
    CHECK(system.string(system.formatted[0x05]) == kSmbiosProduct);
    CHECK(system.formatted[0x06] == 0);  // no version string
    // The UUID, its first three fields little-endian (SMBIOS 2.6 and later).
    const std::vector<u8> uuid(system.formatted + 0x08, system.formatted + 0x18);
    CHECK(uuid == std::vector<u8>{0xdd, 0x38, 0x33, 0x95, 0xa9, 0x6f, 0xfe, 0x81, 0x9a, 0xae, 0xd3, 0x63, 0x68, 0xe6,
                                  0xe8, 0xbf});
    CHECK(system.formatted[0x18] == 0x06);  // woken by the power switch
}

TEST_CASE("pc.smbios.domain_uuid_is_a_version_8_uuid_of_the_name_alone") {
    const MachineUuid uuid = domain_uuid(kName, sizeof(kName) - 1);
    CHECK(std::vector<u8>(uuid.bytes, uuid.bytes + 16) ==
          std::vector<u8>(kTestDomainUuid.bytes, kTestDomainUuid.bytes + 16));
    CHECK(uuid.bytes[6] >> 4 == 8);       // version 8
    CHECK((uuid.bytes[8] >> 6) == 0b10);  // the RFC's variant
    const MachineUuid again = domain_uuid(kName, sizeof(kName) - 1);
    CHECK(std::vector<u8>(again.bytes, again.bytes + 16) == std::vector<u8>(uuid.bytes, uuid.bytes + 16));
    const MachineUuid other = domain_uuid("test-domain2", 12);
    CHECK(std::vector<u8>(other.bytes, other.bytes + 16) != std::vector<u8>(uuid.bytes, uuid.bytes + 16));
    const MachineUuid prefix = domain_uuid(kName, 4);  // "test": the length is the name's
    CHECK(std::vector<u8>(prefix.bytes, prefix.bytes + 16) != std::vector<u8>(uuid.bytes, uuid.bytes + 16));
}

TEST_CASE("pc.smbios.refuses_a_small_buffer_or_a_misaligned_address_writing_nothing") {
    std::vector<u8> out(kCapacity, 0xAA);
    auto small = build_smbios_tables(out.data(), smbios_tables_size() - 1, kSmbiosAddress, kTestDomainUuid);
    REQUIRE_FALSE(small);
    CHECK(small.error() == SmbiosError::buffer_too_small);
    auto misaligned = build_smbios_tables(out.data(), out.size(), kSmbiosAddress + 8, kTestDomainUuid);
    REQUIRE_FALSE(misaligned);
    CHECK(misaligned.error() == SmbiosError::misaligned_address);
    for (u8 b : out) CHECK(b == 0xAA);
    CHECK(std::string(smbios_error_name(SmbiosError::buffer_too_small)) !=
          smbios_error_name(SmbiosError::misaligned_address));
}

// dmidecode (Debian's dmidecode) reads the tables from a dump file laid out as its --dump-bin
// writes one: the entry point at offset 0 pointing at the table at offset 32, which is where the
// tables built for address 0 put it.
TEST_CASE("pc.smbios.dmidecode_reads_the_tables") {
    std::vector<u8> t = built(0);
    TempDir dir;
    {
        std::ofstream out(dir.path + "/smbios.bin", std::ios::binary);
        out.write(reinterpret_cast<const char*>(t.data()), static_cast<std::streamsize>(t.size()));
    }
    std::string command = "dmidecode --from-dump '" + dir.path + "/smbios.bin' > '" + dir.path + "/out.txt' 2>&1";
    int status = std::system(command.c_str());
    std::string output = read_file(dir.path + "/out.txt");
    INFO("dmidecode said:\n" << output);
    REQUIRE(status == 0);  // also when dmidecode is missing (the shell's 127): this test needs it
    CHECK(output.find("SMBIOS 3.0.0 present.") != std::string::npos);
    CHECK(output.find("BIOS Information") != std::string::npos);
    CHECK(output.find("Vendor: Nestor") != std::string::npos);
    CHECK(output.find(std::string("Release Date: ") + kSmbiosBiosDate) != std::string::npos);
    CHECK(output.find("System is a virtual machine") != std::string::npos);
    CHECK(output.find("System Information") != std::string::npos);
    CHECK(output.find("Manufacturer: Nestor") != std::string::npos);
    CHECK(output.find("Product Name: Nestor PC") != std::string::npos);
    CHECK(output.find("UUID: 953338dd-6fa9-81fe-9aae-d36368e6e8bf") != std::string::npos);
    CHECK(output.find("End Of Table") != std::string::npos);
    for (const char* complaint : {"Invalid", "invalid", "Wrong", "wrong", "corrupt", "Bad", "truncated"})
        CHECK(output.find(complaint) == std::string::npos);
}
