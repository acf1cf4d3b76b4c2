// A domain's APIC bus (apic_router.hpp).
#include "nestor/pc/apic_router.hpp"

namespace nestor::pc {

bool ApicRouter::add(LocalApic& apic) {
    if (count_ == kMaxApics) return false;
    apics_[count_++] = &apic;
    return true;
}

void ApicRouter::deliver(const ApicMessage& message) {
    if (message.mode == DeliveryMode::lowest_priority) {
        if (const int target = lowest_priority_target(message); target >= 0)
            deliver_to(static_cast<usize>(target), message);
        return;
    }
    for (usize i = 0; i < count_; ++i)
        if (apics_[i]->matches(message)) deliver_to(i, message);
}

// A software-disabled APIC would drop the interrupt: it takes no part in the arbitration. A
// focus processor (the vector already pending or in service there) takes the message whatever
// its priority, so that one vCPU handles the interrupt's repeats (SDM 11.6.2.4).
int ApicRouter::lowest_priority_target(const ApicMessage& message) const {
    int target = -1;
    for (usize i = 0; i < count_; ++i) {
        const LocalApic& apic = *apics_[i];
        if (!apic.software_enabled() || !apic.matches(message)) continue;
        if (apic.is_focus_for(message.vector)) return static_cast<int>(i);
        if (target < 0 || apic.arbitration_priority() < apics_[target]->arbitration_priority())
            target = static_cast<int>(i);
    }
    return target;
}

void ApicRouter::deliver_to(usize index, const ApicMessage& message) {
    apics_[index]->accept(message);
    if (wakeup_ != nullptr) wakeup_->interrupt_arrived(index);
}

}  // namespace nestor::pc
