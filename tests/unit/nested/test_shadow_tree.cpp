// The shadow tree both nested parts build their shadow nested page tables on
// (components/nested/shadow_tree.hpp), with fake frames, in both entry formats.
#include <catch2/catch.hpp>

#include "nested_svm_fixture.hpp"
#include "shadow_tree.hpp"

using namespace nestor;
using namespace nestor::nested;
using nested_svm_test::FakeFrames;

namespace {

constexpr u64 kAddressMask = 0x000FFFFFFFFFF000;
constexpr ShadowFormat kNpt{1, 0x7, kAddressMask};    // P; P, RW, US on the way
constexpr ShadowFormat kEpt{0x7, 0x7, kAddressMask};  // R, W, X
constexpr u64 kL2Page = 0x12345000;

struct Tree {
    explicit Tree(const ShadowFormat& format, u32 max_tables = 64) : space{frames, format, max_tables} {}
    FakeFrames frames;
    ShadowSpace space;
    ShadowTree tree{};
    ~Tree() { shadow_drop(tree, space); }
};

}  // namespace

TEST_CASE("shadow_tree.a_leaf_gets_its_tables_and_reads_back_in_either_format") {
    for (const ShadowFormat* format : {&kNpt, &kEpt}) {
        Tree t(*format);
        CHECK(shadow_install(t.tree, t.space, kL2Page | 0x123, 0xABC000 | format->present) == ShadowInstall::added);
        CHECK(t.tree.tables == kShadowLevels);  // the root and one table on each level below it
        CHECK(t.frames.live() == kShadowLevels);
        int leaves = 0;
        shadow_for_each_leaf(t.tree, t.frames, *format, [&](u64 l2, u64 entry) {
            CHECK(l2 == kL2Page);
            CHECK(entry == (0xABC000 | format->present));
            ++leaves;
        });
        CHECK(leaves == 1);
        // The tables on the way carry every right: the leaf limits them.
        const u64* root = t.frames.table(t.tree.root);
        CHECK((root[shadow_level_index(kL2Page, 4)] & ~kAddressMask) == format->table_rights);
    }
}

TEST_CASE("shadow_tree.a_second_leaf_for_the_same_page_is_a_replacement") {
    Tree t(kEpt);
    CHECK(shadow_install(t.tree, t.space, kL2Page, 0xABC000 | 1) == ShadowInstall::added);
    CHECK(shadow_install(t.tree, t.space, kL2Page, 0xABC000 | 3) == ShadowInstall::replaced);
    CHECK(shadow_install(t.tree, t.space, kL2Page + 0x1000, 0xABD000 | 1) == ShadowInstall::added);
    CHECK(t.tree.tables == kShadowLevels);
}

TEST_CASE("shadow_tree.a_spent_budget_drops_everything_and_starts_over") {
    Tree t(kNpt, 5);  // the root, three tables and one more
    CHECK(shadow_install(t.tree, t.space, 0x1000, 0xA000 | 1) == ShadowInstall::added);
    CHECK(shadow_take_flush(t.tree) == false);                                             // never dropped yet
    CHECK(shadow_install(t.tree, t.space, 0x200000, 0xB000 | 1) == ShadowInstall::added);  // a new last-level table
    CHECK(t.tree.tables == 5);
    // Another 1 GiB region needs two tables more: the tree is dropped and rebuilt for this page.
    CHECK(shadow_install(t.tree, t.space, u64{1} << 30, 0xC000 | 1) == ShadowInstall::added);
    CHECK(t.tree.tables == kShadowLevels);
    CHECK(t.frames.live() == kShadowLevels);
    CHECK(shadow_take_flush(t.tree) == true);
    CHECK(shadow_take_flush(t.tree) == false);  // once per drop
    int leaves = 0;
    shadow_for_each_leaf(t.tree, t.frames, kNpt, [&](u64 l2, u64) {
        CHECK(l2 == u64{1} << 30);
        ++leaves;
    });
    CHECK(leaves == 1);
}

TEST_CASE("shadow_tree.no_frame_even_after_the_drop_is_out_of_memory") {
    Tree t(kEpt);
    t.frames.fail_after = 2;
    CHECK(shadow_install(t.tree, t.space, kL2Page, 0xABC000 | 1) == ShadowInstall::out_of_memory);
    CHECK(t.frames.live() <= 2);
    CHECK(shadow_take_flush(t.tree) == true);
}

TEST_CASE("shadow_tree.drop_frees_every_frame_and_the_next_root_is_new") {
    Tree t(kNpt);
    for (u64 i = 0; i < 8; ++i) shadow_install(t.tree, t.space, i << 39, 0xA000 | 1);  // a root entry each
    CHECK(t.frames.live() == 1 + 8 * 3);
    shadow_drop(t.tree, t.space);
    CHECK(t.frames.live() == 0);
    CHECK(t.tree.tables == 0);
    CHECK(t.tree.root == 0);
    CHECK(shadow_root(t.tree, t.space) != 0);
    CHECK(t.tree.tables == 1);
}
