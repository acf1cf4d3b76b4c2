// The guest page walker against hand-built guest page tables in a fake guest memory.
#include <catch2/catch.hpp>
#include <cstring>
#include <vector>

#include "nestor/x86/guest_walk.hpp"

using namespace nestor;
using namespace nestor::x86;

namespace {

class FakeGuest final : public GuestPageTables {
public:
    explicit FakeGuest(usize size) : bytes(size, 0) {}
    bool read(u64 gpa, void* out, usize size) override {
        if (gpa > bytes.size() || size > bytes.size() - gpa) return false;
        std::memcpy(out, bytes.data() + gpa, size);
        return true;
    }
    // Below `read_only_from` the memory is writable (a read-only mapping of the tables above).
    bool set_entry_flags(u64 gpa, usize width, u64 flags) override {
        if (gpa + width > read_only_from) return false;
        u64 entry = 0;
        std::memcpy(&entry, bytes.data() + gpa, width);
        entry |= flags;
        std::memcpy(bytes.data() + gpa, &entry, width);
        ++flag_writes;
        return true;
    }
    void put64(u64 gpa, u64 v) { std::memcpy(bytes.data() + gpa, &v, 8); }
    void put32(u64 gpa, u32 v) { std::memcpy(bytes.data() + gpa, &v, 4); }
    u64 get64(u64 gpa) const {
        u64 v = 0;
        std::memcpy(&v, bytes.data() + gpa, 8);
        return v;
    }
    u32 get32(u64 gpa) const {
        u32 v = 0;
        std::memcpy(&v, bytes.data() + gpa, 4);
        return v;
    }
    std::vector<u8> bytes;
    u64 read_only_from = ~u64{0};
    int flag_writes = 0;
};

constexpr u64 kPg = u64{1} << 31, kPe = 1, kPae = 1 << 5, kPse = 1 << 4, kLma = 1 << 10, kLme = 1 << 8;

u64 walk(const GuestPaging& p, u64 linear, FakeGuest& g) {
    u64 gpa = ~u64{0};
    return guest_translate(p, linear, g, gpa) ? gpa : ~u64{0};
}

}  // namespace

TEST_CASE("guest_walk.paging_off_is_identity") {
    FakeGuest g(4096);
    CHECK(walk(GuestPaging{kPe, 0, 0, 0}, 0x12345678, g) == 0x12345678);
    CHECK(walk(GuestPaging{kPe, 0, 0, 0}, 0x1'0000'1000, g) == 0x1000);  // 32-bit wraps
}

TEST_CASE("guest_walk.long_mode_4k_2m_and_1g_pages") {
    FakeGuest g(0x10000);
    g.put64(0x1000, 0x2000 | 3);          // PML4[0]
    g.put64(0x2000, 0x3000 | 3);          // PDPT[0] -> PD
    g.put64(0x2008, 0x40000000 | 0x83);   // PDPT[1]: 1 GiB page at 1 GiB
    g.put64(0x3000, 0x4000 | 3);          // PD[0] -> PT
    g.put64(0x3008, 0x600000 | 0x83);     // PD[1]: 2 MiB page at 6 MiB
    g.put64(0x4000 + 5 * 8, 0x9000 | 3);  // PT[5]: 0x5000 -> 0x9000
    GuestPaging p{kPg | kPe, 0x1000, kPae, kLme | kLma};
    CHECK(walk(p, 0x5123, g) == 0x9123);
    CHECK(walk(p, 0x200000 + 0x1234, g) == 0x601234);
    CHECK(walk(p, 0x40000000 + 0x12345, g) == 0x40012345);
    CHECK(walk(p, 0x6000, g) == ~u64{0});      // PT[6] not present
    CHECK(walk(p, 0x80000000, g) == ~u64{0});  // PDPT[2] not present
}

TEST_CASE("guest_walk.pae_and_32bit_paging") {
    FakeGuest g(0x10000);
    g.put64(0x1000 + 8, 0x2000 | 1);  // PDPTE[1] (linear 1-2 GiB)
    g.put64(0x2000, 0x3000 | 3);      // PD[0]
    g.put64(0x3000 + 8, 0x7000 | 3);  // PT[1]
    CHECK(walk(GuestPaging{kPg | kPe, 0x1000, kPae, 0}, 0x40001010, g) == 0x7010);
    g.put32(0x5000 + 4, 0x00800000 | 0x83);  // PDE[1]: 4 MiB page at 8 MiB
    g.put32(0x5000, 0x6000 | 3);             // PDE[0] -> PT
    g.put32(0x6000 + 2 * 4, 0xA000 | 3);     // PTE[2]
    CHECK(walk(GuestPaging{kPg | kPe, 0x5000, kPse, 0}, 0x400123, g) == 0x800123);
    CHECK(walk(GuestPaging{kPg | kPe, 0x5000, kPse, 0}, 0x2456, g) == 0xA456);
}

TEST_CASE("guest_walk.tables_outside_guest_memory_fail") {
    FakeGuest g(0x2000);
    GuestPaging p{kPg | kPe, 0x1000, kPae, kLme | kLma};
    g.put64(0x1000, 0x7FFF0000 | 3);  // PML4[0] points past guest memory
    CHECK(walk(p, 0x1000, g) == ~u64{0});
    GuestPaging bad_root{kPg | kPe, 0xFFFFF000, kPae, kLme | kLma};
    CHECK(walk(bad_root, 0x1000, g) == ~u64{0});
}

TEST_CASE("guest_walk.reads_across_a_page_boundary") {
    FakeGuest g(0x10000);
    g.put64(0x1000, 0x2000 | 3);
    g.put64(0x2000, 0x3000 | 3);
    g.put64(0x3000, 0x4000 | 3);
    g.put64(0x4000 + 0 * 8, 0x8000 | 3);  // 0x0000 -> 0x8000
    g.put64(0x4000 + 1 * 8, 0x6000 | 3);  // 0x1000 -> 0x6000
    g.bytes[0x8FFE] = 0x0F;
    g.bytes[0x8FFF] = 0x01;
    g.bytes[0x6000] = 0xD9;
    GuestPaging p{kPg | kPe, 0x1000, kPae, kLme | kLma};
    u8 out[4] = {};
    CHECK(read_guest_linear(p, 0xFFE, g, out, 3) == 3);
    CHECK(out[0] == 0x0F);
    CHECK(out[2] == 0xD9);
    CHECK(read_guest_linear(p, 0x1FFE, g, out, 4) == 2);  // the next page is not mapped
}

namespace {

// Guest-physical pages 0, 2 and the last page below 2^64 mapped; page 1 unmapped.
class TwoPages final : public PagedGuestMemory {
public:
    TwoPages() : low(kPageSize, 0x11), high(kPageSize, 0x22) {}
    std::vector<u8> low, high;
    std::vector<u64> asked;

private:
    const u8* host_page(u64 gpa_page) override {
        asked.push_back(gpa_page);
        if (gpa_page == 0) return low.data();
        if (gpa_page == 2 * kPageSize || gpa_page == align_down(~u64{0}, kPageSize)) return high.data();
        return nullptr;
    }
    // Page 0 alone is writable.
    u8* writable_host_page(u64 gpa_page) override { return gpa_page == 0 ? low.data() : nullptr; }
};

}  // namespace

TEST_CASE("guest_walk.paged_memory_reads_page_by_page") {
    TwoPages memory;
    memory.low[kPageSize - 1] = 0xAB;
    memory.high[0] = 0xCD;
    u8 out[4] = {};
    // Within one page, at the page's end.
    REQUIRE(memory.read(kPageSize - 1, out, 1) == true);
    CHECK(out[0] == 0xAB);
    // Crossing into the unmapped page fails; the mapped page after it reads.
    CHECK_FALSE(memory.read(kPageSize - 2, out, 4));
    REQUIRE(memory.read(2 * kPageSize, out, 2));
    CHECK(out[0] == 0xCD);
    CHECK(out[1] == 0x22);
    // Every page is asked for by its aligned address.
    for (u64 page : memory.asked) CHECK(page % kPageSize == 0);
    // An address range that wraps past 2^64 is refused, not folded back to page 0.
    CHECK_FALSE(memory.read(~u64{0}, out, 2));
}

TEST_CASE("guest_walk.paged_memory_sets_entry_flags_in_writable_pages_only") {
    TwoPages memory;
    memory.low.assign(kPageSize, 0);
    REQUIRE(memory.set_entry_flags(0x18, 8, 0x60));
    CHECK(memory.low[0x18] == 0x60);
    REQUIRE(memory.set_entry_flags(0x24, 4, 0x20));
    CHECK(memory.low[0x24] == 0x20);
    CHECK(memory.low[0x20] == 0);
    CHECK_FALSE(memory.set_entry_flags(0x1C, 8, 0x20));           // not aligned to its width
    CHECK_FALSE(memory.set_entry_flags(0x20, 2, 0x20));           // no such entry width
    CHECK_FALSE(memory.set_entry_flags(2 * kPageSize, 8, 0x20));  // readable, not writable
    CHECK_FALSE(memory.set_entry_flags(kPageSize, 8, 0x20));      // not mapped
}

TEST_CASE("guest_walk.code_linear_address_wraps_outside_long_mode") {
    CHECK(code_linear_address(0xFFFF0000, 0x10010, false) == 0x10);
    CHECK(code_linear_address(0xFFFF0000, 0x10010, true) == 0x100000010);
    CHECK(code_linear_address(0x10000, 0x1234, false) == 0x11234);
}

namespace {

constexpr u64 kWp = u64{1} << 16, kSmap = u64{1} << 21, kNxe = u64{1} << 11;
constexpr u64 kUserRw = 7, kSupRw = 3, kSupRo = 1;

// PML4[0] -> PDPT[0] -> PD[0] -> PT, whose entries the cases set; a 2 MiB page at PD[1].
FakeGuest long_mode_tables(u64 upper_rights) {
    FakeGuest g(0x10000);
    g.put64(0x1000, 0x2000 | upper_rights);
    g.put64(0x2000, 0x3000 | upper_rights);
    g.put64(0x3000, 0x4000 | upper_rights);
    return g;
}

LinearTranslation data(u64 cr0, u64 cr4, u64 efer, u64 linear, FakeGuest& g, bool write, bool ac = false,
                       u32 bits = 36) {
    return guest_translate_data(GuestPaging{cr0, 0x1000, cr4 | kPae, efer | kLme | kLma}, linear,
                                DataAccess{write, ac, bits}, g);
}

}  // namespace

TEST_CASE("guest_walk.checked_data_access_translates_what_is_allowed") {
    FakeGuest g = long_mode_tables(kSupRw);
    g.put64(0x4000 + 5 * 8, 0x9000 | kSupRw);
    g.put64(0x3008, 0x600000 | 0x80 | kSupRw);  // a 2 MiB page
    LinearTranslation t = data(kPg | kPe | kWp, 0, kNxe, 0x5123, g, true);
    CHECK(t.fault == LinearFault::none);
    CHECK(t.gpa == 0x9123);
    t = data(kPg | kPe | kWp, 0, 0, 0x201234, g, false);
    CHECK(t.fault == LinearFault::none);
    CHECK(t.gpa == 0x601234);
}

TEST_CASE("guest_walk.checked_data_access_faults_as_the_cpu") {
    FakeGuest g = long_mode_tables(kSupRw);
    // Not present: error code 0, W for a write.
    LinearTranslation t = data(kPg | kPe, 0, 0, 0x6000, g, false);
    CHECK(t.fault == LinearFault::page_fault);
    CHECK(t.error_code == 0);
    CHECK(data(kPg | kPe, 0, 0, 0x6000, g, true).error_code == kPageFaultWrite);
    // A read-only page: a write faults with CR0.WP (P | W), not without it; reads are fine.
    g.put64(0x4000 + 7 * 8, 0x9000 | kSupRo);
    t = data(kPg | kPe | kWp, 0, 0, 0x7000, g, true);
    CHECK(t.fault == LinearFault::page_fault);
    CHECK(t.error_code == (kPageFaultPresent | kPageFaultWrite));
    CHECK(data(kPg | kPe, 0, 0, 0x7000, g, true).fault == LinearFault::none);
    CHECK(data(kPg | kPe | kWp, 0, 0, 0x7000, g, false).fault == LinearFault::none);
    // Reserved bits: an address bit beyond MAXPHYADDR, XD without EFER.NXE (P | RSVD).
    g.put64(0x4000 + 8 * 8, (u64{1} << 40) | 0x9000 | kSupRw);
    t = data(kPg | kPe, 0, 0, 0x8000, g, false);
    CHECK(t.fault == LinearFault::page_fault);
    CHECK(t.error_code == (kPageFaultPresent | kPageFaultReserved));
    CHECK(data(kPg | kPe, 0, 0, 0x8000, g, false, false, 48).fault == LinearFault::none);
    g.put64(0x4000 + 9 * 8, (u64{1} << 63) | 0x9000 | kSupRw);
    CHECK(data(kPg | kPe, 0, 0, 0x9000, g, true).error_code ==
          (kPageFaultPresent | kPageFaultReserved | kPageFaultWrite));
    CHECK(data(kPg | kPe, 0, kNxe, 0x9000, g, true).fault == LinearFault::none);
    // A 2 MiB page with an address bit below its size (not PAT).
    g.put64(0x3010, 0x400000 | 0x2000 | 0x80 | kSupRw);
    CHECK(data(kPg | kPe, 0, 0, 0x400000, g, false).error_code == (kPageFaultPresent | kPageFaultReserved));
    g.put64(0x3010, 0x400000 | 0x1000 | 0x80 | kSupRw);  // PAT: allowed
    CHECK(data(kPg | kPe, 0, 0, 0x400000, g, false).fault == LinearFault::none);
    // A table outside guest memory is not a page fault.
    g.put64(0x4000 + 10 * 8, 0x9000 | kSupRw);
    g.put64(0x3018, 0x7FFF0000 | kSupRw);
    CHECK(data(kPg | kPe, 0, 0, 0x600000, g, false).fault == LinearFault::not_memory);
}

TEST_CASE("guest_walk.checked_data_access_to_a_user_page_under_smap_needs_ac") {
    FakeGuest g = long_mode_tables(kUserRw);
    g.put64(0x4000 + 5 * 8, 0x9000 | kUserRw);
    CHECK(data(kPg | kPe, 0, 0, 0x5000, g, false).fault == LinearFault::none);
    LinearTranslation t = data(kPg | kPe, kSmap, 0, 0x5000, g, true);
    CHECK(t.fault == LinearFault::page_fault);
    CHECK(t.error_code == (kPageFaultPresent | kPageFaultWrite));
    CHECK(data(kPg | kPe, kSmap, 0, 0x5000, g, true, true).fault == LinearFault::none);
    g.put64(0x4000 + 6 * 8, 0x9000 | kSupRw);  // a supervisor leaf: not a user page
    CHECK(data(kPg | kPe, kSmap, 0, 0x6000, g, true).fault == LinearFault::none);
}

TEST_CASE("guest_walk.checked_data_access_in_32bit_and_pae_paging") {
    FakeGuest g(0x10000);
    g.put32(0x5000, 0x6000 | 3);
    g.put32(0x6000 + 2 * 4, 0xA000 | 1);  // read-only
    GuestPaging flat{kPg | kPe | kWp, 0x5000, kPse, 0};
    CHECK(guest_translate_data(flat, 0x2456, DataAccess{false, false, 36}, g).gpa == 0xA456);
    CHECK(guest_translate_data(flat, 0x2456, DataAccess{true, false, 36}, g).error_code ==
          (kPageFaultPresent | kPageFaultWrite));
    CHECK(guest_translate_data(flat, 0x3000, DataAccess{false, false, 36}, g).error_code == 0);
    g.put64(0x1000 + 8, 0x2000 | 1);  // PDPTE[1]
    g.put64(0x2000, 0x3000 | 3);
    g.put64(0x3000 + 8, 0x7000 | 3);
    GuestPaging pae{kPg | kPe, 0x1000, kPae, 0};
    CHECK(guest_translate_data(pae, 0x40001010, DataAccess{true, false, 36}, g).gpa == 0x7010);
    CHECK(guest_translate_data(pae, 0x10, DataAccess{false, false, 36}, g).error_code == 0);  // PDPTE[0]
}

TEST_CASE("guest_walk.checked_data_access_sets_accessed_and_dirty_flags") {
    constexpr u64 kA = 1 << 5, kD = 1 << 6;
    FakeGuest g = long_mode_tables(kSupRw);
    g.put64(0x4000 + 5 * 8, 0x9000 | kSupRw);
    g.put64(0x4000 + 6 * 8, 0xA000 | kSupRo);
    // A read: Accessed in every entry used, no Dirty.
    REQUIRE(data(kPg | kPe, 0, 0, 0x5000, g, false).fault == LinearFault::none);
    for (u64 at : {0x1000, 0x2000, 0x3000, 0x4000 + 5 * 8}) CHECK((g.get64(at) & (kA | kD)) == kA);
    // A write: Dirty in the leaf alone; flags already set are not written again.
    int writes = g.flag_writes;
    REQUIRE(data(kPg | kPe, 0, 0, 0x5000, g, true).fault == LinearFault::none);
    CHECK((g.get64(0x4000 + 5 * 8) & (kA | kD)) == (kA | kD));
    CHECK((g.get64(0x3000) & kD) == 0);
    CHECK(g.flag_writes == writes + 1);
    // A write the leaf refuses (CR0.WP): the leaf was used (Accessed), not written (no Dirty).
    REQUIRE(data(kPg | kPe | kWp, 0, 0, 0x6000, g, true).fault == LinearFault::page_fault);
    CHECK((g.get64(0x4000 + 6 * 8) & (kA | kD)) == kA);
    // A not-present entry is not used.
    REQUIRE(data(kPg | kPe, 0, 0, 0x7000, g, false).fault == LinearFault::page_fault);
    CHECK(g.get64(0x4000 + 7 * 8) == 0);
    // Tables the walk cannot write back: not memory it may use (the CPU would fault on them).
    g.put64(0x4000 + 8 * 8, 0x9000 | kSupRw);
    g.read_only_from = 0x4000;
    CHECK(data(kPg | kPe, 0, 0, 0x8000, g, false).fault == LinearFault::not_memory);
    // 32-bit paging: 4-byte entries, a 4 MiB page's PDE as the leaf.
    FakeGuest h(0x10000);
    h.put32(0x5000, 0x6000 | 3);
    h.put32(0x6000 + 2 * 4, 0xA000 | 3);
    h.put32(0x5000 + 4, 0x400000 | 0x80 | 3);
    GuestPaging flat{kPg | kPe, 0x5000, kPse, 0};
    REQUIRE(guest_translate_data(flat, 0x2456, DataAccess{true, false, 36}, h).fault == LinearFault::none);
    CHECK((h.get32(0x5000) & (kA | kD)) == kA);
    CHECK((h.get32(0x6000 + 2 * 4) & (kA | kD)) == (kA | kD));
    REQUIRE(guest_translate_data(flat, 0x400010, DataAccess{true, false, 36}, h).fault == LinearFault::none);
    CHECK((h.get32(0x5000 + 4) & (kA | kD)) == (kA | kD));
}

TEST_CASE("guest_walk.pae_pdptes_reserved_bits_and_table_address") {
    CHECK(pae_pdpt_address(0x12345678) == 0x12345660);
    CHECK(pae_pdpt_address(0xFFFFFFFF00001020) == 0x1020);  // CR3 bits 63:32 take no part
    CHECK(pae_pdpte_valid(0, 36));
    CHECK(pae_pdpte_valid(0x1000 | 1, 36));
    CHECK(pae_pdpte_valid(0x1000 | 0x18 | 1, 36));         // PWT, PCD
    CHECK_FALSE(pae_pdpte_valid(0x1000 | 2 | 1, 36));      // bit 1
    CHECK_FALSE(pae_pdpte_valid(0x1000 | 0x20 | 1, 36));   // bit 5
    CHECK_FALSE(pae_pdpte_valid(0x1000 | 0x100 | 1, 36));  // bit 8
    CHECK_FALSE(pae_pdpte_valid((u64{1} << 36) | 1, 36));  // beyond MAXPHYADDR
    CHECK(pae_pdpte_valid((u64{1} << 36) | 1, 40));
    CHECK(pae_pdpte_valid(0x1E6, 36));  // not present: nothing is reserved
}
