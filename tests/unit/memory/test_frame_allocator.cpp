// Physical frame allocator: exclusion of reserved memory (checked against a page-by-page oracle),
// free/double-free, exhaustion, contiguous allocation.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "fake_physical.hpp"
#include "nestor/x86/frame_allocator.hpp"

using namespace test;

namespace {

constexpr u64 kMiB = 1024 * 1024;

struct Scenario {
    BootInfo boot{};
    PhysicalRange kernel{0x100000, 0x100000};
    std::vector<PhysicalRange> extra;

    Scenario& memory(u64 base, u64 length, MemoryKind kind = MemoryKind::usable) {
        REQUIRE(boot.memory_count < BootInfo::kMaxMemoryRanges);
        boot.memory[boot.memory_count++] = MemoryRange{base, length, kind};
        return *this;
    }
    Scenario& module(paddr start, paddr end) {
        REQUIRE(boot.module_count < BootInfo::kMaxModules);
        boot.modules[boot.module_count++] = BootModule{start, end, {}};
        return *this;
    }
    Scenario& info(paddr start, paddr end) {
        boot.info_start = start;
        boot.info_end = end;
        return *this;
    }

    // Every byte range that must never be handed out.
    std::vector<PhysicalRange> reserved() const {
        std::vector<PhysicalRange> out = {{0, kMiB}, kernel, {boot.info_start, boot.info_end}};
        for (size_t i = 0; i < boot.module_count; ++i) out.push_back({boot.modules[i].start, boot.modules[i].end});
        for (const auto& r : extra)  // an inverted range reserves what lies between its ends
            out.push_back({std::min(r.start, r.end), std::max(r.start, r.end)});
        for (size_t i = 0; i < boot.memory_count; ++i) {
            const MemoryRange& m = boot.memory[i];
            if (m.kind != MemoryKind::usable) out.push_back({m.base, m.base + m.length});
        }
        return out;
    }

    // The oracle: a page is usable iff it lies inside one usable range and touches no reserved
    // byte. Written independently of the allocator's boundary sweep.
    std::set<paddr> usable_frames() const {
        std::set<paddr> out;
        const auto reserved_ranges = reserved();
        for (size_t i = 0; i < boot.memory_count; ++i) {
            const MemoryRange& m = boot.memory[i];
            if (m.kind != MemoryKind::usable) continue;
            for (paddr p = (m.base + kPageSize - 1) / kPageSize * kPageSize; p + kPageSize <= m.base + m.length;
                 p += kPageSize) {
                bool clean = true;
                for (const auto& r : reserved_ranges)
                    if (r.start < p + kPageSize && p < r.end) clean = false;
                if (clean) out.insert(p);
            }
        }
        return out;
    }
};

Status<FrameError> init(FrameAllocator& frames, const Scenario& s, FakePhysical& mem) {
    return frames.init(s.boot, s.kernel, mem, s.extra.data(), s.extra.size());
}

std::set<paddr> bitmap_frames(const FrameAllocator& frames) {
    std::set<paddr> out;
    for (paddr p = frames.bitmap_range().start; p < frames.bitmap_range().end; p += kPageSize) out.insert(p);
    return out;
}

std::vector<paddr> allocate_all(FrameAllocator& frames) {
    std::vector<paddr> out;
    for (;;) {
        auto frame = frames.allocate();
        if (!frame) {
            CHECK(frame.error() == FrameError::out_of_memory);
            return out;
        }
        out.push_back(frame.value());
    }
}

// Allocates everything and checks the result against the oracle exactly.
void check_against_oracle(const Scenario& s) {
    FakePhysical mem;
    FrameAllocator frames;
    auto expected = s.usable_frames();
    auto status = init(frames, s, mem);
    if (expected.size() <= 1) {  // nothing, or only the bitmap's own frame
        REQUIRE_FALSE(status.ok());
        CHECK(status.error() == FrameError::no_usable_memory);
        return;
    }
    REQUIRE(status.ok());
    const auto bitmap = bitmap_frames(frames);
    REQUIRE_FALSE(bitmap.empty());
    for (paddr p : bitmap) {
        REQUIRE(expected.count(p) == 1);  // the bitmap is carved out of usable memory
        expected.erase(p);
    }
    CHECK(frames.total_frames() == expected.size());
    CHECK(frames.free_frames() == expected.size());
    const auto got = allocate_all(frames);
    CHECK(frames.free_frames() == 0);
    const std::set<paddr> got_set(got.begin(), got.end());
    CHECK(got_set.size() == got.size());  // no frame handed out twice
    CHECK(got_set == expected);
    for (paddr p : got) {
        for (const auto& r : s.reserved()) {
            INFO("frame " << std::hex << p << " reserved [" << r.start << ", " << r.end << ")");
            CHECK_FALSE((r.start < p + kPageSize && p < r.end));
        }
        CHECK(bitmap.count(p) == 0);
    }
}

Scenario typical() {
    Scenario s;
    s.memory(0, 0x9FC00)
        .memory(0x9FC00, 0x400, MemoryKind::reserved)
        .memory(0xF0000, 0x10000, MemoryKind::reserved)
        .memory(0x100000, 63 * kMiB)
        .memory(0x3FE0000, 0x20000, MemoryKind::acpi_reclaimable);
    s.kernel = {0x100000, 0x2F3456};
    s.module(0x400000, 0x412345).module(0x600800, 0x600801);
    s.info(0x10000, 0x10074);
    return s;
}

}  // namespace

TEST_CASE("frames.never_hands_out_kernel_image") {
    Scenario s = typical();
    FakePhysical mem;
    FrameAllocator frames;
    REQUIRE(init(frames, s, mem).ok());
    for (paddr p : allocate_all(frames)) {
        CHECK_FALSE((p < 0x2F4000 && p + kPageSize > 0x100000));
    }
    CHECK_FALSE(frames.is_managed(0x2F3000));  // the kernel's last, partly used frame
}

TEST_CASE("frames.never_hands_out_reserved_ranges") { check_against_oracle(typical()); }

TEST_CASE("frames.never_hands_out_first_mib") {
    Scenario s;
    s.memory(0, 8 * kMiB);
    check_against_oracle(s);
    FakePhysical mem;
    FrameAllocator frames;
    REQUIRE(init(frames, s, mem).ok());
    for (paddr p : allocate_all(frames)) CHECK(p >= kMiB);
    // 8 MiB minus the first MiB, minus one bitmap frame.
    CHECK(frames.total_frames() == 7 * 256 - 1);
}

TEST_CASE("frames.overlapping_unsorted_duplicate_map") {
    Scenario s;
    s.memory(0x3000000, 0x1000000)                          // 48..64 MiB
        .memory(0x2000000, 0x10000, MemoryKind::reserved)   // unsorted
        .memory(0x100000, 0x2000000)                        // 1..33 MiB, overlaps the reserved one
        .memory(0x100000, 0x2000000)                        // duplicate
        .memory(0x3800123, 0x1000, MemoryKind::bad)         // unaligned, inside usable
        .memory(0x3000000, 0x800000, MemoryKind::acpi_nvs)  // reserved over half a usable range
        .memory(0x1FFF800, 0x1000, MemoryKind::reserved);   // straddles a page boundary
    s.kernel = {0x200000, 0x280000};
    s.info(0x9000, 0x9100);
    s.extra = {{0x1000000, 0x1000001}};
    check_against_oracle(s);
}

TEST_CASE("frames.random_maps_match_oracle") {
    for (unsigned seed = 1; seed <= 30; ++seed) {
        INFO("seed " << seed);
        std::mt19937_64 rng(seed);
        auto below = [&](u64 n) { return rng() % n; };
        Scenario s;
        const u64 span = 48 * kMiB;
        const int ranges = 1 + static_cast<int>(below(24));
        for (int i = 0; i < ranges; ++i) {
            const MemoryKind kind = below(3) == 0 ? static_cast<MemoryKind>(1 + below(4)) : MemoryKind::usable;
            s.memory(below(span), 1 + below(12 * kMiB), kind);
        }
        const int modules = static_cast<int>(below(5));
        for (int i = 0; i < modules; ++i) {
            const paddr start = below(span);
            s.module(start, start + below(2 * kMiB));
        }
        const paddr kernel = kMiB + below(4 * kMiB);
        s.kernel = {kernel, kernel + 1 + below(3 * kMiB)};
        const paddr info = below(span);
        s.info(info, info + below(0x3000));
        if (below(2)) s.extra.push_back({below(span), below(span)});  // possibly inverted
        check_against_oracle(s);
    }
}

TEST_CASE("frames.lowest_address_first") {
    Scenario s;
    s.memory(16 * kMiB, kMiB).memory(2 * kMiB, kMiB);
    FakePhysical mem;
    FrameAllocator frames;
    REQUIRE(init(frames, s, mem).ok());
    CHECK(frames.bitmap_range().start == 2 * kMiB);
    const auto got = allocate_all(frames);
    REQUIRE(got.size() == 511);
    CHECK(got.front() == 2 * kMiB + kPageSize);
    CHECK(std::is_sorted(got.begin(), got.end()));
    CHECK(got[255] == 16 * kMiB);
}

TEST_CASE("frames.double_free_refused") {
    FakePhysical mem;
    FrameAllocator frames;
    REQUIRE(init(frames, typical(), mem).ok());
    auto frame = frames.allocate();
    REQUIRE(frame.ok());
    const u64 free_before = frames.free_frames();
    REQUIRE(frames.free(frame.value()).ok());
    CHECK(frames.free_frames() == free_before + 1);
    auto again = frames.free(frame.value());
    REQUIRE_FALSE(again.ok());
    CHECK(again.error() == FrameError::double_free);
    CHECK(frames.free_frames() == free_before + 1);
    // A never-allocated frame is just as free.
    auto never = frames.free(0x3000000);
    REQUIRE_FALSE(never.ok());
    CHECK(never.error() == FrameError::double_free);
}

TEST_CASE("frames.foreign_and_misaligned_free_refused") {
    Scenario s = typical();
    FakePhysical mem;
    FrameAllocator frames;
    REQUIRE(init(frames, s, mem).ok());
    const paddr foreign[] = {0x0,
                             0x9F000,
                             0x100000,
                             0x2F3000,
                             0x400000,
                             0x3FE0000,
                             0x40000000,
                             frames.bitmap_range().start,
                             0xFFFFFFFFFFFFF000ull};
    for (paddr p : foreign) {
        INFO(std::hex << p);
        auto status = frames.free(p);
        REQUIRE_FALSE(status.ok());
        CHECK(status.error() == FrameError::foreign_frame);
    }
    auto frame = frames.allocate();
    REQUIRE(frame.ok());
    auto misaligned = frames.free(frame.value() + 8);
    REQUIRE_FALSE(misaligned.ok());
    CHECK(misaligned.error() == FrameError::misaligned_frame);
}

TEST_CASE("frames.exhaustion_is_a_value") {
    Scenario s;
    s.memory(kMiB, 64 * kPageSize);
    FakePhysical mem;
    FrameAllocator frames;
    REQUIRE(init(frames, s, mem).ok());
    CHECK(frames.total_frames() == 63);
    const auto got = allocate_all(frames);
    CHECK(got.size() == 63);
    for (int i = 0; i < 3; ++i) {
        auto frame = frames.allocate();
        REQUIRE_FALSE(frame.ok());
        CHECK(frame.error() == FrameError::out_of_memory);
    }
    // A freed frame comes back, and then it is exhausted again.
    REQUIRE(frames.free(got[40]).ok());
    auto back = frames.allocate();
    REQUIRE(back.ok());
    CHECK(back.value() == got[40]);
    CHECK_FALSE(frames.allocate().ok());
}

TEST_CASE("frames.freed_frames_reused_lowest_first") {
    FakePhysical mem;
    FrameAllocator frames;
    Scenario s;
    s.memory(kMiB, 4 * kMiB);
    REQUIRE(init(frames, s, mem).ok());
    std::vector<paddr> got;
    got.reserve(200);
    for (int i = 0; i < 200; ++i) got.push_back(frames.allocate().value());
    REQUIRE(frames.free(got[150]).ok());
    REQUIRE(frames.free(got[3]).ok());
    CHECK(frames.allocate().value() == got[3]);
    CHECK(frames.allocate().value() == got[150]);
    CHECK(frames.allocate().value() == got[199] + kPageSize);
}

TEST_CASE("frames.contiguous_aligned") {
    Scenario s;
    s.memory(kMiB, 16 * kMiB);
    FakePhysical mem;
    FrameAllocator frames;
    REQUIRE(init(frames, s, mem).ok());
    const u64 total = frames.total_frames();
    auto single = frames.allocate();  // the next frame after the bitmap
    REQUIRE(single.ok());
    auto run = frames.allocate_contiguous(512, kLargePageSize);
    REQUIRE(run.ok());
    CHECK(run.value() % kLargePageSize == 0);
    CHECK(run.value() == 2 * kMiB);
    CHECK(frames.free_frames() == total - 1 - 512);
    for (u64 i = 0; i < 512; ++i) {
        auto again = frames.free(run.value() + i * kPageSize);
        CHECK(again.ok());
    }
    // The run's frames are ordinary frames again; gaps below it are still used first.
    CHECK(frames.allocate().value() == single.value() + kPageSize);
    auto small = frames.allocate_contiguous(3, kPageSize);
    REQUIRE(small.ok());
    CHECK(small.value() == single.value() + 2 * kPageSize);
}

TEST_CASE("frames.contiguous_skips_busy_frames") {
    Scenario s;
    s.memory(kMiB, kMiB);
    FakePhysical mem;
    FrameAllocator frames;
    REQUIRE(init(frames, s, mem).ok());
    std::vector<paddr> got;
    got.reserve(20);
    for (int i = 0; i < 20; ++i) got.push_back(frames.allocate().value());
    REQUIRE(frames.free(got[5]).ok());  // a one-frame hole is too small for 4
    auto run = frames.allocate_contiguous(4, kPageSize);
    REQUIRE(run.ok());
    CHECK(run.value() == got[19] + kPageSize);
    auto too_big = frames.allocate_contiguous(frames.free_frames() + 1, kPageSize);
    REQUIRE_FALSE(too_big.ok());
    CHECK(too_big.error() == FrameError::out_of_memory);
    // Not contiguous, though enough frames are free in total (the hole at got[5] breaks it).
    auto fragmented = frames.allocate_contiguous(frames.free_frames(), kPageSize);
    REQUIRE_FALSE(fragmented.ok());
    CHECK(fragmented.error() == FrameError::out_of_memory);
}

TEST_CASE("frames.contiguous_invalid_request") {
    FakePhysical mem;
    FrameAllocator frames;
    REQUIRE(init(frames, typical(), mem).ok());
    for (auto [count, alignment] :
         std::vector<std::pair<u64, u64>>{{0, kPageSize}, {1, 0}, {1, 512}, {1, 3 * kPageSize}, {1, u64{1} << 63}}) {
        auto r = frames.allocate_contiguous(count, alignment);
        REQUIRE_FALSE(r.ok());
        CHECK(r.error() == FrameError::invalid_request);
    }
}

TEST_CASE("frames.no_usable_memory") {
    FakePhysical mem;
    FrameAllocator frames;
    Scenario below_first_mib;
    below_first_mib.memory(0, 0x9F000);
    auto a = init(frames, below_first_mib, mem);
    REQUIRE_FALSE(a.ok());
    CHECK(a.error() == FrameError::no_usable_memory);
    Scenario all_reserved;
    all_reserved.memory(kMiB, kMiB).memory(0, 4 * kMiB, MemoryKind::reserved);
    auto b = init(frames, all_reserved, mem);
    REQUIRE_FALSE(b.ok());
    CHECK(b.error() == FrameError::no_usable_memory);
    Scenario sub_page;
    sub_page.memory(kMiB + 1, kPageSize);
    auto c = init(frames, sub_page, mem);
    REQUIRE_FALSE(c.ok());
    CHECK(c.error() == FrameError::no_usable_memory);
}

TEST_CASE("frames.no_room_for_bitmap") {
    Scenario s;
    s.memory(kMiB, 16 * kMiB);
    FakePhysical mem;
    mem.set_reach_limit(0);  // nothing reachable
    FrameAllocator frames;
    auto status = init(frames, s, mem);
    REQUIRE_FALSE(status.ok());
    CHECK(status.error() == FrameError::no_room_for_bitmap);
}

TEST_CASE("frames.bitmap_in_first_region_that_fits_and_is_reachable") {
    Scenario s;
    // 2 + 153600 + 16384 frames: 2657 bitmap words, 6 bitmap frames.
    s.memory(kMiB, 2 * kPageSize)  // too small for the bitmap
        .memory(16 * kMiB, 600 * kMiB)
        .memory(2 * 1024 * kMiB, 64 * kMiB);
    FakePhysical mem;
    FrameAllocator frames;
    REQUIRE(init(frames, s, mem).ok());
    CHECK(frames.bitmap_range().start == 16 * kMiB);
    CHECK(frames.bitmap_range().end == 16 * kMiB + 6 * kPageSize);
    CHECK(frames.total_frames() == 2 + 153600 - 6 + 16384);

    // Only memory below 1 GiB reachable (the early identity map): the third region cannot hold
    // the bitmap, the second still can.
    FakePhysical low;
    low.set_reach_limit(1024 * kMiB);
    FrameAllocator frames2;
    REQUIRE(init(frames2, s, low).ok());
    CHECK(frames2.bitmap_range().start == 16 * kMiB);
    FakePhysical high_only;
    high_only.set_reach_limit(16 * kMiB);  // the big region is not reachable
    FrameAllocator frames3;
    auto status = init(frames3, s, high_only);
    REQUIRE_FALSE(status.ok());
    CHECK(status.error() == FrameError::no_room_for_bitmap);
}

TEST_CASE("frames.bitmap_region_consumed_entirely") {
    Scenario s;
    s.memory(kMiB, kPageSize).memory(4 * kMiB, 2 * kPageSize);
    FakePhysical mem;
    FrameAllocator frames;
    REQUIRE(init(frames, s, mem).ok());
    CHECK(frames.bitmap_range().start == kMiB);
    CHECK(frames.region_count() == 1);
    CHECK(frames.total_frames() == 2);
    CHECK(frames.allocate().value() == 4 * kMiB);
}

TEST_CASE("frames.too_many_reserved") {
    Scenario s = typical();
    s.extra.assign(FrameAllocator::kMaxExtraReserved + 1, PhysicalRange{0x500000, 0x501000});
    FakePhysical mem;
    FrameAllocator frames;
    auto status = init(frames, s, mem);
    REQUIRE_FALSE(status.ok());
    CHECK(status.error() == FrameError::too_many_reserved);
    s.extra.resize(FrameAllocator::kMaxExtraReserved);
    check_against_oracle(s);
}

TEST_CASE("frames.top_of_memory_clamped") {
    Scenario s;
    // Lengths that wrap, and memory above the 52-bit physical limit, are cut at the limit.
    s.memory(FrameAllocator::kPhysicalLimit - 64 * kPageSize, ~u64{0});
    s.memory(FrameAllocator::kPhysicalLimit + kMiB, kMiB);
    FakePhysical mem;
    FrameAllocator frames;
    REQUIRE(init(frames, s, mem).ok());
    CHECK(frames.total_frames() == 63);
    const auto got = allocate_all(frames);
    REQUIRE(got.size() == 63);
    CHECK(got.back() == FrameAllocator::kPhysicalLimit - kPageSize);
    // A reserved range that wraps reserves everything above its base.
    Scenario r;
    r.memory(kMiB, 64 * kMiB).memory(32 * kMiB, ~u64{0} - kMiB, MemoryKind::reserved);
    FrameAllocator frames2;
    REQUIRE(init(frames2, r, mem).ok());
    CHECK(frames2.total_frames() == 31 * 256 - 1);
}

TEST_CASE("frames.reinit_starts_over") {
    FakePhysical mem;
    FrameAllocator frames;
    REQUIRE(init(frames, typical(), mem).ok());
    (void)allocate_all(frames);
    Scenario s;
    s.memory(kMiB, kMiB);
    REQUIRE(init(frames, s, mem).ok());
    CHECK(frames.total_frames() == 255);
    CHECK(frames.free_frames() == 255);
    CHECK(allocate_all(frames).size() == 255);
}

// The kernel keeps its allocator in a global: it must need no constructor at run time.
[[maybe_unused]] constinit FrameAllocator g_constant_initialized;

TEST_CASE("frames.error_names_distinct") {
    std::set<std::string> names;
    const int count = static_cast<int>(FrameError::invalid_request) + 1;
    for (int i = 0; i < count; ++i) names.insert(frame_error_name(static_cast<FrameError>(i)));
    CHECK(names.size() == static_cast<size_t>(count));
}
