// Nestor's KVM client: a static, freestanding Linux program (raw system calls, no libc) that the
// linux_kvm appliance runs in its L1 Linux. Through /dev/kvm it creates VMs and runs tiny L2
// guests on Linux KVM, which runs them on Nestor's nested SVM, and checks each exit KVM reports.
// Every check prints one line, `KVM-CLIENT: PASS name` or `KVM-CLIENT: FAIL name: why`; the last
// line is `KVM-CLIENT: DONE n passed, m failed`, and the exit status is the number failed.
//
// Its argument (the init passes the kernel's `nestor.kvm=MODE`) chooses what it does: nothing, the
// checks; `storm`, one L2 exiting as fast as it can for a few seconds (while Nestor's healthy
// neighbour, woken by a signal, must finish); `poweroff_in_l2`, a child process keeps an L2
// spinning in KVM_RUN and the client powers L1 off under it; `bench`, the timing loops of
// bench/run-benchmarks (CPUID, VMMCALL and OUT round trips in L2, `NESTOR-KVM-BENCH:` lines).
#include "kvm_api.hpp"
#include "linux_syscalls.hpp"
#include "program_start.hpp"
#include "nestor/abi/guest_slots.h"
#include "nestor/abi/hypercall.h"

// Where a signal handler returns to: rt_sigreturn (the kernel's sigaction needs SA_RESTORER).
extern "C" void kvm_client_restorer();
asm(".globl kvm_client_restorer\n"
    "kvm_client_restorer:\n"
    "  mov $15, %eax\n"
    "  syscall\n");

namespace {

using namespace kvm_client;

constexpr u64 kGuestMemoryBytes = 0x10000;
constexpr u64 kCodeAddress = 0x1000;
// Nestor's nested-memory MSR (kernel/include/nestor/virt/devices/nested_memory_msr.hpp): the
// bytes of L0 memory Nestor holds for this domain's nested state. Read through Linux's msr driver
// (the init loads msr.ko), which runs RDMSR in L1's kernel: a user-space port, the other way, is
// out of reach (Debian's cloud kernel has no /dev/port, and an IN after ioperm(2) #GPs under QEMU
// TCG, on bare QEMU too).
constexpr long kMsrNestedMemory = 0x4E534D00;

// The bytes the MSR reports, or a negative error of open / pread (-EIO: the MSR #GPs, no MSR).
long nested_memory_bytes() {
    int fd = sys_open("/dev/cpu/0/msr", kOpenReadOnly | kOpenCloseOnExec);
    if (fd < 0) return fd;
    u64 value = 0;
    long r = sys_pread(fd, &value, sizeof(value), kMsrNestedMemory);
    sys_close(fd);
    if (r < 0) return r;
    if (r != static_cast<long>(sizeof(value))) return -5;  // -EIO: a short read
    return static_cast<long>(value);
}

struct Counts {
    int passed = 0;
    int failed = 0;
};
Counts counts;

void pass(const char* name) {
    print("KVM-CLIENT: PASS ");
    print(name);
    print("\n");
}

// A FAIL line says why; a check that fails may print several (what it saw, then details).
void fail(const char* name, const char* why, u64 value) {
    print("KVM-CLIENT: FAIL ");
    print(name);
    print(": ");
    print(why);
    print(" ");
    print_hex(value);
    print("\n");
}

// One VM with one vCPU and kGuestMemoryBytes of memory at guest-physical 0.
struct Vm {
    int vm = -1;
    int vcpu = -1;
    u8* memory = nullptr;
    KvmRun* run = nullptr;
    u64 run_bytes = 0;
};

bool create_vm(int kvm, Vm& out, const char* name) {
    out.vm = sys_ioctl(kvm, KVM_CREATE_VM, 0);
    if (out.vm < 0) return fail(name, "KVM_CREATE_VM returned", static_cast<u64>(out.vm)), false;
    long mapped = sys_mmap(nullptr, kGuestMemoryBytes, kProtRead | kProtWrite, kMapPrivate | kMapAnonymous, -1, 0);
    if (mapped < 0) return fail(name, "mmap of guest memory returned", static_cast<u64>(mapped)), false;
    out.memory = reinterpret_cast<u8*>(mapped);
    KvmUserspaceMemoryRegion region{};
    region.slot = 0;
    region.guest_phys_addr = 0;
    region.memory_size = kGuestMemoryBytes;
    region.userspace_addr = static_cast<u64>(mapped);
    if (long r = sys_ioctl(out.vm, KVM_SET_USER_MEMORY_REGION, reinterpret_cast<u64>(&region)); r < 0)
        return fail(name, "KVM_SET_USER_MEMORY_REGION returned", static_cast<u64>(r)), false;
    out.vcpu = sys_ioctl(out.vm, KVM_CREATE_VCPU, 0);
    if (out.vcpu < 0) return fail(name, "KVM_CREATE_VCPU returned", static_cast<u64>(out.vcpu)), false;
    long run_size = sys_ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (run_size <= 0) return fail(name, "KVM_GET_VCPU_MMAP_SIZE returned", static_cast<u64>(run_size)), false;
    long run = sys_mmap(nullptr, static_cast<u64>(run_size), kProtRead | kProtWrite, kMapShared, out.vcpu, 0);
    if (run < 0) return fail(name, "mmap of kvm_run returned", static_cast<u64>(run)), false;
    out.run = reinterpret_cast<KvmRun*>(run);
    out.run_bytes = static_cast<u64>(run_size);
    return true;
}

void destroy_vm(Vm& vm) {
    if (vm.run) sys_munmap(vm.run, vm.run_bytes);
    if (vm.memory) sys_munmap(vm.memory, kGuestMemoryBytes);
    if (vm.vcpu >= 0) sys_close(vm.vcpu);
    if (vm.vm >= 0) sys_close(vm.vm);
}

// Real mode with CS base 0 and RIP at the code, instead of the reset vector.
bool enter_real_mode_at(Vm& vm, u64 rip, const char* name) {
    KvmSregs sregs{};
    if (long r = sys_ioctl(vm.vcpu, KVM_GET_SREGS, reinterpret_cast<u64>(&sregs)); r < 0)
        return fail(name, "KVM_GET_SREGS returned", static_cast<u64>(r)), false;
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    if (long r = sys_ioctl(vm.vcpu, KVM_SET_SREGS, reinterpret_cast<u64>(&sregs)); r < 0)
        return fail(name, "KVM_SET_SREGS returned", static_cast<u64>(r)), false;
    KvmRegs regs{};
    regs.rip = rip;
    regs.rflags = 0x2;
    regs.rsp = 0x8000;
    if (long r = sys_ioctl(vm.vcpu, KVM_SET_REGS, reinterpret_cast<u64>(&regs)); r < 0)
        return fail(name, "KVM_SET_REGS returned", static_cast<u64>(r)), false;
    return true;
}

bool run_until_exit(Vm& vm, u32 expected, const char* name) {
    if (long r = sys_ioctl(vm.vcpu, KVM_RUN, 0); r < 0)
        return fail(name, "KVM_RUN returned", static_cast<u64>(r)), false;
    if (vm.run->exit_reason != expected) {
        fail(name, "unexpected exit reason", vm.run->exit_reason);
        if (vm.run->exit_reason == KVM_EXIT_FAIL_ENTRY)
            fail(name, "hardware entry failure reason", vm.run->fail_entry.hardware_entry_failure_reason);
        if (vm.run->exit_reason == KVM_EXIT_INTERNAL_ERROR) fail(name, "internal error", vm.run->internal.suberror);
        if (vm.run->exit_reason == KVM_EXIT_IO) fail(name, "port", vm.run->io.port);
        if (vm.run->exit_reason == KVM_EXIT_MMIO) fail(name, "address", vm.run->mmio.phys_addr);
        return false;
    }
    return true;
}

u64 io_data(const Vm& vm) {
    const u8* data = reinterpret_cast<const u8*>(vm.run) + vm.run->io.data_offset;
    u64 value = 0;
    for (u32 i = 0; i < vm.run->io.size; ++i) value |= u64{data[i]} << (8 * i);
    return value;
}

// The next exit is L2's OUT of `size` bytes of `value` to `port`.
bool expect_out(Vm& vm, u16 port, u8 size, u64 value, const char* name) {
    if (!run_until_exit(vm, KVM_EXIT_IO, name)) return false;
    const auto& io = vm.run->io;
    if (io.direction != KVM_EXIT_IO_OUT || io.port != port || io.size != size || io.count != 1 ||
        io_data(vm) != value) {
        fail(name, "wrong OUT (direction<<56|port<<40|size<<32|data)",
             (u64{io.direction} << 56) | (u64{io.port} << 40) | (u64{io.size} << 32) | (io_data(vm) & 0xffffffff));
        return false;
    }
    return true;
}

// The next exit is L2's IN of one byte from `port`, which gets `value`.
bool expect_in(Vm& vm, u16 port, u8 value, const char* name) {
    if (!run_until_exit(vm, KVM_EXIT_IO, name)) return false;
    const auto& io = vm.run->io;
    if (io.direction != KVM_EXIT_IO_IN || io.port != port || io.size != 1 || io.count != 1) {
        fail(name, "wrong IN (direction<<24|port<<8|size)", (u64{io.direction} << 24) | (u64{io.port} << 8) | io.size);
        return false;
    }
    reinterpret_cast<u8*>(vm.run)[io.data_offset] = value;
    return true;
}

// The next exit is L2's one-byte MMIO access to `address` (a write of `value`, or a read that gets it).
bool expect_mmio(Vm& vm, u64 address, bool write, u8 value, const char* name) {
    if (!run_until_exit(vm, KVM_EXIT_MMIO, name)) return false;
    auto& mmio = vm.run->mmio;
    if (mmio.phys_addr != address || mmio.len != 1 || (mmio.is_write != 0) != write) {
        fail(name, "wrong MMIO (address<<16|len<<8|is_write)",
             (mmio.phys_addr << 16) | (mmio.len << 8) | mmio.is_write);
        return false;
    }
    if (write && mmio.data[0] != value) return fail(name, "MMIO write of", mmio.data[0]), false;
    if (!write) mmio.data[0] = value;
    return true;
}

bool expect_hlt(Vm& vm, u64 rip, const char* name) {
    if (!run_until_exit(vm, KVM_EXIT_HLT, name)) return false;
    KvmRegs regs{};
    sys_ioctl(vm.vcpu, KVM_GET_REGS, reinterpret_cast<u64>(&regs));
    if (regs.rip != rip) return fail(name, "RIP after HLT is not past it:", regs.rip), false;
    return true;
}

// A VM whose real-mode L2 starts at kCodeAddress with `code`; false (and reported) if it cannot.
template <usize kBytes> bool start_real_mode(int kvm, Vm& vm, const u8 (&code)[kBytes], const char* name) {
    if (!create_vm(kvm, vm, name)) return false;
    for (usize i = 0; i < kBytes; ++i) vm.memory[kCodeAddress + i] = code[i];
    return enter_real_mode_at(vm, kCodeAddress, name);
}

// A real-mode interrupt vector: its handler's code at `handler` (segment 0).
template <usize kBytes> void set_vector(Vm& vm, u8 vector, u16 handler, const u8 (&code)[kBytes]) {
    const usize entry = usize{vector} * 4;
    vm.memory[entry] = static_cast<u8>(handler);
    vm.memory[entry + 1] = static_cast<u8>(handler >> 8);
    vm.memory[entry + 2] = 0;
    vm.memory[entry + 3] = 0;
    for (usize i = 0; i < kBytes; ++i) vm.memory[handler + i] = code[i];
}

// L2: `mov al, 0x42; out 0x10, al; hlt`. KVM reports the OUT (port, size, direction, the byte)
// and then, run again, the HLT with RIP past it.
bool check_real_mode_out_and_hlt(int kvm, Vm& vm, const char* name) {
    static constexpr u8 kCode[] = {0xb0, 0x42, 0xe6, 0x10, 0xf4};
    return start_real_mode(kvm, vm, kCode, name) && expect_out(vm, 0x10, 1, 0x42, name) &&
           expect_hlt(vm, kCodeAddress + sizeof(kCode), name);
}

// L2: `in al, 0x11; inc al; out 0x10, al; hlt`: the byte the client gives the IN comes back.
bool check_port_in(int kvm, Vm& vm, const char* name) {
    static constexpr u8 kCode[] = {0xe4, 0x11, 0xfe, 0xc0, 0xe6, 0x10, 0xf4};
    return start_real_mode(kvm, vm, kCode, name) && expect_in(vm, 0x11, 0x61, name) &&
           expect_out(vm, 0x10, 1, 0x62, name) && expect_hlt(vm, kCodeAddress + sizeof(kCode), name);
}

// L2 writes and reads an address no memory slot backs (DS = 0x2000, guest-physical 0x20010 and
// 0x20020): KVM_EXIT_MMIO for each, the read gets the client's byte, which L2 sends out.
bool check_mmio(int kvm, Vm& vm, const char* name) {
    static constexpr u8 kCode[] = {
        0xb8, 0x00, 0x20,              // mov ax, 0x2000
        0x8e, 0xd8,                    // mov ds, ax
        0xc6, 0x06, 0x10, 0x00, 0x5a,  // mov byte [0x10], 0x5a
        0xa0, 0x20, 0x00,              // mov al, [0x20]
        0xe6, 0x10,                    // out 0x10, al
        0xf4,                          // hlt
    };
    return start_real_mode(kvm, vm, kCode, name) && expect_mmio(vm, 0x20010, true, 0x5a, name) &&
           expect_mmio(vm, 0x20020, false, 0xa5, name) && expect_out(vm, 0x10, 1, 0xa5, name) &&
           expect_hlt(vm, kCodeAddress + sizeof(kCode), name);
}

// L2 writes its memory (a byte at 0x3000, a word at 0x3ffe); the client reads both back from the
// memory it gave the slot.
bool check_memory_write(int kvm, Vm& vm, const char* name) {
    static constexpr u8 kCode[] = {
        0xc6, 0x06, 0x00, 0x30, 0x77,        // mov byte [0x3000], 0x77
        0xc7, 0x06, 0xfe, 0x3f, 0x34, 0x12,  // mov word [0x3ffe], 0x1234
        0xf4,                                // hlt
    };
    if (!start_real_mode(kvm, vm, kCode, name) || !expect_hlt(vm, kCodeAddress + sizeof(kCode), name)) return false;
    u64 seen = vm.memory[0x3000] | u64{vm.memory[0x3ffe]} << 8 | u64{vm.memory[0x3fff]} << 16;
    if (seen != 0x123477) return fail(name, "the client reads", seen), false;
    return true;
}

// CPUID runs in L2 and KVM answers it from the table the client set (leaf 0, EBX 0x4e455354):
// L2 sends EBX out as a double word.
bool check_cpuid(int kvm, Vm& vm, const char* name) {
    static constexpr u8 kCode[] = {
        0x66, 0x31, 0xc0,  // xor eax, eax
        0x66, 0x31, 0xc9,  // xor ecx, ecx
        0x0f, 0xa2,        // cpuid
        0x66, 0x89, 0xd8,  // mov eax, ebx
        0x66, 0xe7, 0x10,  // out 0x10, eax
        0xf4,              // hlt
    };
    if (!create_vm(kvm, vm, name)) return false;
    KvmCpuid2<1> table{};
    table.nent = 1;
    table.entries[0] = KvmCpuidEntry2{0, 0, 0, 0x1, 0x4e455354, 0, 0, {}};
    if (long r = sys_ioctl(vm.vcpu, KVM_SET_CPUID2, reinterpret_cast<u64>(&table)); r < 0)
        return fail(name, "KVM_SET_CPUID2 returned", static_cast<u64>(r)), false;
    for (usize i = 0; i < sizeof(kCode); ++i) vm.memory[kCodeAddress + i] = kCode[i];
    return enter_real_mode_at(vm, kCodeAddress, name) && expect_out(vm, 0x10, 4, 0x4e455354, name) &&
           expect_hlt(vm, kCodeAddress + sizeof(kCode), name);
}

// L2's UD2: KVM injects #UD, which L2's own real-mode handler (vector 6) takes: it sends 6 out.
bool check_exception(int kvm, Vm& vm, const char* name) {
    static constexpr u8 kCode[] = {0x0f, 0x0b};                       // ud2
    static constexpr u8 kHandler[] = {0xb0, 0x06, 0xe6, 0x10, 0xf4};  // mov al, 6; out 0x10, al; hlt
    if (!start_real_mode(kvm, vm, kCode, name)) return false;
    set_vector(vm, 6, 0x2000, kHandler);
    return expect_out(vm, 0x10, 1, 6, name) && expect_hlt(vm, 0x2000 + sizeof(kHandler), name);
}

// L2 enables interrupts and halts; the client injects vector 0x20 with KVM_INTERRUPT and L2's
// handler for it runs: it sends 0x20 out.
bool check_injected_interrupt(int kvm, Vm& vm, const char* name) {
    static constexpr u8 kCode[] = {0xfb, 0xf4, 0xf4};                 // sti; hlt; hlt
    static constexpr u8 kHandler[] = {0xb0, 0x20, 0xe6, 0x10, 0xf4};  // mov al, 0x20; out 0x10, al; hlt
    if (!start_real_mode(kvm, vm, kCode, name)) return false;
    set_vector(vm, 0x20, 0x2000, kHandler);
    if (!expect_hlt(vm, kCodeAddress + 2, name)) return false;
    if (!vm.run->ready_for_interrupt_injection)
        return fail(name, "not ready for an interrupt, if_flag", vm.run->if_flag), false;
    KvmInterrupt irq{0x20};
    if (long r = sys_ioctl(vm.vcpu, KVM_INTERRUPT, reinterpret_cast<u64>(&irq)); r < 0)
        return fail(name, "KVM_INTERRUPT returned", static_cast<u64>(r)), false;
    return expect_out(vm, 0x10, 1, 0x20, name) && expect_hlt(vm, 0x2000 + sizeof(kHandler), name);
}

bool set_slot(Vm& vm, u32 slot, u64 guest_physical, u64 bytes, void* host, const char* name) {
    KvmUserspaceMemoryRegion region{slot, 0, guest_physical, bytes, reinterpret_cast<u64>(host)};
    if (long r = sys_ioctl(vm.vm, KVM_SET_USER_MEMORY_REGION, reinterpret_cast<u64>(&region)); r < 0)
        return fail(name, "KVM_SET_USER_MEMORY_REGION returned", static_cast<u64>(r)), false;
    return true;
}

u8* map_page(u8 fill, const char* name) {
    long mapped = sys_mmap(nullptr, 4096, kProtRead | kProtWrite, kMapPrivate | kMapAnonymous, -1, 0);
    if (mapped < 0) return fail(name, "mmap returned", static_cast<u64>(mapped)), nullptr;
    u8* page = reinterpret_cast<u8*>(mapped);
    for (usize i = 0; i < 4096; ++i) page[i] = fill;
    return page;
}

// A memory slot at guest-physical 0x10000 is deleted and added again backed by another page of
// the client's: L2's next read of the same address gets the new page's byte. Linux KVM changes
// its nested page table and flushes; Nestor's shadow of it must follow.
bool check_slot_moved(int kvm, Vm& vm, const char* name) {
    static constexpr u8 kCode[] = {
        0xb8, 0x00, 0x10,  // mov ax, 0x1000
        0x8e, 0xd8,        // mov ds, ax
        0xa0, 0x00, 0x00,  // mov al, [0]
        0xe6, 0x10,        // out 0x10, al
        0xa0, 0x00, 0x00,  // mov al, [0]
        0xe6, 0x10,        // out 0x10, al
        0xf4,              // hlt
    };
    u8* first = map_page(0x11, name);
    u8* second = map_page(0x22, name);
    bool ok = first && second && start_real_mode(kvm, vm, kCode, name) && set_slot(vm, 1, 0x10000, 4096, first, name) &&
              expect_out(vm, 0x10, 1, 0x11, name) && set_slot(vm, 1, 0x10000, 0, first, name) &&
              set_slot(vm, 1, 0x10000, 4096, second, name) && expect_out(vm, 0x10, 1, 0x22, name) &&
              expect_hlt(vm, kCodeAddress + sizeof(kCode), name);
    if (first) sys_munmap(first, 4096);
    if (second) sys_munmap(second, 4096);
    return ok;
}

// Two vCPUs of one VM, run in turn: each its own code, registers and exits (Linux KVM runs each
// with a VMCB of its own, so L1's VMRUNs alternate between two vmcb12s).
bool check_two_vcpus(int kvm, Vm& vm, const char* name) {
    static constexpr u8 kCode[] = {0xb0, 0x01, 0xe6, 0x10, 0xb0, 0x03, 0xe6, 0x10, 0xf4};
    static constexpr u8 kOther[] = {0xb0, 0x02, 0xe6, 0x10, 0xb0, 0x04, 0xe6, 0x10, 0xf4};
    if (!start_real_mode(kvm, vm, kCode, name)) return false;
    for (usize i = 0; i < sizeof(kOther); ++i) vm.memory[0x1800 + i] = kOther[i];
    Vm other = vm;
    other.vcpu = sys_ioctl(vm.vm, KVM_CREATE_VCPU, 1);
    if (other.vcpu < 0) return fail(name, "the second KVM_CREATE_VCPU returned", static_cast<u64>(other.vcpu)), false;
    long run = sys_mmap(nullptr, vm.run_bytes, kProtRead | kProtWrite, kMapShared, other.vcpu, 0);
    bool ok = run >= 0;
    if (!ok) fail(name, "mmap of the second kvm_run returned", static_cast<u64>(run));
    other.run = reinterpret_cast<KvmRun*>(run);
    ok = ok && enter_real_mode_at(other, 0x1800, name) && expect_out(vm, 0x10, 1, 1, name) &&
         expect_out(other, 0x10, 1, 2, name) && expect_out(vm, 0x10, 1, 3, name) &&
         expect_out(other, 0x10, 1, 4, name) && expect_hlt(other, 0x1800 + sizeof(kOther), name) &&
         expect_hlt(vm, kCodeAddress + sizeof(kCode), name);
    if (run >= 0) sys_munmap(other.run, vm.run_bytes);
    sys_close(other.vcpu);
    return ok;
}

// L2 in 64-bit mode on its own page tables (a 2 MiB page maps the first 2 MiB one to one): it
// writes a quadword to its memory and sends a double word out. KVM's nested paging of L2 runs on
// Nestor's shadow of it.
bool check_long_mode(int kvm, Vm& vm, const char* name) {
    static constexpr u8 kCode[] = {
        0x48, 0xbb, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,  // mov rbx, 0x1122334455667788
        0x48, 0x89, 0x1c, 0x25, 0x00, 0x30, 0x00, 0x00,              // mov [0x3000], rbx
        0xb8, 0x64, 0x00, 0x00, 0x00,                                // mov eax, 0x64
        0xe7, 0x10,                                                  // out 0x10, eax
        0xf4,                                                        // hlt
    };
    if (!create_vm(kvm, vm, name)) return false;
    for (usize i = 0; i < sizeof(kCode); ++i) vm.memory[kCodeAddress + i] = kCode[i];
    auto entry = [&](u64 table, u64 value) {
        for (int i = 0; i < 8; ++i) vm.memory[table + i] = static_cast<u8>(value >> (8 * i));
    };
    entry(0x4000, 0x5000 | 0x3);  // PML4[0] -> PDPT
    entry(0x5000, 0x6000 | 0x3);  // PDPT[0] -> PD
    entry(0x6000, 0x0 | 0x83);    // PD[0]: 2 MiB at 0, present, writable, large
    KvmSregs sregs{};
    if (long r = sys_ioctl(vm.vcpu, KVM_GET_SREGS, reinterpret_cast<u64>(&sregs)); r < 0)
        return fail(name, "KVM_GET_SREGS returned", static_cast<u64>(r)), false;
    KvmSegment code{0, 0xffffffff, 0x8, 11, 1, 0, 0, 1, 1, 1, 0, 0, 0};
    KvmSegment data{0, 0xffffffff, 0x10, 3, 1, 0, 1, 1, 0, 1, 0, 0, 0};
    sregs.cs = code;
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
    sregs.cr3 = 0x4000;
    sregs.cr4 = 0x20;        // PAE
    sregs.cr0 = 0x80000011;  // PG, ET, PE
    sregs.efer = 0x500;      // LMA, LME
    if (long r = sys_ioctl(vm.vcpu, KVM_SET_SREGS, reinterpret_cast<u64>(&sregs)); r < 0)
        return fail(name, "KVM_SET_SREGS returned", static_cast<u64>(r)), false;
    KvmRegs regs{};
    regs.rip = kCodeAddress;
    regs.rflags = 0x2;
    regs.rsp = 0x8000;
    if (long r = sys_ioctl(vm.vcpu, KVM_SET_REGS, reinterpret_cast<u64>(&regs)); r < 0)
        return fail(name, "KVM_SET_REGS returned", static_cast<u64>(r)), false;
    if (!expect_out(vm, 0x10, 4, 0x64, name) || !expect_hlt(vm, kCodeAddress + sizeof(kCode), name)) return false;
    u64 written = 0;
    for (int i = 7; i >= 0; --i) written = written << 8 | vm.memory[0x3000 + i];
    if (written != 0x1122334455667788) return fail(name, "the client reads", written), false;
    return true;
}

void on_alarm(int) {}  // only for KVM_RUN to return: the signal is the news

// L2 spins (`jmp $`) with nothing to exit for; a second later the client's alarm signal, raised
// from L1's own timer interrupt (a #VMEXIT(INTR) out of L2 into L1), makes KVM_RUN return -EINTR
// with KVM_EXIT_INTR. Without L1 getting its interrupts while L2 runs, this never returns.
bool check_l1_timer_preempts_l2(int kvm, Vm& vm, const char* name) {
    static constexpr u8 kCode[] = {0xeb, 0xfe};  // jmp $
    if (!start_real_mode(kvm, vm, kCode, name)) return false;
    KernelSigaction action{on_alarm, kSaRestorer, kvm_client_restorer, 0};
    if (long r = sys_rt_sigaction(kSigAlarm, &action); r < 0)
        return fail(name, "rt_sigaction returned", static_cast<u64>(r)), false;
    sys_alarm(1);
    long r = sys_ioctl(vm.vcpu, KVM_RUN, 0);
    if (r != kErrorInterrupted) return fail(name, "KVM_RUN did not return -EINTR but", static_cast<u64>(r)), false;
    if (vm.run->exit_reason != KVM_EXIT_INTR) return fail(name, "exit reason", vm.run->exit_reason), false;
    KvmRegs regs{};
    sys_ioctl(vm.vcpu, KVM_GET_REGS, reinterpret_cast<u64>(&regs));
    if (regs.rip != kCodeAddress) return fail(name, "L2's RIP is not in its loop:", regs.rip), false;
    return true;
}

bool one_vm(int kvm, const char* name) {
    Vm one;
    bool ok = check_real_mode_out_and_hlt(kvm, one, name);
    destroy_vm(one);
    return ok;
}

// A hundred VMs in a row, each created, run to its OUT and HLT, and destroyed; then Nestor holds
// as much L0 memory for L1's nested state as before them (its nested-memory MSR). The first
// reading follows one VM like the hundred, so that both find Nestor's shadow of KVM's nested page
// table holding what one such L2 leaves in it: a leak of even one page fails the check. `vm` stays
// open throughout: KVM leaves VMX operation (VMXOFF) with its last VM, and Nestor then frees all
// of L1's nested state, which would leave the readings nothing to compare.
bool check_hundred_vms(int kvm, Vm& vm, const char* name) {
    if (!create_vm(kvm, vm, name) || !one_vm(kvm, name)) return false;
    long before = nested_memory_bytes();
    // 0 would mean no nested state at all after a VM ran: no check.
    if (before <= 0) return fail(name, "Nestor's nested-memory MSR reads", static_cast<u64>(before)), false;
    for (int i = 0; i < 100; ++i)
        if (!one_vm(kvm, name)) return fail(name, "failed at VM number", static_cast<u64>(i)), false;
    long after = nested_memory_bytes();
    print("KVM-CLIENT: Nestor's nested state: ");
    print_decimal(static_cast<u64>(before) >> 10);
    print(" KiB before the hundred VMs, ");
    print_decimal(static_cast<u64>(after) >> 10);
    print(" KiB after\n");
    if (after != before)
        return fail(name, "Nestor's nested state after the hundred VMs, in bytes:", static_cast<u64>(after)), false;
    return one_vm(kvm, name);  // and one more, still possible
}

using Check = bool (*)(int kvm, Vm& vm, const char* name);

void run_check(int kvm, Check check, const char* name) {
    Vm vm;
    if (check(kvm, vm, name)) {
        pass(name);
        ++counts.passed;
    } else {
        ++counts.failed;
    }
    destroy_vm(vm);
}

void print_done() {
    print("KVM-CLIENT: DONE ");
    print_decimal(static_cast<u64>(counts.passed));
    print(" passed, ");
    print_decimal(static_cast<u64>(counts.failed));
    print(" failed\n");
}

// /dev/kvm, open, at the API version this client knows; -1 (and reported) if not.
int open_kvm() {
    int kvm = sys_open("/dev/kvm", kOpenReadWrite | kOpenCloseOnExec);
    if (kvm < 0) {
        fail("open_dev_kvm", "open returned", static_cast<u64>(kvm));
        ++counts.failed;
        return -1;
    }
    long version = sys_ioctl(kvm, KVM_GET_API_VERSION, 0);
    if (version != 12) {
        fail("api_version", "KVM_GET_API_VERSION is not 12:", static_cast<u64>(version));
        ++counts.failed;
        return -1;
    }
    pass("api_version");
    ++counts.passed;
    return kvm;
}

int run_checks() {
    int kvm = open_kvm();
    if (kvm < 0) return 1;
    run_check(kvm, check_real_mode_out_and_hlt, "real_mode_out_then_hlt");
    run_check(kvm, check_port_in, "real_mode_port_in");
    run_check(kvm, check_mmio, "mmio_write_and_read");
    run_check(kvm, check_memory_write, "l2_writes_memory_client_reads");
    run_check(kvm, check_cpuid, "cpuid_from_kvm_table");
    run_check(kvm, check_exception, "exception_to_l2_handler");
    run_check(kvm, check_injected_interrupt, "kvm_interrupt_to_l2_handler");
    run_check(kvm, check_slot_moved, "memory_slot_moved");
    run_check(kvm, check_two_vcpus, "two_vcpus_in_turn");
    run_check(kvm, check_long_mode, "long_mode_l2");
    run_check(kvm, check_l1_timer_preempts_l2, "l1_timer_preempts_spinning_l2");
    run_check(kvm, check_hundred_vms, "hundred_vms");
    print_done();
    return counts.failed;
}

// --- storm -------------------------------------------------------------------------------------

constexpr unsigned kStormSeconds = 5;
constexpr u64 kStormCounter = 0x3000;  // L2 counts its CPUIDs here
constexpr u32 kCpuidsPerOut = 1000;

volatile bool alarm_rang = false;
void on_storm_alarm(int) { alarm_rang = true; }

// Whether the CPU is AMD's design ("AuthenticAMD", "HygonGenuine": CPUID leaf 0's EBX), whose
// hypercall instruction is VMMCALL; Intel's is VMCALL.
bool amd_cpu() {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    asm volatile("cpuid" : "+a"(eax), "=b"(ebx), "+c"(ecx), "=d"(edx));
    return ebx == 0x68747541 || ebx == 0x6f677948;  // "Auth", "Hygo"
}

// Signals the notification in the domain's signal slot `index` (the manifest's `signals`), with
// Nestor's hypercall (sdk/include/nestor/abi/hypercall.h) from L1's user space: VMMCALL or
// VMCALL, which Nestor takes whatever the CPL (L1 runs no L2 now). The status (0: NESTOR_E_OK).
long nestor_signal(u64 index) {
    long rax = NESTOR_HC_NOTIFICATION_SIGNAL;
    register long rdi asm("rdi") = static_cast<long>(NESTOR_GUEST_SLOT_SIGNAL_BASE + index);
    register long rsi asm("rsi") = 0;
    register long rdx asm("rdx") = 0;
    register long r10 asm("r10") = 0;
    register long r8 asm("r8") = 0;
    register long r9 asm("r9") = 0;
    if (amd_cpu())
        asm volatile("vmmcall" : "+a"(rax), "+r"(rdi), "+r"(rsi), "+r"(rdx), "+r"(r10), "+r"(r8), "+r"(r9)::"memory");
    else
        asm volatile("vmcall" : "+a"(rax), "+r"(rdi), "+r"(rsi), "+r"(rdx), "+r"(r10), "+r"(r8), "+r"(r9)::"memory");
    return rax;
}

// L2 exits as fast as it can: CPUID after CPUID, each a #VMEXIT that KVM answers in L1's kernel
// and a VMRUN (Nestor emulates both), counted in L2's memory, and every kCpuidsPerOut an OUT that
// KVM_RUN returns to the client, which runs it again at once. For kStormSeconds (L1's alarm),
// with Nestor's healthy neighbour woken just before (the test wants its end before the storm's).
bool check_vmrun_storm(int kvm, Vm& vm, const char* name) {
    static constexpr u8 kCode[] = {
        0xbe, 0xe8, 0x03,              // start: mov si, 1000
        0x66, 0x31, 0xc0,              // inner: xor eax, eax
        0x0f, 0xa2,                    //   cpuid
        0x66, 0xff, 0x06, 0x00, 0x30,  //   inc dword [0x3000]
        0x4e,                          //   dec si
        0x75, 0xf3,                    //   jnz inner
        0xe6, 0x10,                    // out 0x10, al
        0xeb, 0xec,                    // jmp start
    };
    static_assert(kCpuidsPerOut == 0x03e8);
    if (!start_real_mode(kvm, vm, kCode, name)) return false;
    KernelSigaction action{on_storm_alarm, kSaRestorer, kvm_client_restorer, 0};
    if (long r = sys_rt_sigaction(kSigAlarm, &action); r < 0)
        return fail(name, "rt_sigaction returned", static_cast<u64>(r)), false;
    print("KVM-CLIENT: storm: started, L2 exits for ");
    print_decimal(kStormSeconds);
    print(" s\n");
    if (long r = nestor_signal(0); r != 0)
        return fail(name, "signalling Nestor's healthy domain returned", static_cast<u64>(r)), false;
    sys_alarm(kStormSeconds);
    u64 outs = 0;
    while (!alarm_rang) {
        long r = sys_ioctl(vm.vcpu, KVM_RUN, 0);
        if (r == kErrorInterrupted) break;
        if (r < 0) return fail(name, "KVM_RUN returned", static_cast<u64>(r)), false;
        const auto& io = vm.run->io;
        if (vm.run->exit_reason != KVM_EXIT_IO || io.port != 0x10 || io.direction != KVM_EXIT_IO_OUT)
            return fail(name, "an exit that is not L2's OUT, reason", vm.run->exit_reason), false;
        ++outs;
    }
    u64 cpuids = 0;
    for (int i = 3; i >= 0; --i) cpuids = cpuids << 8 | vm.memory[kStormCounter + i];
    print("KVM-CLIENT: storm: stopped after ");
    print_decimal(cpuids);
    print(" CPUID exits in L2, ");
    print_decimal(outs);
    print(" OUTs to the client\n");
    // Every OUT follows kCpuidsPerOut CPUIDs; a storm that ran a thousandth of that is no storm.
    if (outs == 0 || cpuids < outs * kCpuidsPerOut) return fail(name, "too few exits: CPUIDs", cpuids), false;
    return true;
}

int run_storm() {
    int kvm = open_kvm();
    if (kvm < 0) return 1;
    run_check(kvm, check_vmrun_storm, "vmrun_storm");
    print_done();
    return counts.failed;
}

// --- power-off with L2 running ------------------------------------------------------------------

constexpr u64 kSharedAddress = 0x10000;  // L2-physical: the page the child and the parent share

// The child: a VM whose L2 counts in the shared page for ever (real mode, DS = 0x1000), run by
// KVM_RUN, which returns only for a signal. Never returns; exits 1 if KVM refuses.
[[noreturn]] void spin_l2(int kvm, u8* shared) {
    static constexpr u8 kCode[] = {
        0xb8, 0x00, 0x10,              // mov ax, 0x1000
        0x8e, 0xd8,                    // mov ds, ax
        0x66, 0xff, 0x06, 0x00, 0x00,  // loop: inc dword [0]
        0xeb, 0xf9,                    // jmp loop
    };
    const char* name = "poweroff_in_l2";
    Vm vm;
    if (!start_real_mode(kvm, vm, kCode, name) || !set_slot(vm, 1, kSharedAddress, 4096, shared, name))
        sys_exit_group(1);
    for (;;) {
        long r = sys_ioctl(vm.vcpu, KVM_RUN, 0);
        if (r < 0 && r != kErrorInterrupted) {
            fail(name, "the child's KVM_RUN returned", static_cast<u64>(r));
            sys_exit_group(1);
        }
    }
}

u32 shared_counter(const volatile u8* shared) {
    u32 value = 0;
    for (int i = 3; i >= 0; --i) value = value << 8 | shared[i];
    return value;
}

// A child process keeps an L2 spinning in KVM_RUN; once its count is seen to move, the client
// powers L1 off (reboot(2), as `poweroff -f`): KVM leaves SVM or VMX on every CPU while its vCPU
// is in KVM_RUN, and Linux ends the domain through ACPI. With a second CPU the child runs there
// and the client on CPU 0, so the domain's other vCPU holds the L2 while the first powers off.
// Returns only if that fails.
int run_poweroff_in_l2() {
    const char* name = "poweroff_in_l2";
    int kvm = open_kvm();
    if (kvm < 0) return 1;
    long mapped = sys_mmap(nullptr, 4096, kProtRead | kProtWrite, kMapShared | kMapAnonymous, -1, 0);
    if (mapped < 0) return fail(name, "mmap of the shared page returned", static_cast<u64>(mapped)), 1;
    u8* shared = reinterpret_cast<u8*>(mapped);
    const bool two_cpus = sys_run_on_cpu(1) == 0;
    if (two_cpus) print("KVM-CLIENT: poweroff_in_l2: L2 on CPU 1, the power-off from CPU 0\n");
    long child = sys_fork();  // the child inherits CPU 1
    if (child < 0) return fail(name, "fork returned", static_cast<u64>(child)), 1;
    if (child == 0) spin_l2(kvm, shared);
    if (two_cpus && sys_run_on_cpu(0) != 0) return fail(name, "the client could not move to CPU 0", 0), 1;
    Timespec tenth{0, 100'000'000};
    u32 first = 0, now = 0;
    for (int i = 0; i < 100 && (first == 0 || now == first); ++i) {
        sys_nanosleep(tenth);
        now = shared_counter(shared);
        if (first == 0) first = now;
    }
    if (first == 0 || now == first) return fail(name, "the child's L2 does not count:", now), 1;
    print("KVM-CLIENT: L2 spins in a child's KVM_RUN (its count moved from ");
    print_decimal(first);
    print(" to ");
    print_decimal(now);
    print("): powering off\n");
    long r = sys_reboot(kRebootPowerOff);
    return fail(name, "reboot returned", static_cast<u64>(r)), 1;
}

// --- bench -------------------------------------------------------------------------------------

// The timing loops of bench/run-benchmarks, run the same way on Linux KVM as L1 on Nestor and on
// Linux KVM alone on bare QEMU: a real-mode L2 reads its TSC, runs kBenchIterations round trips of
// one exiting instruction (with `xor eax, eax`, `dec si` and `jnz` around it), reads the TSC again
// and halts. Under QEMU's -icount the TSC counts instructions, every level's (KVM's and Nestor's
// TSC offsets leave its deltas alone), so a batch's ticks are all the instructions of its round
// trips, whoever ran them. L1's timer tick lands in some batches: the first batch warms up and is
// left out, and the line is the best of the others, per round trip.
constexpr u16 kBenchIterations = 64;
constexpr int kBenchBatches = 16;
constexpr u64 kBenchTimes = 0x3000;  // L2's TSC before its loop, and at +8 after it
constexpr u16 kBenchPort = 0x10;

struct BenchLoop {
    const char* name;
    u8 exit[3];
    usize exit_bytes;
    bool exits_to_client;  // each round trip is a KVM_EXIT_IO that KVM_RUN returns to the client
};
constexpr BenchLoop kBenchLoops[] = {
    {"cpuid", {0x0f, 0xa2, 0}, 2, false},       // leaf 0: KVM answers from its CPUID table
    {"vmmcall", {0x0f, 0x01, 0xd9}, 3, false},  // hypercall 0 (EAX): KVM's handler returns -KVM_ENOSYS
    {"pio", {0xe6, kBenchPort, 0}, 2, true},    // out 0x10, al: KVM_EXIT_IO to the client, KVM_RUN again
};

template <usize kBytes> void append(u8* code, usize& at, const u8 (&bytes)[kBytes]) {
    for (usize i = 0; i < kBytes; ++i) code[at++] = bytes[i];
}

// L2's code for `loop` at kCodeAddress; returns the address past its HLT and sets `loop_address`
// to the loop's first instruction (where bench/run-benchmarks' QEMU plugin counts round trips).
u64 write_bench_code(Vm& vm, const BenchLoop& loop, u64& loop_address) {
    static_assert(kBenchTimes == 0x3000);
    static constexpr u8 kStart[] = {
        0x0f, 0x31,                    // rdtsc
        0x66, 0xa3, 0x00, 0x30,        // mov [0x3000], eax
        0x66, 0x89, 0x16, 0x04, 0x30,  // mov [0x3004], edx
    };
    static constexpr u8 kClear[] = {0x66, 0x31, 0xc0};  // loop: xor eax, eax
    static constexpr u8 kEnd[] = {
        0x0f, 0x31,                    // rdtsc
        0x66, 0xa3, 0x08, 0x30,        // mov [0x3008], eax
        0x66, 0x89, 0x16, 0x0c, 0x30,  // mov [0x300c], edx
        0xf4,                          // hlt
    };
    u8* code = vm.memory + kCodeAddress;
    usize at = 0;
    code[at++] = 0xbe;  // mov si, kBenchIterations
    code[at++] = static_cast<u8>(kBenchIterations);
    code[at++] = static_cast<u8>(kBenchIterations >> 8);
    append(code, at, kStart);
    usize loop_start = at;
    loop_address = kCodeAddress + loop_start;
    append(code, at, kClear);
    for (usize i = 0; i < loop.exit_bytes; ++i) code[at++] = loop.exit[i];
    code[at++] = 0x4e;  // dec si
    code[at++] = 0x75;  // jnz loop (rel8 from the end of the jump)
    code[at] = static_cast<u8>(loop_start - (at + 1));
    ++at;
    append(code, at, kEnd);
    return kCodeAddress + at;
}

u64 read_u64(const u8* bytes) {
    u64 value = 0;
    for (int i = 7; i >= 0; --i) value = value << 8 | bytes[i];
    return value;
}

// One batch: L2 from its first instruction to its HLT, each OUT answered by running it again (one
// per round trip for the pio loop, none for the others). Its TSC ticks, or 0 (and reported).
u64 run_bench_batch(Vm& vm, const BenchLoop& loop, u64 end, const char* name) {
    if (!enter_real_mode_at(vm, kCodeAddress, name)) return 0;
    u64 outs = 0;
    for (;;) {
        if (long r = sys_ioctl(vm.vcpu, KVM_RUN, 0); r < 0)
            return fail(name, "KVM_RUN returned", static_cast<u64>(r)), 0;
        if (vm.run->exit_reason == KVM_EXIT_HLT) break;
        const auto& io = vm.run->io;
        if (vm.run->exit_reason != KVM_EXIT_IO || io.port != kBenchPort || io.direction != KVM_EXIT_IO_OUT)
            return fail(name, "an exit that is neither L2's OUT nor its HLT, reason", vm.run->exit_reason), 0;
        ++outs;
    }
    u64 expected_outs = loop.exits_to_client ? kBenchIterations : 0;
    if (outs != expected_outs) return fail(name, "OUT exits in a batch:", outs), 0;
    KvmRegs regs{};
    sys_ioctl(vm.vcpu, KVM_GET_REGS, reinterpret_cast<u64>(&regs));
    if (regs.rip != end) return fail(name, "L2 halted elsewhere, RIP", regs.rip), 0;
    u64 before = read_u64(vm.memory + kBenchTimes);
    u64 after = read_u64(vm.memory + kBenchTimes + 8);
    if (after <= before) return fail(name, "L2's TSC did not move forward, after", after), 0;
    return after - before;
}

// `NESTOR-KVM-BENCH: NAME TICKS (best of B batches of N; worst W; loop at ADDRESS)`: the best
// batch's ticks per round trip, rounded; the worst batch's (how far L1's own work, its timer,
// moved the others); where L2's loop starts. Short enough for Nestor's console not to wrap it.
bool bench_loop(int kvm, Vm& vm, const BenchLoop& loop) {
    const char* name = loop.name;
    if (!create_vm(kvm, vm, name)) return false;
    u64 loop_address = 0;
    u64 end = write_bench_code(vm, loop, loop_address);
    u64 best = ~u64{0};
    u64 worst = 0;
    for (int batch = 0; batch <= kBenchBatches; ++batch) {
        u64 ticks = run_bench_batch(vm, loop, end, name);
        if (ticks == 0) return false;
        if (batch == 0) continue;  // the warm-up
        if (ticks < best) best = ticks;
        if (ticks > worst) worst = ticks;
    }
    print("NESTOR-KVM-BENCH: ");
    print(name);
    print(" ");
    print_decimal((best + kBenchIterations / 2) / kBenchIterations);
    print(" (best of ");
    print_decimal(kBenchBatches);
    print(" batches of ");
    print_decimal(kBenchIterations);
    print("; worst ");
    print_decimal((worst + kBenchIterations / 2) / kBenchIterations);
    print("; loop at ");
    print_hex(loop_address);
    print(")\n");
    return true;
}

int run_bench() {
    int kvm = open_kvm();
    if (kvm < 0) return 1;
    for (const BenchLoop& loop : kBenchLoops) {
        Vm vm;
        if (bench_loop(kvm, vm, loop)) {
            pass(loop.name);
            ++counts.passed;
        } else {
            ++counts.failed;
        }
        destroy_vm(vm);
    }
    print_done();
    return counts.failed;
}

bool same(const char* a, const char* b) {
    while (*a && *a == *b) ++a, ++b;
    return *a == *b;
}

int run(int argc, char** argv) {
    if (argc < 2) return run_checks();
    if (same(argv[1], "storm")) return run_storm();
    if (same(argv[1], "poweroff_in_l2")) return run_poweroff_in_l2();
    if (same(argv[1], "bench")) return run_bench();
    print("KVM-CLIENT: FAIL mode: unknown, ");
    print(argv[1]);
    print("\n");
    return 1;
}

}  // namespace

int program_main(int argc, char** argv) { return run(argc, argv); }
