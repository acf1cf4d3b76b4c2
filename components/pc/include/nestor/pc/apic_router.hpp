// A domain's APIC bus: hands each interrupt message (from the I/O APIC, or an IPI from a local
// APIC's ICR) to the local APICs it addresses, and tells the platform which vCPUs got something
// so that a halted one wakes. Lowest-priority messages go to one matching, software-enabled APIC:
// the focus processor, the first that already has the vector pending or in service (unless its
// SVR turns focus checking off), else the one with the lowest arbitration priority (ties: the
// lowest index; from the TPR its vCPU holds now, LocalApic::task_priority), as the SDM's
// arbitration (11.6.2.4) describes; every other mode goes to every matching APIC.
#pragma once

#include "nestor/pc/links.hpp"
#include "nestor/pc/local_apic.hpp"

namespace nestor::pc {

// Hears that the local APIC added at `apic_index` accepted a message.
class VcpuWakeup {
public:
    virtual void interrupt_arrived(usize apic_index) = 0;

protected:
    ~VcpuWakeup() = default;
};

class ApicRouter final : public ApicBus {
public:
    static constexpr usize kMaxApics = 64;

    ApicRouter() = default;
    explicit ApicRouter(VcpuWakeup& wakeup) : wakeup_(&wakeup) {}
    ApicRouter(const ApicRouter&) = delete;
    ApicRouter& operator=(const ApicRouter&) = delete;

    void set_wakeup(VcpuWakeup& wakeup) { wakeup_ = &wakeup; }
    // The APIC's index is the order of its addition; false (and nothing added) when full.
    bool add(LocalApic& apic);
    usize size() const { return count_; }

    void deliver(const ApicMessage& message) override;

private:
    // The lowest-priority message's one destination, or -1: no software-enabled APIC matches.
    int lowest_priority_target(const ApicMessage& message) const;
    void deliver_to(usize index, const ApicMessage& message);

    LocalApic* apics_[kMaxApics] = {};
    usize count_ = 0;
    VcpuWakeup* wakeup_ = nullptr;
};

}  // namespace nestor::pc
