// A CPU exception in the kernel is a kernel bug: print everything that helps find it and stop
// the machine with a failure status.
#include "nestor/log.hpp"
#include "nestor/platform.hpp"
#include "nestor/x86/cpu.hpp"
#include "nestor/x86/exception_frame.hpp"

namespace nestor::x86 {
namespace {

const char* const kNames[32] = {"#DE divide error",
                                "#DB debug",
                                "NMI",
                                "#BP breakpoint",
                                "#OF overflow",
                                "#BR bound range",
                                "#UD invalid opcode",
                                "#NM device not available",
                                "#DF double fault",
                                "coprocessor overrun",
                                "#TS invalid TSS",
                                "#NP segment not present",
                                "#SS stack fault",
                                "#GP general protection",
                                "#PF page fault",
                                "reserved 15",
                                "#MF x87 error",
                                "#AC alignment check",
                                "#MC machine check",
                                "#XM SIMD error",
                                "#VE virtualization",
                                "#CP control protection",
                                "reserved 22",
                                "reserved 23",
                                "reserved 24",
                                "reserved 25",
                                "reserved 26",
                                "reserved 27",
                                "#HV hypervisor injection",
                                "#VC VMM communication",
                                "#SX security",
                                "reserved 31"};

void dump(const ExceptionFrame& f) {
    log::error("CPU exception {} ({}) error code {:#x}", f.vector, kNames[f.vector & 31], f.error_code);
    log::error("  rip {:#018x} cs {:#x} rflags {:#x}", f.rip, f.cs, f.rflags);
    log::error("  rsp {:#018x} ss {:#x}", f.rsp, f.ss);
    log::error("  rax {:#018x} rbx {:#018x} rcx {:#018x}", f.rax, f.rbx, f.rcx);
    log::error("  rdx {:#018x} rsi {:#018x} rdi {:#018x}", f.rdx, f.rsi, f.rdi);
    log::error("  rbp {:#018x} r8  {:#018x} r9  {:#018x}", f.rbp, f.r8, f.r9);
    log::error("  r10 {:#018x} r11 {:#018x} r12 {:#018x}", f.r10, f.r11, f.r12);
    log::error("  r13 {:#018x} r14 {:#018x} r15 {:#018x}", f.r13, f.r14, f.r15);
    log::error("  cr0 {:#x} cr2 {:#018x} cr3 {:#x} cr4 {:#x}", read_cr0(), read_cr2(), read_cr3(), read_cr4());
}

}  // namespace
}  // namespace nestor::x86

extern "C" [[noreturn]] void x86_exception(nestor::x86::ExceptionFrame* frame) {
    using namespace nestor;
    // An exception while reporting one would loop: the second one stops the machine at once.
    static bool reporting = false;
    if (!reporting) {
        reporting = true;
        x86::dump(*frame);
    }
    platform::shutdown(ExitStatus::cpu_exception);
}
