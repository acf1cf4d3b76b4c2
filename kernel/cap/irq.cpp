// Irq: routing of interrupt lines to notifications.
#include "nestor/cap/irq.hpp"

#include "nestor/cap/notification.hpp"
#include "nestor/lib/assert.hpp"

namespace nestor::cap {

void Irq::bind(u32 line, Notification& target, u64 badge) {
    ASSERT(line < kLineCount && lines_[line].target == nullptr && target.bound_irq() == nullptr);
    lines_[line] = Line{&target, badge};
    target.bind(this, line);
}

void Irq::unbind(u32 line) {
    ASSERT(line < kLineCount);
    if (lines_[line].target != nullptr) lines_[line].target->bind(nullptr, 0);
    lines_[line] = Line{};
}

bool Irq::raise(u32 line) {
    if (line >= kLineCount || lines_[line].target == nullptr) return false;
    lines_[line].target->signal(lines_[line].badge);
    return true;
}

void Irq::unbind_all() {
    for (u32 line = 0; line < kLineCount; ++line) unbind(line);
}

}  // namespace nestor::cap
