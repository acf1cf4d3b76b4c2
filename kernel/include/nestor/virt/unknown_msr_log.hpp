// Which MSRs nobody emulates a domain has touched, so that the kernel reports each of them once
// per domain: a guest that probes an MSR in a loop (or walks a whole range) must not flood the
// console, yet the first touch of each is what someone debugging a guest needs to see.
#pragma once

#include "nestor/lib/types.hpp"

namespace nestor::virt {

class UnknownMsrLog {
public:
    static constexpr u32 kCapacity = 32;

    enum class Report : u8 {
        none,          // seen before, or after the line about the rest
        this_msr,      // the first touch of this MSR: report it
        further_msrs,  // the log is full: say, once, that further MSRs go unreported
    };

    // What to report of a touch of MSR `index`: each of the first kCapacity MSRs once, then one
    // line for all the others.
    Report note(u32 index);

private:
    bool seen(u32 index) const;

    u32 indices_[kCapacity] = {};
    u32 count_ = 0;
    bool overflow_reported_ = false;
};

}  // namespace nestor::virt
