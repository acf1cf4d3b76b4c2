// Notification: a word of badged signals between domains. Signalling ORs the badge of the
// capability used into the word; polling returns and clears it. A domain waiting for a signal
// (HLT with interrupts enabled) is woken by the scheduler once pending() says one arrived.
#pragma once

#include "nestor/cap/object.hpp"

namespace nestor::cap {

class Irq;

class Notification final : public KernelObject {
public:
    Notification() : KernelObject(ObjectType::notification) {}

    void signal(u64 badge) {
        word_ |= badge;
        pending_ = true;
    }
    // Returns whether a signal arrived since the last poll, and the accumulated badges.
    bool poll(u64& word) {
        bool was_pending = pending_;
        word = word_;
        word_ = 0;
        pending_ = false;
        return was_pending;
    }

    // Whether a signal arrived since the last poll (without taking it).
    bool pending() const { return pending_; }

    Irq* bound_irq() const { return bound_irq_; }
    u32 bound_line() const { return bound_line_; }
    void bind(Irq* irq, u32 line) {
        bound_irq_ = irq;
        bound_line_ = line;
    }

private:
    u64 word_ = 0;
    bool pending_ = false;
    Irq* bound_irq_ = nullptr;
    u32 bound_line_ = 0;
};

}  // namespace nestor::cap
