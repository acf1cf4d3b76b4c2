#include "nestor/pc/irq_router.hpp"

namespace nestor::pc {

static_assert(kTimerGsi < IoApic::kPins);

void IrqRouter::set_level(u8 line, bool high) {
    if (line >= IoApic::kPins) return;
    if (line < Pic8259Pair::kLines) pic_.set_level(line, high);
    if (line == kTimerIrq)
        io_apic_.set_level(kTimerGsi, high);
    else if (line != Pic8259Pair::kCascadeIrq)
        io_apic_.set_level(line, high);
}

}  // namespace nestor::pc
