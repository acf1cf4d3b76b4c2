// Where a domain's RAM lies in guest-physical space. A bare domain's is one range from 0. A PC's
// stops below the PC's hole, where the I/O APIC (0xFEC00000), the local APIC (0xFEE00000) and a
// PC's firmware and 32-bit PCI windows live, and the rest continues at 4 GiB, as a PC's chipset
// remaps it (and as QEMU's pc and q35 machines lay out more than 3 GiB: below_4g_mem_size).
#pragma once

#include "nestor/lib/types.hpp"

namespace nestor::virt {

// RAM at and above 4 GiB starts here.
inline constexpr u64 kHighRamBase = u64{1} << 32;
// A PC's RAM below 4 GiB ends here, 3 GiB as on QEMU's machines: a multiple of the largest
// memory region the toolstack carves (1 GiB), so both ranges are whole regions, and room below
// the APICs for what a PC puts there.
inline constexpr u64 kPcLowRamEnd = 0xC0000000;

struct RamLayout {
    u64 below_4g;  // bytes from guest-physical 0
    u64 above_4g;  // bytes from kHighRamBase
};

// `bytes` of RAM for a domain, a PC's (`pc`) or a bare one's.
constexpr RamLayout ram_layout(u64 bytes, bool pc) {
    if (!pc || bytes <= kPcLowRamEnd) return {bytes, 0};
    return {kPcLowRamEnd, bytes - kPcLowRamEnd};
}

}  // namespace nestor::virt
