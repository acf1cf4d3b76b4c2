// The IDT (the 32 exception vectors and interrupt handlers), probe(), and the report of an
// unexpected exception or interrupt.
#include "nestor/x86_tables.hpp"
#include "runtime.hpp"

using nestor::guest::detail::ExceptionFrame;
using nestor::guest::detail::ProbeContext;

extern "C" const nestor::guest::u64 nestor_guest_exception_stubs[32];
extern "C" const char nestor_guest_interrupt_stubs[];
// returns_twice: the compiler must assume the call returns again after an exception (like setjmp).
extern "C" __attribute__((returns_twice)) nestor::guest::u64 nestor_guest_probe_arm(ProbeContext* context);

namespace nestor::guest {
namespace {

constexpr u16 kCodeSelector = 0x08;  // entry.S's GDT
constexpr u32 kExceptionVectors = 32;
constexpr u32 kVectors = 256;
constexpr u64 kInterruptStubBytes = 16;  // exceptions.S

using IdtEntry = x86::IdtGate;
using IdtPointer = x86::TablePointer;

alignas(16) IdtEntry idt[kVectors] = {};
InterruptHandler interrupt_handlers[kVectors] = {};
// The innermost armed probe; the handler resumes there.
ProbeContext* active_probe = nullptr;

IdtEntry gate(u64 handler) { return x86::interrupt_gate(handler, kCodeSelector); }

void compiler_barrier() { asm volatile("" ::: "memory"); }

ExceptionRecord record_of(const ExceptionFrame& frame) {
    ExceptionRecord record;
    record.raised = true;
    record.vector = static_cast<u8>(frame.vector);
    record.error_code = frame.error_code;
    record.rip = frame.rip;
    record.cr2 = frame.vector == kVectorPF ? read_cr2() : 0;
    return record;
}

// Makes the exception return look like a second return from nestor_guest_probe_arm.
void resume_at_probe(ExceptionFrame& frame, ProbeContext& probe) {
    probe.record = record_of(frame);
    active_probe = probe.previous;
    frame.rbx = probe.rbx;
    frame.rbp = probe.rbp;
    frame.r12 = probe.r12;
    frame.r13 = probe.r13;
    frame.r14 = probe.r14;
    frame.r15 = probe.r15;
    frame.rsp = probe.rsp;
    frame.rip = probe.rip;
    frame.rax = 1;
}

[[noreturn]] void report_unexpected(const ExceptionFrame& f) {
    println("guest: unexpected exception ", f.vector, " (", exception_name(static_cast<u8>(f.vector)), ") error code ",
            hex(f.error_code), " at rip ", hex(f.rip, 16));
    if (f.vector == kVectorPF) println("guest:   cr2 ", hex(read_cr2(), 16));
    println("guest:   rax ", hex(f.rax, 16), " rbx ", hex(f.rbx, 16), " rcx ", hex(f.rcx, 16), " rdx ", hex(f.rdx, 16));
    println("guest:   rsi ", hex(f.rsi, 16), " rdi ", hex(f.rdi, 16), " rbp ", hex(f.rbp, 16), " rsp ", hex(f.rsp, 16));
    println("guest:   r8  ", hex(f.r8, 16), " r9  ", hex(f.r9, 16), " r10 ", hex(f.r10, 16), " r11 ", hex(f.r11, 16));
    println("guest:   r12 ", hex(f.r12, 16), " r13 ", hex(f.r13, 16), " r14 ", hex(f.r14, 16), " r15 ", hex(f.r15, 16));
    println("guest:   rflags ", hex(f.rflags, 8), " cs ", hex(f.cs, 4), " ss ", hex(f.ss, 4), " cr0 ",
            hex(read_cr0(), 8), " cr3 ", hex(read_cr3(), 8), " cr4 ", hex(read_cr4(), 8));
    exit(kUnexpectedExceptionStatus);
}

}  // namespace

namespace detail {

void exceptions_init() {
    for (u32 v = 0; v < kExceptionVectors; ++v) idt[v] = gate(nestor_guest_exception_stubs[v]);
    IdtPointer pointer{sizeof(idt) - 1, reinterpret_cast<u64>(&idt)};
    asm volatile("lidt %0" ::"m"(pointer));
}

}  // namespace detail

void set_interrupt_handler(u8 vector, InterruptHandler handler) {
    if (vector < kExceptionVectors) return;
    interrupt_handlers[vector] = handler;
    u64 stub = reinterpret_cast<u64>(nestor_guest_interrupt_stubs) + kInterruptStubBytes * (vector - kExceptionVectors);
    idt[vector] = handler ? gate(stub) : IdtEntry{};
}

ExceptionRecord probe(void (*fn)(void*), void* context) {
    ProbeContext armed{};
    armed.previous = active_probe;
    if (nestor_guest_probe_arm(&armed) != 0) return armed.record;  // the handler came back here
    active_probe = &armed;
    compiler_barrier();
    fn(context);
    compiler_barrier();
    active_probe = armed.previous;
    return {};
}

ExceptionRecord probe(void (*fn)()) {
    return probe([](void* f) { reinterpret_cast<void (*)()>(f)(); }, reinterpret_cast<void*>(fn));
}

const char* exception_name(u8 vector) {
    static constexpr const char* kNames[kExceptionVectors] = {"#DE divide error",
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
    return vector < kExceptionVectors ? kNames[vector] : "not an exception";
}

}  // namespace nestor::guest

extern "C" void nestor_guest_exception(ExceptionFrame* frame) {
    using namespace nestor::guest;
    if (frame->vector >= kExceptionVectors) {
        if (InterruptHandler handler = interrupt_handlers[frame->vector & 0xFF]) {
            handler(static_cast<u8>(frame->vector));
            return;
        }
        println("guest: unexpected interrupt ", frame->vector, " at rip ", hex(frame->rip, 16));
        exit(kUnexpectedExceptionStatus);
    }
    if (active_probe) {
        resume_at_probe(*frame, *active_probe);
        return;
    }
    report_unexpected(*frame);
}
