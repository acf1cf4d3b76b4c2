// A guest exit, decoded by the backend into vendor-neutral terms. The kernel's exit handler
// decides what to do from this alone; the raw vendor code is kept only for reports.
#pragma once

#include "nestor/lib/types.hpp"

namespace nestor::virt {

enum class ExitKind : u8 {
    cpuid,
    hypercall,  // VMMCALL (SVM) / VMCALL (VMX)
    io,         // IN, OUT, INS, OUTS
    msr_read,   // RDMSR
    msr_write,  // WRMSR
    hlt,
    cache_invalidate,            // INVD / WBINVD / WBNOINVD: the guest asks to drop or flush caches
    performance_counter,         // RDPMC
    monitor_wait,                // MONITOR / MWAIT
    nested_page_fault,           // NPT / EPT violation
    triple_fault,                // shutdown
    external_interrupt,          // a physical interrupt arrived while the guest ran
    preemption,                  // the time slice given to run() ended (e.g. the VMX preemption timer)
    exception,                   // an intercepted guest exception
    xsetbv,                      // XSETBV: the guest sets XCR0
    virtualization_instruction,  // VMRUN, VMLOAD, VMSAVE, STGI, CLGI, INVLPGA, SKINIT or a VMX instruction
    invalid_state,               // the hardware refused to enter the guest (VMEXIT_INVALID, VM-entry failure)
    interrupt_window,            // the guest can take an external interrupt now (VirtOps::request_interrupt_window)
    nmi_window,                  // the guest can take an NMI now (VirtOps::request_nmi_window)
    task_priority,               // the guest lowered CR8 below VcpuState::cr8_threshold (its MOV is done)
    unknown,                     // anything the backend does not decode
};
inline constexpr usize kExitKinds = static_cast<usize>(ExitKind::unknown) + 1;

const char* exit_kind_name(ExitKind kind);

enum class IoDirection : u8 { in, out };
enum class MemoryAccess : u8 { read, write, execute };

struct IoExit {
    u16 port;
    u8 size;  // 1, 2 or 4 bytes
    IoDirection direction;
    bool string;  // INS / OUTS
    bool rep;     // with a REP prefix
    u32 value;    // OUT: the value written (masked to size); IN: unused
};

struct MsrExit {
    u32 index;  // ECX
    u64 value;  // WRMSR: EDX:EAX; RDMSR: unused
};

struct NestedPageFaultExit {
    u64 guest_physical;
    MemoryAccess access;
    bool present;  // the page was mapped; the access violated its permissions
};

// The exceptions every backend intercepts for the kernel: #DB and #AC, whose delivery a guest can
// make endless (CVE-2015-8104, CVE-2015-5307), and #MC, which is the host's.
inline constexpr u8 kVectorDb = 1;
inline constexpr u8 kVectorNmi = 2;
inline constexpr u8 kVectorAc = 17;
inline constexpr u8 kVectorMc = 18;
inline constexpr u8 kVectorPf = 14;  // a page fault the kernel delivers for an access it makes for a guest

struct XsetbvExit {
    u32 index;  // ECX: which XCR
    u64 value;  // EDX:EAX
};

struct ExceptionExit {
    u8 vector;
    bool has_error_code;
    u32 error_code;
};

struct VmExit {
    ExitKind kind;
    // Length of the instruction that exited, so the kernel can step over it. 0 = unknown: the
    // backend could not decode it (the handler must not complete the instruction then).
    u8 instruction_length;
    u64 vendor_code;  // the raw exit code (VMCB EXITCODE / VMCS exit reason), for reports
    union {
        IoExit io;
        MsrExit msr;
        NestedPageFaultExit npf;
        ExceptionExit exception;
        XsetbvExit xsetbv;
    };
};

}  // namespace nestor::virt
