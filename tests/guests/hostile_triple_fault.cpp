// Makes exception delivery impossible; cmdline "mode=...":
//   empty-idt    lidt with limit 0, then int3: #BP -> #GP -> #DF -> triple fault
//   bad-stack    RSP on an unmapped page, then int3: every push faults -> #DF -> triple fault
//   idt-outside  the IDT at guest-physical 0x40000000, outside its memory, then int3: the CPU's
//                read of the gate reaches the nested page tables
// Nestor must stop the domain with a report; nothing after int3 may run.
#include "hostile.hpp"

using namespace nestor::guest;

namespace {
struct [[gnu::packed]] Idtr {
    u16 limit;
    u64 base;
};
}  // namespace

extern "C" int guest_main(const nestor_guest_boot* boot) {
    char mode[24];
    const char* what = boot->cmdline_value("mode", mode, sizeof(mode));
    if (!what) what = "empty-idt";
    if (string_equal(what, "bad-stack")) {
        println("triple: RSP at unmapped linear 0x200000000, then int3");
        asm volatile("mov $0x200000000, %%rsp; int3" ::: "memory");
    } else {
        Idtr idtr{0, 0};
        if (string_equal(what, "idt-outside")) idtr = Idtr{0xfff, 0x40000000};
        println("triple: lidt base ", hex(idtr.base), " limit ", hex(idtr.limit), ", then int3");
        asm volatile("lidt %0; int3" ::"m"(idtr) : "memory");
    }
    println("triple: still running after int3");
    return 1;
}
