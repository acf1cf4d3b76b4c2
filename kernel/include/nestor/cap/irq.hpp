// Irq: the interrupt lines the platform routes to domains. A control capability issues a
// capability for one line; a line capability binds that line to a Notification, which is
// signalled with the binding badge when the line fires.
#pragma once

#include "nestor/cap/object.hpp"

namespace nestor::cap {

class Notification;

class Irq final : public KernelObject {
public:
    static constexpr u32 kLineCount = 256;
    Irq() : KernelObject(ObjectType::irq) {}

    Notification* target(u32 line) const { return lines_[line].target; }
    void bind(u32 line, Notification& target, u64 badge);
    void unbind(u32 line);
    // Called by the platform when a line fires; false if nobody listens.
    bool raise(u32 line);
    // Unbinds every line (at destruction).
    void unbind_all();

private:
    struct Line {
        Notification* target = nullptr;
        u64 badge = 0;
    };
    Line lines_[kLineCount];
};

}  // namespace nestor::cap
