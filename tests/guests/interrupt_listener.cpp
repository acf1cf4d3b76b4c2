// Takes signals as interrupts (NOTIFICATION_SET_VECTOR): three rounds with the sender
// (interrupt_sender.cpp), each started by a signal from here. Round 1 sleeps in HLT until the
// interrupt wakes it; round 2 keeps interrupts disabled and must see nothing while it makes exits,
// then the interrupt arrives once they are enabled; round 3 checks that a poll re-arms it.
#include "nestor/guest.hpp"

using namespace nestor::guest;

namespace {

constexpr u8 kVector = 0x40;
constexpr u64 kSenderSignal = NESTOR_GUEST_SLOT_SIGNAL_BASE;

volatile u32 interrupts = 0;
volatile u64 badges = 0;

void on_signal(u8 vector) {
    if (vector != kVector) return;
    badges = badges | poll_signals();
    interrupts = interrupts + 1;
}

bool signal_sender() { return invoke(NESTOR_HC_NOTIFICATION_SIGNAL, kSenderSignal).ok(); }

// Sleeps (HLT with interrupts on) until the interrupt count passes `count`.
void sleep_until(u32 count) {
    while (interrupts < count) asm volatile("sti; hlt; cli" ::: "memory");
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    set_interrupt_handler(kVector, on_signal);
    HypercallResult set = set_signal_vector(kVector);
    println("set vector ", hex(kVector, 2), ": status ", set.status);
    println("set vector 0x10: status ", set_signal_vector(0x10).status);
    println("set vector 0x100: status ",
            hypercall(NESTOR_HC_NOTIFICATION_SET_VECTOR, NESTOR_GUEST_SLOT_NOTIFICATION, 0x100).status);
    if (!set.ok() || !signal_sender()) return 1;

    sleep_until(1);
    println("round 1: woken by interrupt ", hex(kVector, 2), ", badges ", hex(badges, 4));

    // Interrupts disabled: the signal stays pending, and no exit delivers it.
    if (!signal_sender()) return 1;
    u32 before = interrupts;
    for (int i = 0; i < 200; ++i) yield();  // the sender runs and signals meanwhile
    println("round 2: ", interrupts - before, " interrupts while disabled");
    asm volatile("sti; nop" ::: "memory");
    (void)cpuid(0);  // an exit: the kernel injects the pending interrupt on the way back
    asm volatile("cli" ::: "memory");
    println("round 2: ", interrupts - before, " interrupt once enabled");

    // The handler's poll re-armed the interrupt: the next signal raises it again.
    if (!signal_sender()) return 1;
    sleep_until(3);
    println("round 3: interrupts ", interrupts, ", badges ", hex(badges, 4));
    return interrupts == 3 ? 0 : 1;
}
