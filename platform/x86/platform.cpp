// The platform services the kernel calls: console, shutdown.
#include "nestor/platform.hpp"

#include "nestor/log.hpp"
#include "nestor/x86/cpu.hpp"
#include "nestor/x86/uart16550.hpp"

namespace nestor::platform {
namespace {
constexpr u16 kQemuDebugExitPort = 0xF4;
constexpr u16 kBochsShutdownPort = 0x8900;
}  // namespace

void console_write(const char* text, usize length) { x86::uart::write(x86::uart::kCom1, text, length); }
bool console_read(u8& byte) { return x86::uart::read(x86::uart::kCom1, byte); }

[[noreturn]] void shutdown(ExitStatus status) {
    // The marker line lets harnesses judge emulators that cannot report a status (Bochs).
    log::info("NESTOR-EXIT: {}", static_cast<u8>(status));
    x86::uart::flush(x86::uart::kCom1);
    x86::outb(kQemuDebugExitPort, static_cast<u8>(status));
    for (const char* c = "Shutdown"; *c; ++c) x86::outb(kBochsShutdownPort, static_cast<u8>(*c));
    x86::halt_forever();
}

[[noreturn]] void halt_forever() { x86::halt_forever(); }

u32 port_read(u16 port, u8 size) {
    u32 value = 0;
    if (size == 1)
        asm volatile("inb %1, %b0" : "=a"(value) : "Nd"(port));
    else if (size == 2)
        asm volatile("inw %1, %w0" : "=a"(value) : "Nd"(port));
    else
        asm volatile("inl %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}

void port_write(u16 port, u8 size, u32 value) {
    if (size == 1)
        asm volatile("outb %b0, %1" ::"a"(value), "Nd"(port));
    else if (size == 2)
        asm volatile("outw %w0, %1" ::"a"(value), "Nd"(port));
    else
        asm volatile("outl %0, %1" ::"a"(value), "Nd"(port));
}

}  // namespace nestor::platform
