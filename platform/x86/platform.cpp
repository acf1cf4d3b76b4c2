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

[[noreturn]] void shutdown(ExitStatus status) {
    // The marker line lets harnesses judge emulators that cannot report a status (Bochs).
    log::info("NESTOR-EXIT: {}", static_cast<u8>(status));
    x86::uart::flush(x86::uart::kCom1);
    x86::outb(kQemuDebugExitPort, static_cast<u8>(status));
    for (const char* c = "Shutdown"; *c; ++c) x86::outb(kBochsShutdownPort, static_cast<u8>(*c));
    x86::halt_forever();
}

[[noreturn]] void halt_forever() { x86::halt_forever(); }

}  // namespace nestor::platform
