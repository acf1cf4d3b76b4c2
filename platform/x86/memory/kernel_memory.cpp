#include "nestor/x86/kernel_memory.hpp"

#include "nestor/lib/assert.hpp"
#include "nestor/log.hpp"

namespace nestor::x86 {
namespace {
constexpr u64 kBootIdentityLimit = u64{1} << 30;  // the boot stub maps the first GiB
WindowedPhysicalMemory physical_memory(0, kBootIdentityLimit);
FrameAllocator frames;
}  // namespace

FrameAllocator& kernel_frames() { return frames; }
WindowedPhysicalMemory& kernel_physical_memory() { return physical_memory; }

paddr allocate_zeroed_frame_or_panic(const char* purpose) {
    auto frame = frames.allocate();
    if (!frame) {
        log::error("out of physical memory allocating {} ({} frames managed, {} free)", purpose,
                   frames.total_frames(), frames.free_frames());
        PANIC("physical memory exhausted");
    }
    u64* words = physical_memory.frame(*frame);
    ASSERT(words != nullptr);
    fill_bytes(words, 0, kPageSize);
    return *frame;
}

}  // namespace nestor::x86
