// Notification: a word of badged signals between domains. Signalling ORs the badge of the
// capability used into the word; polling returns and clears it. A domain waiting for a signal
// (HLT with interrupts enabled) is woken by the scheduler once pending() says one arrived.
// With a vector set, a pending signal also raises one virtual interrupt; a poll re-arms it, so a
// handler that polls never misses a signal that arrives while it runs.
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
        interrupt_raised_ = false;
        return was_pending;
    }

    // The vector a pending signal raises (0: none).
    void set_vector(u8 vector) {
        vector_ = vector;
        interrupt_raised_ = false;
    }
    u8 vector() const { return vector_; }
    // The vector of an interrupt that is due (a signal is pending and no interrupt was raised
    // for it since the last poll), or 0.
    u8 interrupt_due() const { return (pending_ && !interrupt_raised_) ? vector_ : 0; }
    void interrupt_raised() { interrupt_raised_ = true; }

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
    bool interrupt_raised_ = false;
    u8 vector_ = 0;
    Irq* bound_irq_ = nullptr;
    u32 bound_line_ = 0;
};

}  // namespace nestor::cap
