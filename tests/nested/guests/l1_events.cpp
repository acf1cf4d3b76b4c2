// An L1 hypervisor that injects events into its L2 with EVENTINJ. L2 has an IDT of its own (built
// here by L1); each handler reports with VMMCALL: the vector in RAX, the error code it popped in
// RDX (0 if none) and the RIP of its interrupt frame in RSI. The event must be delivered before
// L2's first instruction (the frame's RIP is L2's entry, whose VMMCALL says "no event"). An
// EVENTINJ VMRUN must refuse (a reserved type, an exception vector that is no exception) gives
// VMEXIT_INVALID.
#include "l1_common.hpp"
#include "nestor/x86_tables.hpp"

using namespace l1;

constexpr u64 kNoEvent = 0xE0;

extern "C" char l2_events_entry[], l2_vector_nmi[], l2_vector_gp[], l2_vector_0x30[];
asm(R"(
    .pushsection .text
    .globl l2_events_entry, l2_vector_nmi, l2_vector_gp, l2_vector_0x30
l2_events_entry:
    mov $0xe0, %eax
    vmmcall
    jmp l2_events_entry
l2_vector_nmi:
    xor %edx, %edx
    mov $2, %eax
    jmp l2_report_event
l2_vector_gp:
    pop %rdx
    mov $13, %eax
    jmp l2_report_event
l2_vector_0x30:
    xor %edx, %edx
    mov $0x30, %eax
l2_report_event:
    mov (%rsp), %rsi
    vmmcall
1:  hlt
    jmp 1b
    .popsection
)");

namespace {

alignas(4096) svm::Vmcb vmcb;
L2Stack l2_stack;

using nestor::guest::x86::IdtGate;
constexpr u32 kL2Vectors = 0x31;
alignas(16) IdtGate l2_idt[kL2Vectors];

void set_gate(u8 vector, const char* handler) {
    l2_idt[vector] = nestor::guest::x86::interrupt_gate(reinterpret_cast<u64>(handler), svm::read_cs());
}

void set_up_events_l2(u64 event) {
    set_up_l2(vmcb, l2_events_entry, l2_stack);
    vmcb.save.idtr = svm::VmcbSegment{0, 0, sizeof(l2_idt) - 1, reinterpret_cast<u64>(l2_idt)};
    vmcb.control.event_inject = event;
}

bool inject(const char* what, u64 event, u64 vector, u64 error_code) {
    set_up_events_l2(event);
    svm::GuestRegisters regs{};
    u64 code = run(vmcb, regs);
    if (!expect_exit(code, svm::exit_code::vmmcall, "VMMCALL from L2's handler")) return false;
    u64 got = vmcb.save.rax;
    bool before_first = regs.rsi == reinterpret_cast<u64>(l2_events_entry);
    if (got == kNoEvent) {
        println("inject ", what, ": L2 ran without the event");
        return false;
    }
    println("inject ", what, ": L2 handler of vector ", hex(got, 1), " ran, error code ", hex(regs.rdx, 1),
            ", before L2's first instruction ", before_first ? "yes" : "no");
    return got == vector && regs.rdx == error_code && before_first;
}

bool refused(const char* what, u64 event) {
    set_up_events_l2(event);
    u64 code = run(vmcb);
    println("eventinj ", what, ": exit code ", static_cast<i64>(code));
    return code == svm::exit_code::invalid;
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    enable_svm();
    set_gate(2, l2_vector_nmi);
    set_gate(kVectorGP, l2_vector_gp);
    set_gate(0x30, l2_vector_0x30);

    // Without an event, L2 reports that it ran its entry.
    set_up_events_l2(0);
    if (!expect_exit(run(vmcb), svm::exit_code::vmmcall, "VMMCALL")) return 1;
    println("no event: L2 ran its entry, rax ", hex(vmcb.save.rax, 1));

    bool ok = inject("interrupt 0x30", svm::event::make(0x30, svm::event::type_intr), 0x30, 0);
    ok = inject("nmi", svm::event::make(2, svm::event::type_nmi), 2, 0) && ok;
    ok = inject("#GP error code 0x1234",
                svm::event::with_error_code(svm::event::make(kVectorGP, svm::event::type_exception), 0x1234), kVectorGP,
                0x1234) &&
         ok;
    ok = refused("type 1 (reserved)", svm::event::make(0x30, 1)) && ok;
    ok = refused("exception vector 0x30", svm::event::make(0x30, svm::event::type_exception)) && ok;
    ok = refused("exception vector 2 (nmi)", svm::event::make(2, svm::event::type_exception)) && ok;
    println("L2 done");
    return ok ? 0 : 1;
}
