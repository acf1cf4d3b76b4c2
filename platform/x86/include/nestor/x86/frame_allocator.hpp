// Physical 4 KiB frame allocator, built from the validated BootInfo.
//
// Which frames are managed: the page-aligned interior of every usable memory range, minus the
// page-aligned hull of everything that must never be handed out: the first 1 MiB (firmware, real
// mode structures), the kernel image, every boot module, the loader's info tables, caller-given
// extra ranges, and every non-usable memory range. A byte reserved by ANY entry is not usable, so
// overlapping, unsorted or duplicated maps are safe. Addresses are clamped to the 52-bit
// architectural physical limit.
//
// Bookkeeping needs no heap: up to kMaxRegions managed regions live in the object, and a bitmap
// of one bit per managed frame (1 = allocated) is carved out of the lowest region big enough to
// hold it and reached through the caller's PhysicalMemory. The bitmap frames are then no longer
// managed. Allocation is lowest address first.
#pragma once

#include "nestor/boot_info.hpp"
#include "nestor/lib/result.hpp"
#include "nestor/x86/physical_memory.hpp"

namespace nestor::x86 {

struct PhysicalRange {
    paddr start;  // first byte
    paddr end;    // one past the last byte
};

enum class FrameError : u8 {
    out_of_memory,       // no free frame (or no free run for allocate_contiguous)
    no_usable_memory,    // init: nothing is left after the exclusions
    no_room_for_bitmap,  // init: no reachable region can hold the bitmap
    too_many_reserved,   // init: more than kMaxExtraReserved extra ranges
    misaligned_frame,    // free: address not 4 KiB aligned
    foreign_frame,       // free: not a frame this allocator manages
    double_free,         // free: the frame is already free
    invalid_request,     // allocate_contiguous: count 0 or alignment not a power-of-two page multiple
};

const char* frame_error_name(FrameError error);

class FrameAllocator {
public:
    static constexpr usize kMaxRegions = 128;
    static constexpr usize kMaxExtraReserved = 16;
    static constexpr paddr kFirmwareAreaEnd = 0x100000;
    static constexpr paddr kPhysicalLimit = u64{1} << 52;

    struct Region {
        paddr base;
        u64 frame_count;
        u64 first_bit;  // this region's first frame in the bitmap
    };

    // Trivial and constant: a global allocator is zero-initialized, no constructor runs.
    constexpr FrameAllocator() = default;
    FrameAllocator(const FrameAllocator&) = delete;
    FrameAllocator& operator=(const FrameAllocator&) = delete;

    // Builds the managed regions and the bitmap. `memory` must stay valid (it may be retargeted)
    // for the allocator's lifetime. Calling init again starts over.
    Status<FrameError> init(const BootInfo& boot, PhysicalRange kernel_image, PhysicalMemory& memory,
                            const PhysicalRange* extra_reserved = nullptr, usize extra_count = 0);

    Result<paddr, FrameError> allocate();
    // `count` frames, physically contiguous, the first aligned to `alignment` (a power-of-two
    // multiple of 4 KiB). Free them one by one with free().
    Result<paddr, FrameError> allocate_contiguous(u64 count, u64 alignment);
    Status<FrameError> free(paddr frame);

    bool is_managed(paddr frame) const;
    u64 total_frames() const { return total_frames_; }
    u64 free_frames() const { return free_frames_; }
    usize region_count() const { return region_count_; }
    const Region& region(usize index) const { return regions_[index]; }
    PhysicalRange bitmap_range() const { return bitmap_; }
    // Usable frames lost because the regions did not fit in kMaxRegions (for the boot log).
    u64 dropped_frames() const { return dropped_frames_; }

private:
    void reset();
    void build_regions(const BootInfo& boot, PhysicalRange kernel_image, const PhysicalRange* extra_reserved,
                       usize extra_count);
    void append_region(paddr start, paddr end);
    Status<FrameError> place_bitmap();
    void number_regions();
    void clear_bitmap();

    // Bitmap access, one 64-frame word at a time.
    u64& word(u64 index);
    bool test(u64 bit);
    void set(u64 bit, bool allocated);
    bool find_bit(paddr frame, u64& bit) const;
    paddr address_of(u64 bit) const;
    bool run_is_free(u64 first_bit, u64 count, u64& first_busy);

    PhysicalMemory* memory_ = nullptr;
    Region regions_[kMaxRegions]{};
    usize region_count_ = 0;
    u64 total_frames_ = 0;
    u64 free_frames_ = 0;
    u64 dropped_frames_ = 0;
    u64 bitmap_words_ = 0;
    u64 search_hint_ = 0;  // no word below this one has a free bit
    PhysicalRange bitmap_{};
};

}  // namespace nestor::x86
