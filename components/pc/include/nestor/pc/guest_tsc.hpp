// A PC domain's time stamp counter: the host's TSC plus one offset that every vCPU of the domain
// shares, so the guest's TSC starts near 0 when the domain starts, reads the same on every vCPU
// and never goes backwards unless the guest itself writes it. The backends add offset() to the
// host's TSC for RDTSC and RDTSCP (set_tsc_offset); every timer of the platform reads now().
//
// IA32_TSC and IA32_TSC_ADJUST are the domain's, not each vCPU's: a WRMSR to either on any vCPU
// moves the TSC of all (as if the OS had written the same on every processor, which is what
// Linux does when it finds them apart). Per-vCPU values would give the timers one clock per
// vCPU and let the guest see time run backwards when a thread moves between vCPUs.
#pragma once

#include "nestor/pc/links.hpp"

namespace nestor::pc {

class GuestTsc final : public GuestClock {
public:
    // The guest's TSC reads `start` now: 0 for a new PC, where the TSC was for a PC built again at
    // a machine reset (so that it never goes backwards). `host` is the host's TSC.
    explicit GuestTsc(const GuestClock& host, u64 start = 0) : host_(host), offset_(start - host.now()) {}
    GuestTsc(const GuestTsc&) = delete;
    GuestTsc& operator=(const GuestTsc&) = delete;

    u64 now() const override { return host_.now() + offset_; }
    u64 tsc_khz() const override { return host_.tsc_khz(); }

    // What the backends add to the host's TSC on every vCPU of the domain (wraps, as the CPU's
    // sum does).
    u64 offset() const { return offset_; }
    // IA32_TSC_ADJUST: the sum of what the guest's writes to IA32_TSC and IA32_TSC_ADJUST moved
    // the TSC by (0 after reset).
    u64 adjust() const { return adjust_; }

    // WRMSR IA32_TSC: now() reads `value`, and TSC_ADJUST moves by as much (SDM vol. 3B 18.17.3).
    void write_tsc(u64 value) { move(value - now()); }
    // WRMSR IA32_TSC_ADJUST: the TSC moves by the difference.
    void write_adjust(u64 value) { move(value - adjust_); }

    // The host timestamp at which the guest's TSC reaches `guest_time`: now for a time already
    // passed, kNoDeadline for kNoDeadline (and for what lies beyond the host's range).
    u64 host_time(u64 guest_time) const;

private:
    void move(u64 by) {
        offset_ += by;
        adjust_ += by;
    }

    const GuestClock& host_;
    u64 offset_;
    u64 adjust_ = 0;
};

inline u64 GuestTsc::host_time(u64 guest_time) const {
    if (guest_time == kNoDeadline) return kNoDeadline;
    const u64 host_now = host_.now();
    const u64 guest_now = host_now + offset_;
    if (guest_time <= guest_now) return host_now;
    const u64 ahead = guest_time - guest_now;
    return ahead >= kNoDeadline - host_now ? kNoDeadline : host_now + ahead;
}

}  // namespace nestor::pc
