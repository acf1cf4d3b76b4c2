// #DB and #AC, the exceptions whose delivery a guest can make endless on the CPU (CVE-2015-8104,
// CVE-2015-5307), each of which Nestor must intercept and give back to the guest as the CPU would
// have delivered it:
//   - a single step (RFLAGS.TF): a trap after the next instruction, DR6.BS;
//   - a data breakpoint (DR1, write): a trap after the write, DR6.B1;
//   - an instruction breakpoint (DR2, execute): a fault on the instruction, DR6.B2; the handler
//     sets RF in the frame so that it runs once it returns;
//   - a data breakpoint (DR0) on the stack the #DB is delivered on: delivering the trigger's #DB
//     writes there and raises a second #DB before the handler's first instruction (at the
//     handler's entry, DR6.B0), then the trigger's is handled;
//   - #AC: ring 3 with CR0.AM and RFLAGS.AC pushes onto a misaligned stack; the #AC handler runs
//     at ring 0 through the TSS's RSP0.
// The guest builds its own GDT (ring-3 segments and a TSS), IDT (its handlers for #DB, #AC and
// the faults that end its ring-3 code) and user pages. Each line says what the guest saw; the
// kernel's count of exception exits (nestor.log=debug) shows that every one of them was an exit.
#include "hostile.hpp"
#include "nestor/x86_tables.hpp"

using namespace nestor::guest;

namespace {

constexpr u16 kTssSelector = 0x28;

using x86::TablePointer;
using x86::Tss;

struct IdtEntry {
    u64 low;
    u64 high;
};

alignas(16) u64 gdt[8] = {};
alignas(16) Tss tss = {};
alignas(16) IdtEntry idt[256] = {};
alignas(16) u8 ring0_stack[8192] = {};
alignas(16) u8 user_stack[4096] = {};
alignas(16) u8 breakpoint_stack[4096] = {};

}  // namespace

// Shared with the assembly below.
struct DebugRecord {
    u64 rip;
    u64 dr6;
};
extern "C" {
DebugRecord debug_records[8] = {};
u64 debug_count = 0;
u64 saved_kernel_rsp = 0;
u64 escape_vector = 0, escape_error = 0, escape_rip = 0, escape_cs = 0, escape_rflags = 0, escape_rsp = 0;
volatile u32 trigger = 0;
void debug_entry();
void escape_ac();
void escape_ud();
void escape_gp();
void escape_pf();
u64 run_in_ring3(u64 rip, u64 rsp, u64 rflags);
void ring3_misaligned_push();
void single_step_nop();
void single_step_after();
void write_trigger();
void write_trigger_after();
void breakpointed_nop();
void stack_breakpoint(u64 stack_top);
void stack_breakpoint_after();

// Called by debug_entry with the hardware frame (RIP, CS, RFLAGS, RSP, SS): records where the
// #DB was taken and DR6, clears DR6's breakpoint bits as a handler must, stops single-stepping
// and lets a faulting instruction breakpoint's instruction run (RF).
void on_debug(u64* frame) {
    u64 dr6;
    asm volatile("mov %%dr6, %0" : "=r"(dr6));
    if (debug_count < sizeof(debug_records) / sizeof(debug_records[0])) debug_records[debug_count] = {frame[0], dr6};
    ++debug_count;
    asm volatile("mov %0, %%dr6" ::"r"(u64{0xFFFF0FF0}));
    frame[2] = (frame[2] & ~kRflagsTf) | kRflagsRf;
}
}

// debug_entry: the #DB handler (no error code). Nine scratch registers keep the stack 16-byte
// aligned at the call (the CPU aligned it before pushing its five words).
// escape_*: the faults that end ring-3 code: record the frame, then return from run_in_ring3() to
// its ring-0 caller.
asm(R"(
    .text
    .global debug_entry
debug_entry:
    push %rax
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %r8
    push %r9
    push %r10
    push %r11
    lea 72(%rsp), %rdi
    call on_debug
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rax
    iretq

    .global escape_ac, escape_ud, escape_gp, escape_pf
escape_ud:
    pushq $0
    movq $6, escape_vector(%rip)
    jmp escape
escape_ac:
    movq $17, escape_vector(%rip)
    jmp escape
escape_gp:
    movq $13, escape_vector(%rip)
    jmp escape
escape_pf:
    movq $14, escape_vector(%rip)
escape:
    popq escape_error(%rip)
    mov (%rsp), %rax
    mov %rax, escape_rip(%rip)
    mov 8(%rsp), %rax
    mov %rax, escape_cs(%rip)
    mov 16(%rsp), %rax
    mov %rax, escape_rflags(%rip)
    mov 24(%rsp), %rax
    mov %rax, escape_rsp(%rip)
    mov $0x10, %eax
    mov %eax, %ss
    mov %eax, %ds
    mov %eax, %es
    mov saved_kernel_rsp(%rip), %rsp
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbp
    pop %rbx
    mov $1, %eax
    ret

    .global run_in_ring3
run_in_ring3:
    push %rbx
    push %rbp
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, saved_kernel_rsp(%rip)
    pushq $0x1b
    push %rsi
    push %rdx
    pushq $0x23
    push %rdi
    iretq

    .global ring3_misaligned_push
ring3_misaligned_push:
    push %rax
    ud2

    .global single_step_nop, single_step_after
single_step_nop:
    pushf
    orq $0x100, (%rsp)
    popf
    nop
single_step_after:
    ret

    .global write_trigger, write_trigger_after
write_trigger:
    movl $1, trigger(%rip)
write_trigger_after:
    ret

    .global breakpointed_nop
breakpointed_nop:
    nop
    ret

    .global stack_breakpoint, stack_breakpoint_after
stack_breakpoint:
    push %rbp
    mov %rsp, %rbp
    mov %rdi, %rsp
    movl $2, trigger(%rip)
stack_breakpoint_after:
    mov %rbp, %rsp
    pop %rbp
    ret
)");

namespace {

u64 address(void (*f)()) { return reinterpret_cast<u64>(f); }

IdtEntry gate(void (*handler)(), u8 dpl = 0) {
    u64 h = address(handler);
    u64 type = 0x8E | (u64{dpl} << 5);  // present 64-bit interrupt gate
    return {(h & 0xFFFF) | (u64{0x08} << 16) | (type << 40) | (((h >> 16) & 0xFFFF) << 48), h >> 32};
}

void set_debug_registers(u64 dr0, u64 dr1, u64 dr2, u64 dr7) {
    asm volatile("mov %0, %%dr0; mov %1, %%dr1; mov %2, %%dr2; mov %3, %%dr7" ::"r"(dr0), "r"(dr1), "r"(dr2), "r"(dr7)
                 : "memory");
}

// Ring-3 segments and a TSS whose RSP0 is the stack ring 3's faults are taken on.
void load_descriptor_tables() {
    gdt[1] = 0x00AF9A000000FFFF;  // 0x08 ring-0 code, 64-bit (as the SDK's)
    gdt[2] = 0x00CF92000000FFFF;  // 0x10 ring-0 data
    gdt[3] = 0x00CFF2000000FFFF;  // 0x18 ring-3 data
    gdt[4] = 0x00AFFA000000FFFF;  // 0x20 ring-3 code, 64-bit
    u64 base = reinterpret_cast<u64>(&tss), limit = sizeof(Tss) - 1;
    gdt[5] = (limit & 0xFFFF) | ((base & 0xFFFFFF) << 16) | (u64{0x89} << 40) | (((base >> 24) & 0xFF) << 56);
    gdt[6] = base >> 32;
    tss.rsp[0] = reinterpret_cast<u64>(ring0_stack + sizeof(ring0_stack));
    tss.iomap_base = sizeof(Tss);
    TablePointer g{sizeof(gdt) - 1, reinterpret_cast<u64>(gdt)};
    asm volatile("lgdt %0; ltr %w1" ::"m"(g), "r"(kTssSelector) : "memory");

    TablePointer current{};
    asm volatile("sidt %0" : "=m"(current));
    const IdtEntry* sdk = reinterpret_cast<const IdtEntry*>(current.base);
    for (u32 v = 0; v < 256 && v * sizeof(IdtEntry) < current.limit; ++v) idt[v] = sdk[v];
    idt[1] = gate(debug_entry);
    idt[6] = gate(escape_ud);
    idt[13] = gate(escape_gp);
    idt[14] = gate(escape_pf);
    idt[17] = gate(escape_ac);
    TablePointer i{sizeof(idt) - 1, reinterpret_cast<u64>(idt)};
    asm volatile("lidt %0" ::"m"(i) : "memory");
}

// The SDK maps everything supervisor-only: open the first 4 MiB (this image, its stacks) to ring 3.
void open_low_memory_to_ring3() {
    constexpr u64 kUser = 4, kAddress = 0x000FFFFFFFFFF000;
    u64* pml4 = reinterpret_cast<u64*>(read_cr3() & kAddress);
    pml4[0] |= kUser;
    u64* pdpt = reinterpret_cast<u64*>(pml4[0] & kAddress);
    pdpt[0] |= kUser;
    u64* pd = reinterpret_cast<u64*>(pdpt[0] & kAddress);
    pd[0] |= kUser;
    pd[1] |= kUser;
    asm volatile("mov %%cr3, %%rax; mov %%rax, %%cr3" ::: "rax", "memory");
}

const char* yes_no(bool b) { return b ? "yes" : "no"; }

// Where ring 3 ended: #AC on the push, or (an emulator that does not check alignment, QEMU) #UD
// on the instruction after it.
void print_escape() {
    if (escape_vector == 17)
        hostile::print_all("#AC(", hex(escape_error),
                           ") on the push: ", yes_no(escape_rip == address(ring3_misaligned_push)));
    else
        hostile::print_all("vector ", escape_vector, " at ", hex(escape_rip - address(ring3_misaligned_push)),
                           " past the push");
    hostile::print_all(", cpl ", escape_cs & 3, ", rsp ", (escape_rsp & 7) ? "misaligned" : "aligned", ", ac ",
                       (escape_rflags & kRflagsAc) ? 1 : 0);
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    load_descriptor_tables();
    open_low_memory_to_ring3();

    // 1. A single step: the trap comes after the instruction that follows POPF.
    debug_count = 0;
    single_step_nop();
    println("debug: single step: ", debug_count,
            " #DB, after the nop: ", yes_no(debug_records[0].rip == address(single_step_after)), ", dr6.bs ",
            (debug_records[0].dr6 & kDr6Bs) ? 1 : 0);

    // 2. A data breakpoint: DR1 on `trigger`, writes of 4 bytes (R/W1 01, LEN1 11).
    constexpr u64 kDr7Dr1Write = (u64{1} << 2) | (u64{1} << 20) | (u64{3} << 22);
    debug_count = 0;
    set_debug_registers(0, reinterpret_cast<u64>(&trigger), 0, kDr7Dr1Write);
    write_trigger();
    set_debug_registers(0, 0, 0, 0);
    println("debug: data breakpoint: ", debug_count,
            " #DB, after the write: ", yes_no(debug_records[0].rip == address(write_trigger_after)), ", dr6.b1 ",
            (debug_records[0].dr6 >> 1) & 1);

    // 3. An instruction breakpoint: DR2 on an instruction (R/W2 00, LEN2 00), a fault.
    constexpr u64 kDr7Dr2Execute = u64{1} << 4;
    debug_count = 0;
    set_debug_registers(0, 0, address(breakpointed_nop), kDr7Dr2Execute);
    breakpointed_nop();
    set_debug_registers(0, 0, 0, 0);
    println("debug: instruction breakpoint: ", debug_count,
            " #DB, on the instruction: ", yes_no(debug_records[0].rip == address(breakpointed_nop)), ", dr6.b2 ",
            (debug_records[0].dr6 >> 2) & 1, ", then it ran");

    // 4. DR0 on the stack slot the #DB frame's SS goes to (8 bytes: R/W0 01, LEN0 10), DR1 on
    //    the trigger: delivering the trigger's #DB hits DR0.
    u64 top = reinterpret_cast<u64>(breakpoint_stack + sizeof(breakpoint_stack));
    constexpr u64 kDr7Dr0Write8 = u64{1} | (u64{1} << 16) | (u64{2} << 18);
    debug_count = 0;
    set_debug_registers(top - 8, reinterpret_cast<u64>(&trigger), 0, kDr7Dr0Write8 | kDr7Dr1Write);
    stack_breakpoint(top);
    set_debug_registers(0, 0, 0, 0);
    // The trigger's #DB is handled last. QEMU and Bochs do not check the frame's writes against
    // the breakpoints: there, no #DB comes from the delivery (and QEMU may lose the injected #DB
    // whose delivery hits its watchpoint: tests/boot/hostile.cmake checks this line on Bochs).
    if (debug_count == 0) {
        println("debug: breakpoint on the stack #DB is delivered on: no #DB arrived");
    } else {
        const DebugRecord& last = debug_records[debug_count - 1];
        hostile::print_all("debug: breakpoint on the stack #DB is delivered on: the trigger's #DB after its write: ",
                           yes_no(last.rip == address(stack_breakpoint_after)),
                           ", raised by its delivery: ", debug_count - 1);
        if (debug_count == 2)
            hostile::print_all(" at the handler's entry: ", yes_no(debug_records[0].rip == address(debug_entry)),
                               ", dr6.b0 ", debug_records[0].dr6 & 1);
        println();
    }

    // 5. #AC: ring 3, CR0.AM and RFLAGS.AC, a push onto a misaligned stack.
    asm volatile("mov %0, %%cr0" ::"r"(read_cr0() | kCr0Am) : "memory");
    u64 user_rsp = reinterpret_cast<u64>(user_stack + sizeof(user_stack)) - 3;
    run_in_ring3(address(ring3_misaligned_push), user_rsp, 0x2 | kRflagsAc);
    print("debug: ring-3 push, misaligned stack, AC: ");
    print_escape();
    println();

    println("debug: still alive");
    return 0;
}
