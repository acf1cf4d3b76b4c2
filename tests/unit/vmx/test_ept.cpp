#include <array>
#include <catch2/catch.hpp>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "nestor/x86/vmx/ept.hpp"

using namespace nestor;
using namespace nestor::x86;
using namespace nestor::x86::vmx;

namespace {

class FakeTables final : public PageTableMemory {
public:
    explicit FakeTables(size_t limit = ~size_t{0}) : limit_(limit) {}
    bool allocate_table(paddr& table) override {
        if (tables_.size() >= limit_) return false;
        table = next_;
        next_ += kPageSize;
        tables_[table] = std::make_unique<std::array<u64, 512>>();
        tables_[table]->fill(0);
        return true;
    }
    u64* table(paddr table) override {
        auto it = tables_.find(table);
        REQUIRE(it != tables_.end());
        return it->second->data();
    }
    size_t count() const { return tables_.size(); }

private:
    size_t limit_;
    paddr next_ = 0x7000000;
    std::map<paddr, std::unique_ptr<std::array<u64, 512>>> tables_;
};

constexpr EptPermissions kData{.write = true, .execute = false};
constexpr EptPermissions kCode{.write = false, .execute = true};
constexpr EptPermissions kReadOnly{};

struct Fixture {
    FakeTables tables;
    EptBuilder ept{tables};
    Fixture() { REQUIRE(ept.create_root().ok()); }
    // The leaf entry of a 4 KiB mapping at gpa (walking the raw tables).
    u64 leaf(u64 gpa, int stop_level = 0) {
        paddr table = ept.root();
        for (int level = 3;; --level) {
            u64 e = tables.table(table)[(gpa >> (12 + 9 * level)) & 511];
            if (level == stop_level) return e;
            REQUIRE((e & 7) == 7);  // non-leaf entries grant everything
            REQUIRE((e & ept::large_page) == 0);
            table = e & ept::address_mask;
        }
    }
};

}  // namespace

TEST_CASE("ept.leaf_bits_for_4k_pages") {
    Fixture f;
    REQUIRE(f.ept.map(0x1000, 0x200000 + 0x5000, 0x1000, kCode).ok());
    REQUIRE(f.ept.map(0x2000, 0x200000 + 0x6000, 0x1000, kData).ok());
    REQUIRE(f.ept.map(0x3000, 0x200000 + 0x7000, 0x1000, kReadOnly).ok());
    CHECK(f.leaf(0x1000) == (0x205000 | ept::read | ept::execute | (6u << 3)));
    CHECK(f.leaf(0x2000) == (0x206000 | ept::read | ept::write | (6u << 3)));
    CHECK(f.leaf(0x3000) == (0x207000 | ept::read | (6u << 3)));
    CHECK(f.leaf(0x4000) == 0);
    CHECK(f.tables.count() == 4);  // PML4, PDPT, PD, PT
}

TEST_CASE("ept.translate") {
    Fixture f;
    REQUIRE(f.ept.map(0x10000, 0x300000, 0x2000, kData).ok());
    auto t = f.ept.translate(0x11234);
    REQUIRE(t.ok());
    CHECK(t->host_physical == 0x301234);
    CHECK(t->readable);
    CHECK(t->writable);
    CHECK_FALSE(t->executable);
    CHECK(t->memory_type == ept::memory_type_wb);
    CHECK_FALSE(t->large);
    auto missing = f.ept.translate(0x12000);
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.error() == EptError::not_mapped);
}

TEST_CASE("ept.large_pages_where_aligned") {
    Fixture f;
    // 4 KiB + 2 MiB + 4 KiB: the middle is one 2 MiB leaf.
    REQUIRE(f.ept.map(0x1FF000, 0x40001FF000, 0x202000, kData).ok());
    u64 pd_entry = f.leaf(0x200000, 1);
    CHECK((pd_entry & ept::large_page) != 0);
    CHECK((pd_entry & ept::address_mask) == 0x4000200000);
    CHECK((pd_entry & ept::memory_type_mask) == (ept::memory_type_wb << 3));
    CHECK((pd_entry & 7) == (ept::read | ept::write));
    auto t = f.ept.translate(0x3FFFFF);
    REQUIRE(t.ok());
    CHECK(t->large);
    CHECK(t->host_physical == 0x40003FFFFF);
    CHECK(f.leaf(0x1FF000) == (0x40001FF000 | ept::read | ept::write | (6u << 3)));
    CHECK(f.leaf(0x400000) == (0x4000400000 | ept::read | ept::write | (6u << 3)));
}

TEST_CASE("ept.no_large_page_when_host_is_misaligned_or_disabled") {
    Fixture f;
    REQUIRE(f.ept.map(0x200000, 0x1000000 + 0x1000, 0x200000, kData).ok());
    CHECK((f.leaf(0x200000, 1) & ept::large_page) == 0);
    FakeTables tables;
    EptBuilder small(tables, false);
    REQUIRE(small.create_root().ok());
    REQUIRE(small.map(0x200000, 0x400000, 0x200000, kData).ok());
    auto t = small.translate(0x200000);
    REQUIRE(t.ok());
    CHECK_FALSE(t->large);
}

TEST_CASE("ept.refuses_overlap_without_writing") {
    Fixture f;
    REQUIRE(f.ept.map(0x5000, 0x100000, 0x1000, kData).ok());
    size_t before = f.tables.count();
    auto r = f.ept.map(0x3000, 0x200000, 0x4000, kData);  // 0x3000..0x7000 covers 0x5000
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == EptError::overlapping);
    CHECK(f.leaf(0x3000) == 0);  // nothing of the refused range was written
    CHECK(f.leaf(0x4000) == 0);
    CHECK(f.tables.count() == before);
    // Inside an existing 2 MiB page.
    REQUIRE(f.ept.map(0x400000, 0x600000, 0x200000, kData).ok());
    auto inside = f.ept.map(0x401000, 0x900000, 0x1000, kData);
    REQUIRE_FALSE(inside.ok());
    CHECK(inside.error() == EptError::overlapping);
    // A 2 MiB range over a slot that already has a page table: 4 KiB pages, and the taken one is found.
    auto over_table = f.ept.map(0, 0x800000, 0x200000, kData);
    REQUIRE_FALSE(over_table.ok());
    CHECK(over_table.error() == EptError::overlapping);
}

TEST_CASE("ept.refusals") {
    Fixture f;
    auto check = [&](u64 gpa, u64 hpa, u64 size, EptPermissions perm, EptError expected) {
        auto r = f.ept.map(gpa, hpa, size, perm);
        REQUIRE_FALSE(r.ok());
        CHECK(r.error() == expected);
    };
    check(0x1001, 0x2000, 0x1000, kData, EptError::unaligned);
    check(0x1000, 0x2001, 0x1000, kData, EptError::unaligned);
    check(0x1000, 0x2000, 0x1800, kData, EptError::unaligned);
    check(0x1000, 0x2000, 0, kData, EptError::empty_range);
    check(EptBuilder::kGuestPhysicalLimit - 0x1000, 0x2000, 0x2000, kData, EptError::out_of_range);
    check(~u64{0xFFF}, 0x2000, 0x2000, kData, EptError::out_of_range);
    check(0x1000, EptBuilder::kHostPhysicalLimit, 0x1000, kData, EptError::out_of_range);
    CHECK(f.tables.count() == 1);
    FakeTables tables;
    EptBuilder rootless(tables);
    auto r = rootless.map(0x1000, 0x2000, 0x1000, kData);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == EptError::no_root);
}

TEST_CASE("ept.out_of_table_memory") {
    FakeTables tables(2);  // root + PDPT only
    EptBuilder ept(tables);
    REQUIRE(ept.create_root().ok());
    auto r = ept.map(0x1000, 0x2000, 0x1000, kData);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == EptError::out_of_memory);
}

TEST_CASE("ept.eptp_and_table_enumeration") {
    Fixture f;
    CHECK(make_eptp(0x123000) == (0x123000 | 6 | (3 << 3)));
    REQUIRE(f.ept.map(0x0, 0x100000, 0x10000, kData).ok());
    REQUIRE(f.ept.map(0x40000000, 0x200000, 0x1000, kCode).ok());    // another PDPT slot: PD + PT more
    REQUIRE(f.ept.map(0x80000000, 0x400000, 0x200000, kData).ok());  // a PD with one 2 MiB leaf
    std::set<paddr> seen;
    std::vector<paddr> order;
    f.ept.for_each_table(
        [](paddr table, void* context) { static_cast<std::vector<paddr>*>(context)->push_back(table); }, &order);
    seen.insert(order.begin(), order.end());
    CHECK(seen.size() == order.size());
    CHECK(order.size() == f.tables.count());
    CHECK(order.back() == f.ept.root());  // the root last
}

TEST_CASE("ept.unmap_clears_and_skips_holes") {
    Fixture f;
    REQUIRE(f.ept.map(0x1000, 0x100000, 0x3000, kData).ok());
    REQUIRE(f.ept.unmap(0x0, 0x3000).ok());  // 0x0 was never mapped: skipped
    CHECK_FALSE(f.ept.translate(0x1000).ok());
    CHECK_FALSE(f.ept.translate(0x2000).ok());
    CHECK(f.ept.translate(0x3000).ok());
    REQUIRE(f.ept.map(0x1000, 0x200000, 0x1000, kCode).ok());  // the hole can be mapped again
    REQUIRE(f.ept.unmap(0x7F0000000000, 0x10000).ok());        // nothing at all there
}

TEST_CASE("ept.unmap_refuses_to_split_a_large_page") {
    Fixture f;
    REQUIRE(f.ept.map(0x200000, 0x400000, 0x200000, kData).ok());
    auto r = f.ept.unmap(0x201000, 0x1000);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == EptError::would_split_large_page);
    auto tail = f.ept.unmap(0x1FF000, 0x2000);  // a 4 KiB hole, then half of nothing... the large page
    REQUIRE_FALSE(tail.ok());
    CHECK(f.ept.translate(0x200000).ok());  // a refused unmap changed nothing
    REQUIRE(f.ept.unmap(0x200000, 0x200000).ok());
    CHECK_FALSE(f.ept.translate(0x3FF000).ok());
    auto bad = f.ept.unmap(0x1001, 0x1000);
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error() == EptError::unaligned);
}

TEST_CASE("ept.guest_ram_may_be_writable_and_executable") {
    FakeTables tables;
    EptBuilder ept(tables, true);
    REQUIRE(ept.create_root().ok());
    REQUIRE(ept.map(0x1000, 0x2000, 0x1000, EptPermissions{.write = true, .execute = true}).ok());
}
