// I/O to ports it does not hold: the PIC, the PIT, the CMOS, the PS/2 controller (0xfe to 0x64
// resets a real machine), the reset control register 0xcf9 and port 0x92 (fast reset). Nothing may
// reach the machine, reads return all ones, and the appliance ends with its summary, not a reset.
// It also writes and reads back a port the manifest grants it (slot 10 on): that one is real.
// Cmdline "string": ends with a string I/O instruction (outsb) instead of exiting.
#include "hostile.hpp"

using namespace nestor::guest;

namespace {

void read_all_widths(const char* name, u16 port) {
    u8 b = inb(port);
    u16 w = inw(port);
    u32 l = inl(port);
    println("ports: in ", name, " ", hex(port), ": b ", hex(b, 2), " w ", hex(w, 4), " l ", hex(l, 8));
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot* boot) {
    // Writes that would reprogram or reset the machine.
    outb(0x20, 0x11);  // PIC: start initialisation
    outb(0x21, 0xff);  // PIC: mask everything
    outb(0xa1, 0xff);
    outb(0x43, 0x30);  // PIT channel 0, mode 0
    outb(0x40, 0x01);
    outb(0x40, 0x00);
    outw(0x40, 0xffff);
    outl(0x40, 0xffffffff);
    outb(0x70, 0x8f);  // CMOS: NMI off, shutdown status byte
    outb(0x71, 0x0a);
    outb(0x64, 0xfe);     // PS/2 controller: pulse the reset line
    outb(0xcf9, 0x06);    // reset control register: hard reset
    outb(0x92, 0x01);     // system control port A: fast reset
    outw(0x604, 0x2000);  // QEMU's ACPI power-off (PIIX) would end the run with status 0
    outw(0xb004, 0x2000);
    println("ports: wrote the PIC, PIT, CMOS, 0x64=0xfe, 0xcf9=0x06, 0x92=0x01, 0x604, 0xb004");

    read_all_widths("PIC", 0x21);
    read_all_widths("PIT", 0x40);
    read_all_widths("CMOS", 0x71);
    read_all_widths("PS/2 status", 0x64);
    read_all_widths("PCI config address", 0xcf8);

    // The ports the manifest granted, as capabilities from slot 10 on.
    for (u64 slot = NESTOR_GUEST_SLOT_IOPORT_BASE; slot < NESTOR_GUEST_SLOT_IOPORT_BASE + 2; ++slot) {
        HypercallResult id = invoke(NESTOR_HC_CAP_IDENTIFY, NESTOR_CSPACE_ROOT, slot);
        println("ports: slot ", slot, ": status ", id.status, ", type ", id.value[0], ", rights ", hex(id.value[1]));
    }
    char text[16];
    if (const char* held = boot->cmdline_value("held", text, sizeof(text))) {
        u16 port = static_cast<u16>(hostile::number_option("held", 0x80));
        (void)held;
        outb(port, 0x5a);  // a DMA page register: it reads back what was written, if it was reached
        println("ports: held port ", hex(port), " reads back ", hex(inb(port), 2), " after writing 0x5a");
    }

    if (boot->cmdline_has("string")) {
        static const char bytes[4] = {'a', 'b', 'c', 'd'};
        println("ports: outsb to 0x80");
        asm volatile("mov $0x80, %%dx; rep outsb" ::"S"(bytes), "c"(4) : "rdx", "memory");
        println("ports: still running after outsb");
        return 1;
    }
    println("ports: still alive");
    return 0;
}
