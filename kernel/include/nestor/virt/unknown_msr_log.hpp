// Which MSRs nobody emulates a domain has touched, so that the kernel reports each of them once
// per domain: a guest that probes an MSR in a loop (or walks a whole range) must not flood the
// console, yet the first touch of each is what someone debugging a guest needs to see.
#pragma once

#include "nestor/lib/types.hpp"

namespace nestor::virt {

class UnknownMsrLog {
public:
    static constexpr u32 kCapacity = 32;

    // True the first time `index` is seen. Once kCapacity indices are remembered, true exactly
    // once more (for a line saying further MSRs go unreported; full() tells which line to
    // print) and false from then on.
    bool first_time(u32 index);
    // kCapacity indices are remembered: a first_time() that answers true now means "the rest".
    bool full() const { return count_ == kCapacity; }

private:
    bool seen(u32 index) const;

    u32 indices_[kCapacity] = {};
    u32 count_ = 0;
    bool overflow_reported_ = false;
};

}  // namespace nestor::virt
