// What the vendor-neutral kernel needs from the machine. platform/x86 implements these; the
// kernel never touches hardware itself.
#pragma once

#include "nestor/lib/types.hpp"

namespace nestor {

// Status with which a run ends. Under QEMU's isa-debug-exit the process exits with 2*status+1.
enum class ExitStatus : u8 { success = 0, failure = 1, panic = 2, cpu_exception = 3 };

enum class CpuVendor : u8 { unknown, amd, intel };

struct CpuFeatures {
    CpuVendor vendor;
    char vendor_string[13];
    char brand[49];
    // AMD SVM
    bool svm;
    bool npt;
    bool nrips;
    u32 svm_asids;
    // Intel VMX
    bool vmx;
    bool ept;
    bool vpid;
    bool unrestricted_guest;
};

namespace platform {

void console_write(const char* text, usize length);
// One byte typed on the host's console, if one has arrived (never waits).
bool console_read(u8& byte);
const CpuFeatures& cpu_features();
u64 timestamp();  // cycles; instructions under QEMU -icount
// The timestamp counter's rate in kHz, measured once on first use (a few ms of boot time).
u64 timestamp_khz();
// Idles the CPU (no busy wait) until `deadline` (a timestamp) or the next interrupt, whichever
// comes first; returns at once if the deadline has passed.
void idle_until(u64 deadline);
// The host's wall clock: seconds since 1970-01-01 00:00 UTC (0 if the host's clock is unreadable).
u64 wall_clock();
[[noreturn]] void shutdown(ExitStatus status);

// Physical memory for kernel use (e.g. a built-in guest's RAM): `bytes` contiguous, zeroed,
// 4 KiB aligned. False when memory is short; never panics.
bool allocate_physical(u64 bytes, paddr& out);
// The same, not cleared: for memory whose every user constructs or clears what it takes (the
// capability runtime's untyped pool, where each kernel object is built by its constructor and a
// MEMORY retype clears what a guest gets).
bool allocate_physical_uncleared(u64 bytes, paddr& out);
void free_physical(paddr base, u64 bytes);
// Where the kernel reaches physical memory (the direct map).
void* physical_to_virtual(paddr address);

// Memory for a component loaded at boot (NESTED_VIRT=MODULE, kernel/virt/nested_module.cpp).
// reserve_module_memory: `bytes` (at most kModuleMemoryBytes) of zeroed memory the kernel writes
// the relocated image into through the direct map, at `writable`. map_module_region maps a page
// run of it at module_area() + offset, never writable and executable at once. seal_module_memory
// then removes the direct map's alias of the whole reservation, so no page of the component is
// writable anywhere while it is executable in the module area. The reservation is for good.
inline constexpr u64 kModuleMemoryBytes = u64{2} << 20;
bool reserve_module_memory(u64 bytes, paddr& physical, void*& writable);
vaddr module_area();
bool map_module_region(paddr physical, u64 offset, u64 bytes, bool writable, bool executable);
bool seal_module_memory(paddr physical);

// Port I/O on behalf of a guest that holds the port (size 1, 2 or 4 bytes).
u32 port_read(u16 port, u8 size);
void port_write(u16 port, u8 size, u32 value);
[[noreturn]] void halt_forever();

}  // namespace platform
}  // namespace nestor
