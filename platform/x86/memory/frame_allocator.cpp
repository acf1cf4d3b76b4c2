// Physical frame allocator: see frame_allocator.hpp for what is managed and how it is stored.
#include "nestor/x86/frame_allocator.hpp"

namespace nestor::x86 {

namespace {

constexpr u64 kBitsPerWord = 64;
constexpr u64 kWordsPerFrame = kPageSize / sizeof(u64);
constexpr u64 kAllBits = ~u64{0};

paddr clamp(u64 address) { return min<u64>(address, FrameAllocator::kPhysicalLimit); }

// The end of [base, base + length): a wrapping length means "to the top", which for a reserved
// range is the safe reading and for a usable one is cut by the clamp anyway.
paddr clamped_end(paddr base, u64 length) {
    u64 end = 0;
    if (!checked_add(base, length, end)) return FrameAllocator::kPhysicalLimit;
    return clamp(end);
}

// Usable memory shrinks to whole frames inside it...
PhysicalRange usable_interior(paddr start, paddr end) {
    const paddr first = align_up(clamp(start), kPageSize);
    const paddr last = align_down(clamp(end), kPageSize);
    return first < last ? PhysicalRange{first, last} : PhysicalRange{first, first};
}

// ...while reserved memory grows to every frame it touches.
PhysicalRange reserved_hull(paddr start, paddr end) {
    if (end < start) {  // a malformed range reserves everything between its ends
        const paddr swap = start;
        start = end;
        end = swap;
    }
    return PhysicalRange{align_down(clamp(start), kPageSize), align_up(clamp(end), kPageSize)};
}

// Every range that feeds the allocator, usable or reserved, after alignment.
class Layout {
public:
    Layout(const BootInfo& boot, PhysicalRange kernel_image, const PhysicalRange* extra, usize extra_count)
        : boot_(boot), kernel_(kernel_image), extra_(extra), extra_count_(extra_count) {}

    template <typename F> void for_each_usable(F&& visit) const {
        for (usize i = 0; i < memory_count(); ++i) {
            const MemoryRange& range = boot_.memory[i];
            if (range.kind != MemoryKind::usable) continue;
            visit(usable_interior(range.base, clamped_end(range.base, range.length)));
        }
    }

    template <typename F> void for_each_reserved(F&& visit) const {
        visit(PhysicalRange{0, FrameAllocator::kFirmwareAreaEnd});
        visit(reserved_hull(kernel_.start, kernel_.end));
        visit(reserved_hull(boot_.info_start, boot_.info_end));
        for (usize i = 0; i < module_count(); ++i) visit(reserved_hull(boot_.modules[i].start, boot_.modules[i].end));
        for (usize i = 0; i < extra_count_; ++i) visit(reserved_hull(extra_[i].start, extra_[i].end));
        for (usize i = 0; i < memory_count(); ++i) {
            const MemoryRange& range = boot_.memory[i];
            if (range.kind == MemoryKind::usable) continue;
            visit(reserved_hull(range.base, clamped_end(range.base, range.length)));
        }
    }

    // The smallest range boundary above `address`, or false if there is none.
    bool next_boundary(paddr address, paddr& next) const {
        bool found = false;
        auto consider = [&](paddr boundary) {
            if (boundary > address && (!found || boundary < next)) {
                next = boundary;
                found = true;
            }
        };
        auto consider_range = [&](PhysicalRange range) {
            consider(range.start);
            consider(range.end);
        };
        for_each_usable(consider_range);
        for_each_reserved(consider_range);
        return found;
    }

    // [start, end) lies between consecutive boundaries, so each range covers all of it or none.
    bool usable(paddr start, paddr end) const {
        bool inside_usable = false;
        bool touches_reserved = false;
        for_each_usable([&](PhysicalRange range) {
            if (range.start <= start && end <= range.end) inside_usable = true;
        });
        for_each_reserved([&](PhysicalRange range) {
            if (range.start < end && start < range.end) touches_reserved = true;
        });
        return inside_usable && !touches_reserved;
    }

private:
    // BootInfo comes from our parser, but a hand-built one must not make us read past its arrays.
    usize memory_count() const { return min(boot_.memory_count, BootInfo::kMaxMemoryRanges); }
    usize module_count() const { return min(boot_.module_count, BootInfo::kMaxModules); }

    const BootInfo& boot_;
    PhysicalRange kernel_;
    const PhysicalRange* extra_;
    usize extra_count_;
};

}  // namespace

Status<FrameError> FrameAllocator::init(const BootInfo& boot, PhysicalRange kernel_image, PhysicalMemory& memory,
                                        const PhysicalRange* extra_reserved, usize extra_count) {
    reset();
    if (extra_count > kMaxExtraReserved) return fail(FrameError::too_many_reserved);
    memory_ = &memory;
    build_regions(boot, kernel_image, extra_reserved, extra_count);
    number_regions();
    if (total_frames_ == 0) return fail(FrameError::no_usable_memory);
    if (auto status = place_bitmap(); !status) return status;
    number_regions();
    if (total_frames_ == 0) return fail(FrameError::no_usable_memory);
    clear_bitmap();
    return {};
}

void FrameAllocator::reset() {
    memory_ = nullptr;
    region_count_ = 0;
    total_frames_ = 0;
    free_frames_ = 0;
    dropped_frames_ = 0;
    bitmap_words_ = 0;
    search_hint_ = 0;
    bitmap_ = PhysicalRange{};
}

// Walks the address space from boundary to boundary: between two consecutive boundaries every
// range is either fully present or fully absent, so one containment test per step decides.
void FrameAllocator::build_regions(const BootInfo& boot, PhysicalRange kernel_image,
                                   const PhysicalRange* extra_reserved, usize extra_count) {
    const Layout layout(boot, kernel_image, extra_reserved, extra_count);
    paddr start = 0;
    paddr end = 0;
    while (layout.next_boundary(start, end)) {
        if (layout.usable(start, end)) append_region(start, end);
        start = end;
    }
}

void FrameAllocator::append_region(paddr start, paddr end) {
    const u64 frames = (end - start) / kPageSize;
    if (region_count_ > 0) {
        Region& last = regions_[region_count_ - 1];
        if (last.base + last.frame_count * kPageSize == start) {
            last.frame_count += frames;
            return;
        }
    }
    if (region_count_ == kMaxRegions) {
        dropped_frames_ += frames;
        return;
    }
    regions_[region_count_++] = Region{start, frames, 0};
}

void FrameAllocator::number_regions() {
    total_frames_ = 0;
    for (usize i = 0; i < region_count_; ++i) {
        regions_[i].first_bit = total_frames_;
        total_frames_ += regions_[i].frame_count;
    }
    bitmap_words_ = (total_frames_ + kBitsPerWord - 1) / kBitsPerWord;
}

// The bitmap takes the first frames of the lowest region that holds it and is reachable through
// `memory` (early on only the low identity map is). Those frames leave the managed set.
Status<FrameError> FrameAllocator::place_bitmap() {
    const u64 frames_needed = (bitmap_words_ + kWordsPerFrame - 1) / kWordsPerFrame;
    for (usize i = 0; i < region_count_; ++i) {
        Region& region = regions_[i];
        if (region.frame_count < frames_needed) continue;
        bool reachable = true;
        for (u64 f = 0; f < frames_needed && reachable; ++f)
            reachable = memory_->frame(region.base + f * kPageSize) != nullptr;
        if (!reachable) continue;
        bitmap_ = PhysicalRange{region.base, region.base + frames_needed * kPageSize};
        region.base = bitmap_.end;
        region.frame_count -= frames_needed;
        if (region.frame_count == 0) {
            for (usize j = i + 1; j < region_count_; ++j) regions_[j - 1] = regions_[j];
            --region_count_;
        }
        return {};
    }
    return fail(FrameError::no_room_for_bitmap);
}

void FrameAllocator::clear_bitmap() {
    for (paddr frame = bitmap_.start; frame < bitmap_.end; frame += kPageSize)
        fill_bytes(memory_->frame(frame), 0, kPageSize);
    // Bits past the last frame read as allocated, so the search never returns them.
    for (u64 bit = total_frames_; bit < bitmap_words_ * kBitsPerWord; ++bit) set(bit, true);
    free_frames_ = total_frames_;
    search_hint_ = 0;
}

u64& FrameAllocator::word(u64 index) {
    ASSERT(index < bitmap_words_);
    u64* frame = memory_->frame(bitmap_.start + (index / kWordsPerFrame) * kPageSize);
    ASSERT(frame != nullptr);  // it was reachable at init; a retarget must keep it so
    return frame[index % kWordsPerFrame];
}

bool FrameAllocator::test(u64 bit) { return (word(bit / kBitsPerWord) >> (bit % kBitsPerWord)) & 1; }

void FrameAllocator::set(u64 bit, bool allocated) {
    const u64 mask = u64{1} << (bit % kBitsPerWord);
    u64& w = word(bit / kBitsPerWord);
    w = allocated ? (w | mask) : (w & ~mask);
}

bool FrameAllocator::find_bit(paddr frame, u64& bit) const {
    for (usize i = 0; i < region_count_; ++i) {
        const Region& region = regions_[i];
        if (frame >= region.base && (frame - region.base) / kPageSize < region.frame_count) {
            bit = region.first_bit + (frame - region.base) / kPageSize;
            return true;
        }
    }
    return false;
}

paddr FrameAllocator::address_of(u64 bit) const {
    for (usize i = 0; i < region_count_; ++i) {
        const Region& region = regions_[i];
        if (bit >= region.first_bit && bit - region.first_bit < region.frame_count)
            return region.base + (bit - region.first_bit) * kPageSize;
    }
    PANIC("frame allocator: bit outside every region");
}

bool FrameAllocator::is_managed(paddr frame) const {
    u64 bit = 0;
    return is_aligned(frame, kPageSize) && find_bit(frame, bit);
}

Result<paddr, FrameError> FrameAllocator::allocate() {
    for (u64 index = search_hint_; index < bitmap_words_; ++index) {
        const u64 bits = word(index);
        if (bits == kAllBits) continue;
        const u64 bit = index * kBitsPerWord + static_cast<u64>(__builtin_ctzll(~bits));
        set(bit, true);
        --free_frames_;
        search_hint_ = index;
        return address_of(bit);
    }
    search_hint_ = bitmap_words_;
    return fail(FrameError::out_of_memory);
}

bool FrameAllocator::run_is_free(u64 first_bit, u64 count, u64& first_busy) {
    for (u64 bit = first_bit; bit < first_bit + count; ++bit) {
        if (test(bit)) {
            first_busy = bit;
            return false;
        }
    }
    return true;
}

Result<paddr, FrameError> FrameAllocator::allocate_contiguous(u64 count, u64 alignment) {
    if (count == 0 || alignment < kPageSize || (alignment & (alignment - 1)) != 0 || alignment > kPhysicalLimit)
        return fail(FrameError::invalid_request);
    if (count > free_frames_) return fail(FrameError::out_of_memory);
    for (usize i = 0; i < region_count_; ++i) {
        const Region& region = regions_[i];
        const paddr region_end = region.base + region.frame_count * kPageSize;
        paddr candidate = align_up(region.base, alignment);
        while (candidate < region_end && (region_end - candidate) / kPageSize >= count) {
            const u64 first_bit = region.first_bit + (candidate - region.base) / kPageSize;
            u64 busy = 0;
            if (run_is_free(first_bit, count, busy)) {
                for (u64 bit = first_bit; bit < first_bit + count; ++bit) set(bit, true);
                free_frames_ -= count;
                return candidate;
            }
            candidate = align_up(address_of(busy) + kPageSize, alignment);
        }
    }
    return fail(FrameError::out_of_memory);
}

Status<FrameError> FrameAllocator::free(paddr frame) {
    if (!is_aligned(frame, kPageSize)) return fail(FrameError::misaligned_frame);
    u64 bit = 0;
    if (!find_bit(frame, bit)) return fail(FrameError::foreign_frame);
    if (!test(bit)) return fail(FrameError::double_free);
    set(bit, false);
    ++free_frames_;
    search_hint_ = min(search_hint_, bit / kBitsPerWord);
    return {};
}

const char* frame_error_name(FrameError error) {
    switch (error) {
    case FrameError::out_of_memory: return "out of physical memory";
    case FrameError::no_usable_memory: return "no usable physical memory";
    case FrameError::no_room_for_bitmap: return "no reachable room for the frame bitmap";
    case FrameError::too_many_reserved: return "too many extra reserved ranges";
    case FrameError::misaligned_frame: return "frame address not 4 KiB aligned";
    case FrameError::foreign_frame: return "frame not managed by the allocator";
    case FrameError::double_free: return "frame freed twice";
    case FrameError::invalid_request: return "invalid contiguous allocation request";
    }
    return "unknown frame error";
}

}  // namespace nestor::x86
