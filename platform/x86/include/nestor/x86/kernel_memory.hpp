// The kernel's physical memory: the frame allocator and the window through which physical
// addresses are reached (the boot identity map, then the direct map at PHYSMAP_BASE).
#pragma once

#include "nestor/x86/frame_allocator.hpp"
#include "nestor/x86/physical_memory.hpp"

namespace nestor::x86 {

FrameAllocator& kernel_frames();
WindowedPhysicalMemory& kernel_physical_memory();

// A zeroed 4 KiB frame for kernel use; panics with a clear message when memory is exhausted.
paddr allocate_zeroed_frame_or_panic(const char* purpose);

// The kernel virtual address of a physical frame (through the direct map once it is set up).
template <typename T> T* frame_pointer(paddr frame) {
    return reinterpret_cast<T*>(kernel_physical_memory().frame(frame));
}

}  // namespace nestor::x86
