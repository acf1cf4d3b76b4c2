// Page-table builder: W^X and NX, 2 MiB vs 4 KiB choice, translate round trips, refusals.
#include <catch2/catch.hpp>

#include <array>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>

#include "fake_physical.hpp"
#include "nestor/x86/page_table_builder.hpp"

using namespace test;

namespace {

constexpr u64 kMiB = 1024 * 1024;
constexpr u64 kGiB = 1024 * kMiB;
constexpr u64 kPresent = 1;
constexpr u64 kWritable = 1 << 1;
constexpr u64 kUser = 1 << 2;
constexpr u64 kLarge = 1 << 7;
constexpr u64 kGlobal = 1 << 8;
constexpr u64 kNx = u64{1} << 63;
constexpr u64 kAddressMask = 0x000FFFFFFFFFF000ull;

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

const Permissions kCode{false, true, false, true};
const Permissions kData{true, false, false, false};
const Permissions kReadOnly{false, false, false, false};

u64 index_at(u64 va, int level) { return (va >> (12 + 9 * (level - 1))) & 511; }

// The raw entry at `level` for `va`, walking as the CPU does (test-side, independent of the
// builder).
u64 raw_entry(FakeTables& tables, paddr root, u64 va, int level) {
    paddr table = root;
    for (int l = 4;; --l) {
        const u64 entry = tables.table(table)[index_at(va, l)];
        if (l == level) return entry;
        REQUIRE((entry & kPresent) != 0);
        table = entry & kAddressMask;
    }
}

struct Fixture {
    FakeTables tables;
    PageTableBuilder builder{tables};
    Fixture() { REQUIRE(builder.create_root().ok()); }

    MapError map_error(u64 va, paddr pa, u64 size, Permissions p) {
        auto status = builder.map(va, pa, size, p);
        REQUIRE_FALSE(status.ok());
        return status.error();
    }
    Translation translate(u64 va) {
        auto t = builder.translate(va);
        REQUIRE(t.ok());
        return t.value();
    }
};

}  // namespace

TEST_CASE("paging.refuses_writable_executable") {
    Fixture f;
    const Permissions rwx{true, true, false, false};
    CHECK(f.map_error(0x400000, 0x400000, kPageSize, rwx) == MapError::writable_and_executable);
    CHECK(f.map_error(0x400000, 0x400000, 2 * kMiB, Permissions{true, true, true, true}) ==
          MapError::writable_and_executable);
    CHECK(f.tables.count() == 1);  // nothing was built
    CHECK_FALSE(f.builder.translate(0x400000).ok());
}

TEST_CASE("paging.nx_set_for_non_executable") {
    Fixture f;
    REQUIRE(f.builder.map(0x1000, 0x5000, kPageSize, kData).ok());
    REQUIRE(f.builder.map(0x2000, 0x6000, kPageSize, kReadOnly).ok());
    REQUIRE(f.builder.map(0x3000, 0x7000, kPageSize, kCode).ok());
    REQUIRE(f.builder.map(0x400000, 0x800000, 2 * kMiB, kData).ok());
    const paddr root = f.builder.root();
    CHECK((raw_entry(f.tables, root, 0x1000, 1) & kNx) != 0);
    CHECK((raw_entry(f.tables, root, 0x2000, 1) & kNx) != 0);
    CHECK((raw_entry(f.tables, root, 0x3000, 1) & kNx) == 0);
    CHECK((raw_entry(f.tables, root, 0x400000, 2) & kNx) != 0);
    CHECK_FALSE(f.translate(0x1000).permissions.executable);
    CHECK(f.translate(0x3000).permissions.executable);
    // Intermediate entries never carry NX: they must not veto an executable leaf below them.
    for (int level = 4; level >= 2; --level) {
        const u64 entry = raw_entry(f.tables, root, 0x3000, level);
        CHECK((entry & kNx) == 0);
        CHECK((entry & (kPresent | kWritable | kUser)) == (kPresent | kWritable | kUser));
    }
}

TEST_CASE("paging.permission_bits") {
    Fixture f;
    REQUIRE(f.builder.map(0x10000, 0x10000, kPageSize, Permissions{true, false, true, false}).ok());
    REQUIRE(f.builder.map(0x11000, 0x11000, kPageSize, Permissions{false, true, false, true}).ok());
    const paddr root = f.builder.root();
    const u64 user_data = raw_entry(f.tables, root, 0x10000, 1);
    CHECK((user_data & (kPresent | kWritable | kUser | kGlobal | kLarge)) == (kPresent | kWritable | kUser));
    const u64 global_code = raw_entry(f.tables, root, 0x11000, 1);
    CHECK((global_code & (kPresent | kWritable | kUser | kGlobal | kLarge)) == (kPresent | kGlobal));
    const Translation a = f.translate(0x10000);
    CHECK(a.permissions.writable);
    CHECK(a.permissions.user);
    CHECK_FALSE(a.permissions.global);
    CHECK_FALSE(a.permissions.executable);
    const Translation b = f.translate(0x11000);
    CHECK_FALSE(b.permissions.writable);
    CHECK_FALSE(b.permissions.user);
    CHECK(b.permissions.global);
    CHECK(b.permissions.executable);
}

TEST_CASE("paging.uses_2m_pages_when_aligned") {
    Fixture f;
    REQUIRE(f.builder.map(0x40000000, 0x200000, 8 * kMiB, kData).ok());
    CHECK(f.tables.count() == 3);  // PML4, PDPT, PD: no page tables at all
    for (u64 off = 0; off < 8 * kMiB; off += 2 * kMiB) {
        const Translation t = f.translate(0x40000000 + off);
        CHECK(t.page_size == PageSize::size_2m);
        CHECK(t.physical == 0x200000 + off);
        CHECK((raw_entry(f.tables, f.builder.root(), 0x40000000 + off, 2) & kLarge) != 0);
    }
}

TEST_CASE("paging.uses_4k_pages_when_unaligned") {
    Fixture f;
    // Virtual 2 MiB aligned, physical only 4 KiB aligned: no large page can fit.
    REQUIRE(f.builder.map(0x200000, 0x201000, 2 * kMiB, kData).ok());
    CHECK(f.tables.count() == 4);  // PML4, PDPT, PD and one page table for the whole slot
    CHECK(f.translate(0x200000).page_size == PageSize::size_4k);
    CHECK(f.translate(0x3FF000).physical == 0x400000);
    // Enough alignment but less than 2 MiB left.
    Fixture g;
    REQUIRE(g.builder.map(0x200000, 0x200000, 2 * kMiB - kPageSize, kData).ok());
    CHECK(g.translate(0x200000).page_size == PageSize::size_4k);
    CHECK_FALSE(g.builder.translate(0x3FF000).ok());
}

TEST_CASE("paging.mixed_page_sizes") {
    Fixture f;
    const u64 va = 0x1FE000;
    const paddr pa = 0x3FE000;  // same offset within 2 MiB as va
    const u64 size = 2 * kPageSize + 4 * kMiB + 3 * kPageSize;
    REQUIRE(f.builder.map(va, pa, size, kReadOnly).ok());
    CHECK(f.translate(va).page_size == PageSize::size_4k);
    CHECK(f.translate(va + kPageSize).page_size == PageSize::size_4k);
    CHECK(f.translate(0x200000).page_size == PageSize::size_2m);
    CHECK(f.translate(0x400000).page_size == PageSize::size_2m);
    CHECK(f.translate(0x600000).page_size == PageSize::size_4k);
    CHECK(f.translate(0x602000).page_size == PageSize::size_4k);
    CHECK_FALSE(f.builder.translate(0x603000).ok());
    CHECK_FALSE(f.builder.translate(va - kPageSize).ok());
}

TEST_CASE("paging.translate_round_trip") {
    Fixture f;
    struct Mapping {
        u64 va;
        paddr pa;
        u64 size;
    };
    const Mapping mappings[] = {
        {0xFFFFFFFF80000000ull, 0x100000, 3 * kMiB + 5 * kPageSize},  // higher-half kernel
        {0xFFFF800000000000ull, 0, 64 * kMiB},                        // direct map
        {0x0000000000400000ull, 0x12345000, 7 * kPageSize},
        {0x00007FFFFFE00000ull, 0xFFFE00000ull, 2 * kMiB},      // top of the lower half
        {0xFFFFFFFFFFE00000ull, 0xFFFFFFFE00000ull, 2 * kMiB},  // top of everything
    };
    for (const auto& m : mappings) REQUIRE(f.builder.map(m.va, m.pa, m.size, kReadOnly).ok());
    std::mt19937_64 rng(7);
    for (const auto& m : mappings) {
        for (int i = 0; i < 200; ++i) {
            const u64 offset = rng() % m.size;
            const Translation t = f.translate(m.va + offset);
            CHECK(t.physical == m.pa + offset);
        }
        CHECK_FALSE(f.builder.translate(m.va + m.size).ok());
    }
}

TEST_CASE("paging.refuses_remapping") {
    Fixture f;
    REQUIRE(f.builder.map(0x400000, 0x400000, 4 * kPageSize, kData).ok());
    CHECK(f.map_error(0x400000, 0x900000, kPageSize, kData) == MapError::already_mapped);
    CHECK(f.map_error(0x403000, 0x900000, kPageSize, kReadOnly) == MapError::already_mapped);
    // Overlap only at the end of a longer request: nothing of it is mapped.
    const size_t tables = f.tables.count();
    CHECK(f.map_error(0x3F0000, 0x800000, 0x11000, kData) == MapError::already_mapped);
    CHECK_FALSE(f.builder.translate(0x3F0000).ok());
    CHECK(f.tables.count() == tables);
    CHECK(f.translate(0x400000).physical == 0x400000);
    // Large over large.
    REQUIRE(f.builder.map(0x800000, 0x800000, 2 * kMiB, kData).ok());
    CHECK(f.map_error(0x800000, 0xA00000, 2 * kMiB, kData) == MapError::already_mapped);
    CHECK(f.translate(0x800000).physical == 0x800000);
}

TEST_CASE("paging.refuses_splitting_large_page") {
    Fixture f;
    REQUIRE(f.builder.map(0x200000, 0x200000, 2 * kMiB, kCode).ok());
    CHECK(f.map_error(0x201000, 0x5000, kPageSize, kCode) == MapError::would_split_large_page);
    // A 4 KiB-granular request whose first pages are free but which reaches into the large page.
    CHECK(f.map_error(0x1FF000, 0x1000, 2 * kPageSize, kData) == MapError::would_split_large_page);
    CHECK_FALSE(f.builder.translate(0x1FF000).ok());
    const Translation t = f.translate(0x201000);
    CHECK(t.page_size == PageSize::size_2m);
    CHECK(t.physical == 0x201000);
}

TEST_CASE("paging.existing_page_table_blocks_large_page") {
    Fixture f;
    REQUIRE(f.builder.map(0x3FF000, 0x3FF000, kPageSize, kData).ok());
    // The 2 MiB slot already has a page table: the request falls back to 4 KiB pages there and
    // meets the existing page.
    CHECK(f.map_error(0x200000, 0x200000, 2 * kMiB, kData) == MapError::already_mapped);
    // With that page gone (an empty page table left behind), the range maps as 4 KiB pages.
    u64* pt = f.tables.table(raw_entry(f.tables, f.builder.root(), 0x3FF000, 2) & kAddressMask);
    pt[511] = 0;
    REQUIRE(f.builder.map(0x200000, 0x200000, 2 * kMiB, kData).ok());
    CHECK(f.translate(0x200000).page_size == PageSize::size_4k);
    CHECK(f.translate(0x3FF000).physical == 0x3FF000);
}

TEST_CASE("paging.respects_foreign_1g_pages") {
    Fixture f;
    // A 1 GiB leaf some other code put in the PDPT (we never build these ourselves).
    REQUIRE(f.builder.map(0x0, 0x1000, kPageSize, kData).ok());  // creates the PDPT
    u64* pdpt = f.tables.table(raw_entry(f.tables, f.builder.root(), 0, 4) & kAddressMask);
    pdpt[1] = 0x80000000ull | kPresent | kWritable | kLarge | kNx;
    const Translation t = f.translate(kGiB + 0x12345);
    CHECK(t.page_size == PageSize::size_1g);
    CHECK(t.physical == 0x80012345ull);
    CHECK(t.permissions.writable);
    CHECK(f.map_error(kGiB + 2 * kMiB, 0x200000, 2 * kMiB, kReadOnly) == MapError::already_mapped);
    CHECK(f.map_error(kGiB + kPageSize, 0x200000, kPageSize, kReadOnly) == MapError::would_split_large_page);
}

TEST_CASE("paging.refuses_bad_requests") {
    Fixture f;
    CHECK(f.map_error(0x1001, 0x1000, kPageSize, kData) == MapError::unaligned);
    CHECK(f.map_error(0x1000, 0x1800, kPageSize, kData) == MapError::unaligned);
    CHECK(f.map_error(0x1000, 0x1000, 100, kData) == MapError::unaligned);
    CHECK(f.map_error(0x1000, 0x1000, 0, kData) == MapError::empty_range);
    CHECK(f.map_error(0x0000800000000000ull, 0x1000, kPageSize, kData) == MapError::non_canonical);
    CHECK(f.map_error(0xFFFF7FFFFFFFF000ull, 0x1000, kPageSize, kData) == MapError::non_canonical);
    CHECK(f.map_error(0x00007FFFFFFFF000ull, 0x1000, 2 * kPageSize, kData) == MapError::non_canonical);
    CHECK(f.map_error(0xFFFFFFFFFFFFF000ull, 0x1000, 2 * kPageSize, kData) == MapError::non_canonical);
    CHECK(f.map_error(0x1000, (u64{1} << 52) - kPageSize, 2 * kPageSize, kData) == MapError::physical_out_of_range);
    CHECK(f.map_error(0x1000, 0xFFFFFFFFFFFFF000ull, kPageSize, kData) == MapError::physical_out_of_range);
    CHECK(f.tables.count() == 1);
    // The edges themselves are fine.
    CHECK(f.builder.map(0x00007FFFFFFFF000ull, (u64{1} << 52) - kPageSize, kPageSize, kData).ok());
    CHECK(f.builder.map(0xFFFFFFFFFFFFF000ull, 0x1000, kPageSize, kData).ok());
}

TEST_CASE("paging.translate_refusals") {
    Fixture f;
    auto unmapped = f.builder.translate(0x1234000);
    REQUIRE_FALSE(unmapped.ok());
    CHECK(unmapped.error() == MapError::not_mapped);
    auto bad = f.builder.translate(0x0000900000000000ull);
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error() == MapError::non_canonical);
}

TEST_CASE("paging.requires_root") {
    FakeTables tables;
    PageTableBuilder builder(tables);
    auto status = builder.map(0x1000, 0x1000, kPageSize, kData);
    REQUIRE_FALSE(status.ok());
    CHECK(status.error() == MapError::no_root);
    auto t = builder.translate(0x1000);
    REQUIRE_FALSE(t.ok());
    CHECK(t.error() == MapError::no_root);
    // Editing an existing hierarchy.
    REQUIRE(builder.create_root().ok());
    REQUIRE(builder.map(0x1000, 0x2000, kPageSize, kData).ok());
    PageTableBuilder second(tables);
    second.use_root(builder.root());
    CHECK(second.translate(0x1000).value().physical == 0x2000);
    auto again = second.map(0x1000, 0x3000, kPageSize, kData);
    REQUIRE_FALSE(again.ok());
    CHECK(again.error() == MapError::already_mapped);
}

TEST_CASE("paging.out_of_table_memory") {
    FakeTables none(0);
    PageTableBuilder a(none);
    auto root = a.create_root();
    REQUIRE_FALSE(root.ok());
    CHECK(root.error() == MapError::out_of_memory);
    FakeTables two(2);
    PageTableBuilder b(two);
    REQUIRE(b.create_root().ok());
    auto status = b.map(0x1000, 0x1000, kPageSize, kData);  // needs PDPT, PD and PT
    REQUIRE_FALSE(status.ok());
    CHECK(status.error() == MapError::out_of_memory);
}

TEST_CASE("paging.with_frame_allocator") {
    BootInfo boot{};
    boot.memory[0] = MemoryRange{0x100000, 63 * kMiB, MemoryKind::usable};
    boot.memory_count = 1;
    FakePhysical mem;
    FrameAllocator frames;
    REQUIRE(frames.init(boot, PhysicalRange{0x100000, 0x300000}, mem).ok());
    AllocatorTableMemory tables(frames, mem);
    PageTableBuilder builder(tables);
    const u64 before = frames.free_frames();
    REQUIRE(builder.create_root().ok());
    // The 1 GiB identity map the early kernel uses, and its higher-half image.
    REQUIRE(builder.map(0, 0, kGiB, kData).ok());
    REQUIRE(builder.map(0xFFFFFFFF80100000ull, 0x100000, 2 * kMiB, kCode).ok());
    CHECK(before - frames.free_frames() == 3 + 4);  // PML4+PDPT+PD, then PDPT+PD+2 PTs
    CHECK(builder.translate(0x3FFFF123).value().physical == 0x3FFFF123);
    CHECK(builder.translate(0xFFFFFFFF80100000ull).value().permissions.executable);
    CHECK(frames.is_managed(builder.root()));
    // Table frames came back zeroed although the fake memory starts as garbage.
    CHECK_FALSE(builder.translate(0x40000000).ok());
    // Exhaust the allocator: the builder reports it as a value.
    while (frames.allocate().ok()) {
    }
    auto status = builder.map(0x7F0000000000ull, 0x1000, kPageSize, kData);
    REQUIRE_FALSE(status.ok());
    CHECK(status.error() == MapError::out_of_memory);
}

TEST_CASE("paging.error_names_distinct") {
    std::set<std::string> names;
    const int count = static_cast<int>(MapError::not_mapped) + 1;
    for (int i = 0; i < count; ++i) names.insert(map_error_name(static_cast<MapError>(i)));
    CHECK(names.size() == static_cast<size_t>(count));
}

TEST_CASE("paging.uncached_mapping_sets_pcd_and_pwt") {
    FakeTables memory;
    PageTableBuilder builder(memory);
    REQUIRE(builder.create_root());
    REQUIRE(builder.map(0xFFFFC00000000000, 0xFEE00000, kPageSize,
                        Permissions{.writable = true, .executable = false, .uncached = true}));
    auto t = builder.translate(0xFFFFC00000000000);
    REQUIRE(t);
    CHECK(t->permissions.uncached);
    CHECK(t->physical == 0xFEE00000);
    CHECK((raw_entry(memory, builder.root(), 0xFFFFC00000000000, 1) & 0x18) == 0x18);
    REQUIRE(builder.map(0xFFFFC00000001000, 0x1000, kPageSize, Permissions{.writable = true}));
    CHECK_FALSE(builder.translate(0xFFFFC00000001000)->permissions.uncached);
}

TEST_CASE("paging.unmap_removes_4k_and_2m_pages") {
    FakeTables memory;
    PageTableBuilder builder(memory);
    REQUIRE(builder.create_root());
    REQUIRE(builder.map(0x200000, 0x40000000, 0x400000, kData));  // two 2 MiB pages
    REQUIRE(builder.map(0x1000, 0x5000, 0x3000, kData));          // three 4 KiB pages
    REQUIRE(builder.unmap(0x2000, 0x1000));
    CHECK(builder.translate(0x1000));
    CHECK_FALSE(builder.translate(0x2000));
    CHECK(builder.translate(0x3000));
    REQUIRE(builder.unmap(0x200000, 0x200000));
    CHECK_FALSE(builder.translate(0x200000));
    CHECK(builder.translate(0x400000)->physical == 0x40200000);
    // Unmapping nothing is not an error: the range is simply empty afterwards.
    CHECK(builder.unmap(0x7000000, 0x10000));
}

TEST_CASE("paging.unmap_refuses_part_of_a_large_page_and_changes_nothing") {
    FakeTables memory;
    PageTableBuilder builder(memory);
    REQUIRE(builder.create_root());
    REQUIRE(builder.map(0x0, 0x10000, 0x1000, kData));
    REQUIRE(builder.map(0x200000, 0x40000000, 0x200000, kData));
    auto refused = builder.unmap(0x0, 0x201000);  // the 4 KiB page, then half-way into the 2 MiB page
    REQUIRE_FALSE(refused);
    CHECK(refused.error() == MapError::would_split_large_page);
    CHECK(builder.translate(0x0));  // the first pass refused before clearing anything
    CHECK(builder.translate(0x200000));
    CHECK(builder.unmap(0x1000, 0x1000));
    CHECK(builder.unmap(0x123, 0x1000).error() == MapError::unaligned);
    CHECK(builder.unmap(0x0, 0).error() == MapError::empty_range);
}

TEST_CASE("paging.guest_policy_allows_writable_executable") {
    FakeTables memory;
    PageTableBuilder kernel_tables(memory);
    REQUIRE(kernel_tables.create_root());
    CHECK(kernel_tables.map(0x1000, 0x1000, 0x1000, Permissions{true, true, true, false}).error() ==
          MapError::writable_and_executable);
    PageTableBuilder nested_tables(memory, WxPolicy::allow);
    REQUIRE(nested_tables.create_root());
    REQUIRE(nested_tables.map(0x1000, 0x1000, 0x1000, Permissions{true, true, true, false}));
    auto t = nested_tables.translate(0x1000);
    REQUIRE(t);
    CHECK(t->permissions.writable);
    CHECK(t->permissions.executable);
}
