// Never gives the CPU back; cmdline "mode=...":
//   cli-loop   cli; jmp .      (interrupts off: only the kernel's preemption ends a slice)
//   sti-loop   sti; jmp .
//   cli-hlt    cli; hlt        (waits for an interrupt that can never come)
// The scheduler must still run the other domains, and the watchdog stop the loops.
#include "hostile.hpp"

using namespace nestor::guest;

extern "C" int guest_main(const nestor_guest_boot* boot) {
    char mode[16];
    const char* what = boot->cmdline_value("mode", mode, sizeof(mode));
    if (!what) what = "cli-loop";
    println("spin: ", what);
    if (string_equal(what, "sti-loop"))
        asm volatile("sti; 1: jmp 1b");
    else if (string_equal(what, "cli-hlt"))
        asm volatile("cli; hlt");
    else
        asm volatile("cli; 1: jmp 1b");
    println("spin: went on after ", what);
    return 1;
}
