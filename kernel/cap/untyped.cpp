// Untyped memory: watermark carving and byte-exact accounting of what was carved.
#include "nestor/cap/untyped.hpp"

#include "nestor/lib/assert.hpp"
#include "nestor/lib/util.hpp"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NESTOR_CAP_ASAN 1
extern "C" void __asan_poison_memory_region(void const volatile* addr, __SIZE_TYPE__ size);
extern "C" void __asan_unpoison_memory_region(void const volatile* addr, __SIZE_TYPE__ size);
#endif
#endif

namespace nestor::cap {

namespace {

// In sanitized host builds a dead object's memory is poisoned, so any use after destruction is
// reported; carving unpoisons it again.
void mark_dead(KernelMemory& memory, paddr base, u64 size) {
#if defined(NESTOR_CAP_ASAN)
    if (size != 0) __asan_poison_memory_region(memory.window(base, size), size);
#else
    (void)memory, (void)base, (void)size;
#endif
}

void mark_live(KernelMemory& memory, paddr base, u64 size) {
#if defined(NESTOR_CAP_ASAN)
    if (size != 0) __asan_unpoison_memory_region(memory.window(base, size), size);
#else
    (void)memory, (void)base, (void)size;
#endif
}

// Where a request lands if carved with the watermark at offset; false if it does not fit.
bool place(u64 base, u64 capacity, u64& offset, const CarveRequest& request, u64& at) {
    u64 start = 0;
    if (!checked_add(base, offset, start)) return false;
    u64 aligned = align_up(start, request.align);
    if (aligned < start) return false;
    u64 end = 0;
    if (!checked_add(aligned, request.size, end)) return false;
    if (end - base > capacity) return false;
    at = aligned;
    offset = end - base;
    return true;
}

}  // namespace

u64 Untyped::header_bytes() { return align_up(sizeof(Untyped), kObjectAlign); }

Untyped::Untyped(System& system, paddr base, u64 size)
    : KernelObject(ObjectType::untyped), system_(&system), size_(size) {
    phys = base;
}

Untyped* Untyped::create_at(System& system, paddr base, u64 size) {
    ASSERT(size > header_bytes() && is_aligned(base, kPageSize));
    mark_live(system.memory(), base, header_bytes());
    void* memory = system.memory().window(base, sizeof(Untyped));
    return new (memory) Untyped(system, base, size);
}

bool Untyped::fits(const CarveRequest* requests, usize count) const {
    u64 offset = watermark_;
    for (usize i = 0; i < count; ++i) {
        u64 at = 0;
        if (!place(usable_base(), capacity(), offset, requests[i], at)) return false;
    }
    return true;
}

paddr Untyped::carve(const CarveRequest& request, u64& begin) {
    begin = watermark_;
    u64 at = 0;
    bool placed = place(usable_base(), capacity(), watermark_, request, at);
    ASSERT(placed);
    mark_live(system_->memory(), at, request.size);
    return at;
}

void Untyped::adopt(KernelObject& object, u64 begin, u64 end, u64 footprint) {
    object.source = this;
    object.carve_begin = begin;
    object.carve_end = end;
    object.footprint = footprint;
    object.prev_carved = nullptr;
    object.next_carved = first_carved_;
    if (first_carved_ != nullptr) first_carved_->prev_carved = &object;
    first_carved_ = &object;
    ++children_;
    used_ += footprint;
    ASSERT(used_ <= watermark_ && watermark_ <= capacity());
}

bool Untyped::give_back(KernelObject& object) {
    ASSERT(object.source == this && children_ > 0 && used_ >= object.footprint);
    if (object.prev_carved != nullptr) {
        object.prev_carved->next_carved = object.next_carved;
    } else {
        first_carved_ = object.next_carved;
    }
    if (object.next_carved != nullptr) object.next_carved->prev_carved = object.prev_carved;
    --children_;
    used_ -= object.footprint;
    mark_dead(system_->memory(), usable_base() + object.carve_begin, object.carve_end - object.carve_begin);
    // The watermark falls back to the end of the highest live carve: freeing the newest object
    // makes its memory reusable at once, and freeing the last one resets the untyped.
    u64 highest = 0;
    for (KernelObject* live = first_carved_; live != nullptr; live = live->next_carved) {
        highest = max(highest, live->carve_end);
    }
    watermark_ = highest;
    return unreferenced(*this) && !doomed;
}

}  // namespace nestor::cap
