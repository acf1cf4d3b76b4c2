// The part of Linux's KVM API (include/uapi/linux/kvm.h, x86) that Nestor's KVM client uses:
// ioctl numbers and structure layouts, checked against the kernel's sizes.
#pragma once

#include "linux_syscalls.hpp"

namespace kvm_client {

constexpr unsigned long kvm_ioctl(unsigned direction, unsigned number, unsigned size) {
    return (static_cast<unsigned long>(direction) << 30) | (static_cast<unsigned long>(size) << 16) | (0xaeul << 8) |
           number;
}
constexpr unsigned kNone = 0, kWrite = 1, kRead = 2;

struct KvmUserspaceMemoryRegion {
    u32 slot;
    u32 flags;
    u64 guest_phys_addr;
    u64 memory_size;
    u64 userspace_addr;
};
static_assert(sizeof(KvmUserspaceMemoryRegion) == 32);

struct KvmRegs {
    u64 rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
    u64 r8, r9, r10, r11, r12, r13, r14, r15;
    u64 rip, rflags;
};
static_assert(sizeof(KvmRegs) == 144);

struct KvmSegment {
    u64 base;
    u32 limit;
    u16 selector;
    u8 type, present, dpl, db, s, l, g, avl, unusable, padding;
};
static_assert(sizeof(KvmSegment) == 24);

struct KvmDtable {
    u64 base;
    u16 limit;
    u16 padding[3];
};

struct KvmSregs {
    KvmSegment cs, ds, es, fs, gs, ss, tr, ldt;
    KvmDtable gdt, idt;
    u64 cr0, cr2, cr3, cr4, cr8, efer, apic_base;
    u64 interrupt_bitmap[4];
};
static_assert(sizeof(KvmSregs) == 312);

struct KvmInterrupt {
    u32 irq;
};

struct KvmCpuidEntry2 {
    u32 function, index, flags;
    u32 eax, ebx, ecx, edx;
    u32 padding[3];
};
static_assert(sizeof(KvmCpuidEntry2) == 40);

struct KvmIrqLevel {
    u32 irq;
    u32 level;
};

struct KvmPitConfig {
    u32 flags;
    u32 padding[15];
};
static_assert(sizeof(KvmPitConfig) == 64);
constexpr u32 KVM_PIT_SPEAKER_DUMMY = 1;

struct KvmReinjectControl {
    u8 pit_reinject;
    u8 reserved[31];
};

// struct kvm_xcrs: XCR0 is its XCR number 0.
struct KvmXcrs {
    u32 count;
    u32 flags;
    struct {
        u32 xcr;
        u32 reserved;
        u64 value;
    } xcrs[16];
    u64 padding[16];
};
static_assert(sizeof(KvmXcrs) == 392);

// struct kvm_cpuid2 with room for a few entries.
template <u32 kEntries> struct KvmCpuid2 {
    u32 nent;
    u32 padding;
    KvmCpuidEntry2 entries[kEntries];
};

constexpr unsigned long KVM_GET_API_VERSION = kvm_ioctl(kNone, 0x00, 0);
constexpr unsigned long KVM_CREATE_VM = kvm_ioctl(kNone, 0x01, 0);
constexpr unsigned long KVM_GET_VCPU_MMAP_SIZE = kvm_ioctl(kNone, 0x04, 0);
constexpr unsigned long KVM_GET_SUPPORTED_CPUID = kvm_ioctl(kRead | kWrite, 0x05, 8);
constexpr unsigned long KVM_CREATE_VCPU = kvm_ioctl(kNone, 0x41, 0);
constexpr unsigned long KVM_SET_USER_MEMORY_REGION = kvm_ioctl(kWrite, 0x46, sizeof(KvmUserspaceMemoryRegion));
constexpr unsigned long KVM_SET_TSS_ADDR = kvm_ioctl(kNone, 0x47, 0);
constexpr unsigned long KVM_CREATE_IRQCHIP = kvm_ioctl(kNone, 0x60, 0);
constexpr unsigned long KVM_IRQ_LINE = kvm_ioctl(kWrite, 0x61, sizeof(KvmIrqLevel));
constexpr unsigned long KVM_REINJECT_CONTROL = kvm_ioctl(kNone, 0x71, 0);
constexpr unsigned long KVM_CREATE_PIT2 = kvm_ioctl(kWrite, 0x77, sizeof(KvmPitConfig));
constexpr unsigned long KVM_RUN = kvm_ioctl(kNone, 0x80, 0);
constexpr unsigned long KVM_GET_REGS = kvm_ioctl(kRead, 0x81, sizeof(KvmRegs));
constexpr unsigned long KVM_SET_REGS = kvm_ioctl(kWrite, 0x82, sizeof(KvmRegs));
constexpr unsigned long KVM_GET_SREGS = kvm_ioctl(kRead, 0x83, sizeof(KvmSregs));
constexpr unsigned long KVM_SET_SREGS = kvm_ioctl(kWrite, 0x84, sizeof(KvmSregs));
constexpr unsigned long KVM_INTERRUPT = kvm_ioctl(kWrite, 0x86, sizeof(KvmInterrupt));
constexpr unsigned long KVM_SET_CPUID2 = kvm_ioctl(kWrite, 0x90, 8);
constexpr unsigned long KVM_SET_XCRS = kvm_ioctl(kWrite, 0xa7, sizeof(KvmXcrs));
static_assert(KVM_SET_USER_MEMORY_REGION == 0x4020ae46 && KVM_GET_SREGS == 0x8138ae83);
static_assert(KVM_GET_SUPPORTED_CPUID == 0xc008ae05 && KVM_CREATE_PIT2 == 0x4040ae77 && KVM_IRQ_LINE == 0x4008ae61);

constexpr u32 KVM_EXIT_UNKNOWN = 0;
constexpr u32 KVM_EXIT_EXCEPTION = 1;
constexpr u32 KVM_EXIT_IO = 2;
constexpr u32 KVM_EXIT_HLT = 5;
constexpr u32 KVM_EXIT_MMIO = 6;
constexpr u32 KVM_EXIT_SHUTDOWN = 8;
constexpr u32 KVM_EXIT_FAIL_ENTRY = 9;
constexpr u32 KVM_EXIT_INTR = 10;
constexpr u32 KVM_EXIT_INTERNAL_ERROR = 17;
constexpr u8 KVM_EXIT_IO_IN = 0;
constexpr u8 KVM_EXIT_IO_OUT = 1;

// struct kvm_run up to the exit union, with the members the client reads.
struct KvmRun {
    u8 request_interrupt_window;
    u8 immediate_exit;
    u8 padding1[6];
    u32 exit_reason;
    u8 ready_for_interrupt_injection;
    u8 if_flag;
    u16 flags;
    u64 cr8;
    u64 apic_base;
    union {
        struct {
            u64 hardware_entry_failure_reason;
            u32 cpu;
        } fail_entry;
        struct {
            u8 direction;
            u8 size;
            u16 port;
            u32 count;
            u64 data_offset;
        } io;
        struct {
            u64 phys_addr;
            u8 data[8];
            u32 len;
            u8 is_write;
        } mmio;
        struct {
            u32 suberror;
            u32 ndata;
            u64 data[16];
        } internal;
        char padding[256];
    };
};
static_assert(__builtin_offsetof(KvmRun, io) == 32);

}  // namespace kvm_client
