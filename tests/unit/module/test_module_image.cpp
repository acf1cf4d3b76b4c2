// The component loader's ELF checks and relocation on a fake shared object built here: one of
// each relocation the loader applies, then each way of corrupting it refused with its own error
// (a table that must cover the whole error enum), and random corruption that must never crash it
// nor write outside the image.
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "nestor/module/module_image.hpp"

using namespace nestor::module;
using Bytes = std::vector<std::uint8_t>;

namespace {

constexpr std::uint64_t kBase = 0xFFFFFE0000000000ull;
constexpr std::uint64_t kKernelFunction = 0xFFFFFFFF80123450ull;
const Export kExports[] = {{"kernel_function", kKernelFunction}, {"other_function", 0x1234}};
const ExportTable kExportTable{kExports, 2};

// Offsets in the fake module: page 0 read-only (headers, dynamic symbols, hash, strings,
// relocations), page 1 text, page 2 data (relocation targets, the dynamic section).
constexpr std::size_t kPhoff = 64, kPhnum = 5, kSymtab = 0x200, kHash = 0x300, kStrtab = 0x340, kRela = 0x400;
constexpr std::size_t kText = 0x1000, kData = 0x2000, kDynamic = 0x2100;
constexpr std::size_t kRelaCount = 4;

struct FakeModule {
    Bytes bytes = Bytes(0x3000, 0);

    void put(std::size_t at, std::uint64_t value, int size) {
        for (int i = 0; i < size; ++i) bytes.at(at + i) = static_cast<std::uint8_t>(value >> (8 * i));
    }
    std::size_t ph(int index) const { return kPhoff + std::size_t{56} * index; }
    void program_header(int index, std::uint32_t type, std::uint32_t flags, std::uint64_t offset, std::uint64_t size) {
        std::size_t at = ph(index);
        put(at, type, 4), put(at + 4, flags, 4), put(at + 8, offset, 8), put(at + 16, offset, 8);
        put(at + 24, offset, 8), put(at + 32, size, 8), put(at + 40, size, 8), put(at + 48, 0x1000, 8);
    }
    void symbol(int index, std::uint32_t name, std::uint16_t section, std::uint64_t value) {
        std::size_t at = kSymtab + std::size_t{24} * index;
        put(at, name, 4), put(at + 4, 0x12, 1), put(at + 6, section, 2), put(at + 8, value, 8);
    }
    std::size_t rela_at(int index) const { return kRela + std::size_t{24} * index; }
    void rela(int index, std::uint64_t offset, std::uint32_t type, std::uint32_t symbol, std::uint64_t addend) {
        std::size_t at = rela_at(index);
        put(at, offset, 8), put(at + 8, (std::uint64_t{symbol} << 32) | type, 8), put(at + 16, addend, 8);
    }
    std::size_t dynamic_entry(int index) const { return kDynamic + std::size_t{16} * index; }
    void dynamic(int index, std::uint64_t tag, std::uint64_t value) {
        put(dynamic_entry(index), tag, 8), put(dynamic_entry(index) + 8, value, 8);
    }

    FakeModule() {
        const std::uint8_t ident[] = {0x7f, 'E', 'L', 'F', 2, 1, 1};
        std::memcpy(bytes.data(), ident, sizeof(ident));
        put(16, 3, 2), put(18, 62, 2), put(20, 1, 4), put(32, kPhoff, 8), put(52, 64, 2), put(54, 56, 2);
        put(56, kPhnum, 2);
        program_header(0, 1, 4, 0, 0x1000);               // PT_LOAD R
        program_header(1, 1, 5, kText, 0x10);             // PT_LOAD R X
        program_header(2, 1, 6, kData, 0x200);            // PT_LOAD R W
        program_header(3, 2, 6, kDynamic, 16 * 12);       // PT_DYNAMIC
        program_header(4, 0x6474e552, 4, kData, 0x1000);  // PT_GNU_RELRO: the first data page
        const char strings[] = "\0kernel_function\0nestor_entry\0";
        std::memcpy(bytes.data() + kStrtab, strings, sizeof(strings));
        symbol(1, 1, 0, 0);                      // kernel_function: undefined
        symbol(2, 17, 7, kData + 0x10);          // nestor_entry: defined in the data
        put(kHash, 1, 4), put(kHash + 4, 3, 4);  // nbucket 1, nchain 3 (the symbol count)
        rela(0, kData + 0x00, 8, 0, kText);      // R_X86_64_RELATIVE
        rela(1, kData + 0x08, 6, 1, 0);          // R_X86_64_GLOB_DAT kernel_function
        rela(2, kData + 0x10, 1, 2, 4);          // R_X86_64_64 nestor_entry + 4
        rela(3, kData + 0x18, 7, 1, 0);          // R_X86_64_JUMP_SLOT kernel_function (in DT_JMPREL)
        bytes[kText] = 0xc3;
        dynamic(0, 6, kSymtab), dynamic(1, 11, 24), dynamic(2, 5, kStrtab), dynamic(3, 10, sizeof(strings));
        dynamic(4, 4, kHash), dynamic(5, 7, kRela), dynamic(6, 8, 24 * (kRelaCount - 1)), dynamic(7, 9, 24);
        dynamic(8, 23, rela_at(3)), dynamic(9, 2, 24), dynamic(10, 20, 7), dynamic(11, 30, 8);  // BIND_NOW
    }
};

struct Outcome {
    bool ok;
    ModuleError error;
    std::string symbol;
    std::uint64_t entry;
    Bytes image;
    ModulePlan plan;
};

Outcome load(const Bytes& file) {
    auto plan = plan_module(file.data(), file.size());
    if (!plan) return {false, plan.error().error, plan.error().symbol, 0, {}, {}};
    Bytes image(plan->image_bytes, 0);
    auto loaded = load_module(file.data(), file.size(), *plan, image.data(), kBase, kExportTable, "nestor_entry");
    if (!loaded) return {false, loaded.error().error, loaded.error().symbol, 0, {}, {}};
    return {true, ModuleError::too_small, "", *loaded, image, *plan};
}

std::uint64_t word(const Bytes& image, std::size_t at) {
    std::uint64_t value = 0;
    std::memcpy(&value, image.data() + at, 8);
    return value;
}

}  // namespace

TEST_CASE("module_image.loads_and_relocates") {
    Outcome out = load(FakeModule().bytes);
    REQUIRE(out.ok);
    CHECK(out.entry == kBase + kData + 0x10);
    CHECK(word(out.image, kData + 0x00) == kBase + kText);
    CHECK(word(out.image, kData + 0x08) == kKernelFunction);
    CHECK(word(out.image, kData + 0x10) == kBase + kData + 0x10 + 4);
    CHECK(word(out.image, kData + 0x18) == kKernelFunction);
    CHECK(out.image[kText] == 0xc3);
    REQUIRE(out.plan.image_bytes == 0x3000);
    REQUIRE(out.plan.region_count == 3);
    CHECK(out.plan.regions[0].offset == 0);
    CHECK(out.plan.regions[0].access == PageAccess::read);
    CHECK(out.plan.regions[1].offset == kText);
    CHECK(out.plan.regions[1].access == PageAccess::read_execute);
    CHECK(out.plan.regions[2].offset == kData);
    CHECK(out.plan.regions[2].bytes == 0x1000);
    CHECK(out.plan.regions[2].access == PageAccess::read);  // RELRO: read-only once relocated
}

TEST_CASE("module_image.each_corruption_refused_by_name") {
    struct Case {
        const char* what;
        ModuleError expected;
        std::function<void(FakeModule&)> corrupt;
    };
    const std::vector<Case> cases = {
        {"truncated header", ModuleError::too_small, [](FakeModule& m) { m.bytes.resize(40); }},
        {"no magic", ModuleError::not_elf, [](FakeModule& m) { m.bytes[1] = 'X'; }},
        {"ELF32", ModuleError::not_elf64_x86_64, [](FakeModule& m) { m.bytes[4] = 1; }},
        {"big endian", ModuleError::not_elf64_x86_64, [](FakeModule& m) { m.bytes[5] = 2; }},
        {"another machine", ModuleError::not_elf64_x86_64, [](FakeModule& m) { m.put(18, 183, 2); }},
        {"an executable", ModuleError::not_shared_object, [](FakeModule& m) { m.put(16, 2, 2); }},
        {"program headers past the end", ModuleError::bad_program_headers, [](FakeModule& m) { m.put(32, 0x2ff0, 8); }},
        {"wrong program header size", ModuleError::bad_program_headers, [](FakeModule& m) { m.put(54, 32, 2); }},
        {"TLS segment", ModuleError::bad_program_headers, [](FakeModule& m) { m.put(m.ph(4), 7, 4); }},
        {"filesz above memsz", ModuleError::bad_program_headers, [](FakeModule& m) { m.put(m.ph(1) + 32, 0x20, 8); }},
        {"segment past the file", ModuleError::segment_outside_file,
         [](FakeModule& m) { m.put(m.ph(2) + 8, 0x2f00, 8), m.put(m.ph(2) + 16, 0x2f00, 8); }},
        {"segment off its page", ModuleError::segment_unaligned, [](FakeModule& m) { m.put(m.ph(1) + 16, 0x1008, 8); }},
        {"segments overlap", ModuleError::segments_overlap,
         [](FakeModule& m) { m.put(m.ph(1) + 16, 0x0000, 8), m.put(m.ph(1) + 8, 0x0000, 8); }},
        {"writable text", ModuleError::writable_and_executable, [](FakeModule& m) { m.put(m.ph(1) + 4, 7, 4); }},
        {"no PT_LOAD", ModuleError::no_loadable_segment,
         [](FakeModule& m) { m.put(m.ph(0), 0, 4), m.put(m.ph(1), 0, 4), m.put(m.ph(2), 0, 4); }},
        {"huge memsz", ModuleError::image_too_large, [](FakeModule& m) { m.put(m.ph(2) + 40, 8u << 20, 8); }},
        {"no PT_DYNAMIC", ModuleError::no_dynamic_section, [](FakeModule& m) { m.put(m.ph(3), 0, 4); }},
        {"dynamic needs a library", ModuleError::bad_dynamic_section, [](FakeModule& m) { m.dynamic(11, 1, 1); }},
        {"dynamic has an initialiser", ModuleError::bad_dynamic_section, [](FakeModule& m) { m.dynamic(11, 25, 0); }},
        {"no symbol table", ModuleError::bad_dynamic_section, [](FakeModule& m) { m.dynamic(0, 0x6fffff00, 0); }},
        {"strings past the image", ModuleError::bad_dynamic_section, [](FakeModule& m) { m.dynamic(3, 10, 0x10000); }},
        {"nchain past the image", ModuleError::bad_dynamic_section,
         [](FakeModule& m) { m.put(kHash + 4, 0xffffff, 4); }},
        {"REL instead of RELA", ModuleError::bad_dynamic_section, [](FakeModule& m) { m.dynamic(10, 20, 17); }},
        {"lazy binding", ModuleError::not_bound_now, [](FakeModule& m) { m.dynamic(11, 30, 0); }},
        {"PC-relative relocation", ModuleError::unsupported_relocation,
         [](FakeModule& m) { m.rela(1, kData + 8, 2, 1, 0); }},
        {"relocation into the text", ModuleError::relocation_outside_image,
         [](FakeModule& m) { m.rela(0, kText, 8, 0, 0); }},
        {"relocation past the image", ModuleError::relocation_outside_image,
         [](FakeModule& m) { m.rela(0, 0xfffffffffffffffcull, 8, 0, 0); }},
        {"symbol index past the table", ModuleError::bad_symbol, [](FakeModule& m) { m.rela(1, kData + 8, 6, 9, 0); }},
        {"symbol value past the image", ModuleError::bad_symbol, [](FakeModule& m) { m.symbol(2, 17, 7, 0x100000); }},
        {"absolute symbol", ModuleError::bad_symbol, [](FakeModule& m) { m.symbol(2, 17, 0xfff1, 0x10); }},
        {"name past the strings", ModuleError::bad_symbol, [](FakeModule& m) { m.symbol(1, 0x1000, 0, 0); }},
        {"unexported kernel symbol", ModuleError::unresolved_symbol,
         [](FakeModule& m) { std::memcpy(m.bytes.data() + kStrtab + 1, "kernel_secret__", 15); }},
        {"no entry symbol", ModuleError::no_entry_symbol,
         [](FakeModule& m) { std::memcpy(m.bytes.data() + kStrtab + 17, "other_entr", 10); }},
    };
    std::set<ModuleError> covered;
    for (const Case& c : cases) {
        FakeModule module;
        c.corrupt(module);
        Outcome out = load(module.bytes);
        INFO(c.what);
        REQUIRE_FALSE(out.ok);
        CHECK(std::string(module_error_name(out.error)) == module_error_name(c.expected));
        covered.insert(out.error);
    }
    CHECK(covered.size() == static_cast<std::size_t>(ModuleError::no_entry_symbol) + 1);
}

TEST_CASE("module_image.unresolved_symbol_is_named") {
    FakeModule module;
    std::memcpy(module.bytes.data() + kStrtab + 1, "kernel_secret__", 15);
    Outcome out = load(module.bytes);
    REQUIRE_FALSE(out.ok);
    CHECK(out.error == ModuleError::unresolved_symbol);
    CHECK(out.symbol == "kernel_secret__");
}

TEST_CASE("module_image.random_corruption_never_escapes") {
    std::mt19937 random(18);
    const Bytes good = FakeModule().bytes;
    for (int round = 0; round < 3000; ++round) {
        Bytes file = good;
        int flips = 1 + static_cast<int>(random() % 8);
        for (int i = 0; i < flips; ++i) {
            // Mostly where the structure is: the headers, the tables, the dynamic section.
            std::size_t at = random() % 2 ? random() % 0x500 : kDynamic + random() % 0xc0;
            file[at] = static_cast<std::uint8_t>(random());
        }
        Outcome out = load(file);  // AddressSanitizer judges every read and write
        if (out.ok) CHECK(out.image.size() <= kMaxImageBytes);
    }
}
