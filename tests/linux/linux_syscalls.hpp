// The few Linux x86-64 system calls Nestor's KVM client makes, without a libc, and the output it
// prints with them. Freestanding: the client is linked -nostdlib -static.
#pragma once

namespace kvm_client {

using u8 = unsigned char;
using u16 = unsigned short;
using u32 = unsigned int;
using u64 = unsigned long;
using usize = unsigned long;

constexpr long kSysRead = 0;
constexpr long kSysWrite = 1;
constexpr long kSysOpen = 2;
constexpr long kSysClose = 3;
constexpr long kSysLseek = 8;
constexpr long kSysMmap = 9;
constexpr long kSysMunmap = 11;
constexpr long kSysPread64 = 17;
constexpr long kSysRtSigaction = 13;
constexpr long kSysIoctl = 16;
constexpr long kSysNanosleep = 35;
constexpr long kSysAlarm = 37;
constexpr long kSysFork = 57;
constexpr long kSysReboot = 169;
constexpr long kSysSchedSetaffinity = 203;
constexpr long kSysClockGettime = 228;
constexpr long kSysExitGroup = 231;

constexpr int kOpenReadOnly = 0;
constexpr int kOpenReadWrite = 02;
constexpr int kOpenCloseOnExec = 02000000;
constexpr int kProtRead = 1;
constexpr int kProtWrite = 2;
constexpr int kMapShared = 0x01;
constexpr int kMapPrivate = 0x02;
constexpr int kMapAnonymous = 0x20;
constexpr int kSeekEnd = 2;
constexpr int kClockMonotonic = 1;
constexpr int kSigAlarm = 14;
constexpr long kErrorInterrupted = -4;  // -EINTR
constexpr u64 kSaRestorer = 0x04000000;
// reboot(2): its two magic numbers and the power-off command (LINUX_REBOOT_*).
constexpr long kRebootMagic1 = 0xfee1dead;
constexpr long kRebootMagic2 = 672274793;
constexpr long kRebootPowerOff = 0x4321fedc;

struct Timespec {
    long seconds;
    long nanoseconds;
};

// The kernel's struct sigaction on x86-64 (not libc's).
struct KernelSigaction {
    void (*handler)(int);
    u64 flags;
    void (*restorer)();
    u64 mask;
};

inline long syscall6(long number, long a, long b, long c, long d, long e, long f) {
    long result;
    register long r10 asm("r10") = d;
    register long r8 asm("r8") = e;
    register long r9 asm("r9") = f;
    asm volatile("syscall"
                 : "=a"(result)
                 : "a"(number), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                 : "rcx", "r11", "memory");
    return result;
}

inline long sys_read(int fd, void* bytes, usize length) {
    return syscall6(kSysRead, fd, reinterpret_cast<long>(bytes), static_cast<long>(length), 0, 0, 0);
}
inline long sys_write(int fd, const void* bytes, usize length) {
    return syscall6(kSysWrite, fd, reinterpret_cast<long>(bytes), static_cast<long>(length), 0, 0, 0);
}
inline int sys_open(const char* path, int flags) {
    return static_cast<int>(syscall6(kSysOpen, reinterpret_cast<long>(path), flags, 0, 0, 0, 0));
}
inline int sys_close(int fd) { return static_cast<int>(syscall6(kSysClose, fd, 0, 0, 0, 0, 0)); }
inline long sys_mmap(void* address, usize length, int prot, int flags, int fd, long offset) {
    return syscall6(kSysMmap, reinterpret_cast<long>(address), static_cast<long>(length), prot, flags, fd, offset);
}
inline long sys_lseek(int fd, long offset, int whence) { return syscall6(kSysLseek, fd, offset, whence, 0, 0, 0); }
inline long sys_munmap(void* address, usize length) {
    return syscall6(kSysMunmap, reinterpret_cast<long>(address), static_cast<long>(length), 0, 0, 0, 0);
}
inline int sys_ioctl(int fd, unsigned long request, u64 argument) {
    return static_cast<int>(syscall6(kSysIoctl, fd, static_cast<long>(request), static_cast<long>(argument), 0, 0, 0));
}
inline long sys_rt_sigaction(int signal, const KernelSigaction* action) {
    return syscall6(kSysRtSigaction, signal, reinterpret_cast<long>(action), 0, 8, 0, 0);
}
inline long sys_alarm(unsigned seconds) { return syscall6(kSysAlarm, seconds, 0, 0, 0, 0, 0); }
inline long sys_nanosleep(const Timespec& duration) {
    return syscall6(kSysNanosleep, reinterpret_cast<long>(&duration), 0, 0, 0, 0, 0);
}
inline long sys_clock_gettime(int clock, Timespec& out) {
    return syscall6(kSysClockGettime, clock, reinterpret_cast<long>(&out), 0, 0, 0, 0);
}
// 0 in the child, the child's PID in the parent.
inline long sys_fork() { return syscall6(kSysFork, 0, 0, 0, 0, 0, 0); }
// The calling thread on CPU `cpu` only (0: done; -EINVAL: no such CPU).
inline long sys_run_on_cpu(unsigned cpu) {
    unsigned long mask = 1ul << cpu;
    return syscall6(kSysSchedSetaffinity, 0, sizeof(mask), reinterpret_cast<long>(&mask), 0, 0, 0);
}
// Returns only if refused.
inline long sys_reboot(long command) { return syscall6(kSysReboot, kRebootMagic1, kRebootMagic2, command, 0, 0, 0); }
inline long sys_pread(int fd, void* out, usize length, long offset) {
    return syscall6(kSysPread64, fd, reinterpret_cast<long>(out), static_cast<long>(length), offset, 0, 0);
}
[[noreturn]] inline void sys_exit_group(int status) {
    syscall6(kSysExitGroup, status, 0, 0, 0, 0, 0);
    __builtin_unreachable();
}

inline void print(const char* text) {
    usize length = 0;
    while (text[length]) ++length;
    sys_write(1, text, length);
}

inline void print_hex(u64 value) {
    char digits[19] = {'0', 'x'};
    int count = 2;
    bool started = false;
    for (int shift = 60; shift >= 0; shift -= 4) {
        unsigned nibble = (value >> shift) & 0xf;
        if (!nibble && !started && shift) continue;
        started = true;
        digits[count++] = static_cast<char>(nibble < 10 ? '0' + nibble : 'a' + nibble - 10);
    }
    sys_write(1, digits, static_cast<usize>(count));
}

inline void print_decimal(u64 value) {
    char digits[20];
    int count = 0;
    do {
        digits[sizeof(digits) - 1 - count++] = static_cast<char>('0' + value % 10);
        value /= 10;
    } while (value);
    sys_write(1, digits + sizeof(digits) - count, static_cast<usize>(count));
}

}  // namespace kvm_client
