#include "nestor/x86/kernel_memory.hpp"

#include "nestor/lib/assert.hpp"
#include "nestor/log.hpp"
#include "nestor/platform.hpp"

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
        log::error("out of physical memory allocating {} ({} frames managed, {} free)", purpose, frames.total_frames(),
                   frames.free_frames());
        PANIC("physical memory exhausted");
    }
    u64* words = physical_memory.frame(*frame);
    ASSERT(words != nullptr);
    fill_bytes(words, 0, kPageSize);
    return *frame;
}

}  // namespace nestor::x86

namespace nestor::platform {

bool allocate_physical_uncleared(u64 bytes, paddr& out) {
    u64 frames = align_up(bytes, kPageSize) / kPageSize;
    if (frames == 0) return false;
    auto run = x86::kernel_frames().allocate_contiguous(frames, kPageSize);
    if (!run) return false;
    out = *run;
    return true;
}

bool allocate_physical(u64 bytes, paddr& out) {
    if (!allocate_physical_uncleared(bytes, out)) return false;
    fill_bytes(physical_to_virtual(out), 0, align_up(bytes, kPageSize));
    return true;
}

void free_physical(paddr base, u64 bytes) {
    for (u64 offset = 0; offset < align_up(bytes, kPageSize); offset += kPageSize) {
        auto freed = x86::kernel_frames().free(base + offset);
        if (!freed) log::warn("memory: freeing frame {:#x}: {}", base + offset, x86::frame_error_name(freed.error()));
    }
}

void* physical_to_virtual(paddr address) {
    u64* frame = x86::kernel_physical_memory().frame(align_down(address, kPageSize));
    ASSERT(frame != nullptr);
    return reinterpret_cast<u8*>(frame) + (address & (kPageSize - 1));
}

}  // namespace nestor::platform
