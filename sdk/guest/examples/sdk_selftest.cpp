// Exercises the guest runtime itself: console formatting, exception probes, CPU helpers and the
// boot information. Ends with status 0 when every check held. Command-line words:
//   crash        - execute ud2 outside a probe (the runtime must report it and exit 0x7f)
//   exit=N       - end with status N instead of the check result
#include "nestor/guest.hpp"

using namespace nestor::guest;

namespace {

constexpr u64 kNonCanonical = 0x8000000000000000;
constexpr u64 kAboveIdentityMap = 0x100000000;  // the runtime maps 0..4 GiB only
constexpr u64 kGuestBase = 0x100000;

u64 read_through_rax(u64 address) {
    u64 value;
    // Through RAX, never RSP/RBP: a non-canonical access through those raises #SS, not #GP.
    asm volatile("mov (%1), %0" : "=a"(value) : "a"(address) : "memory");
    return value;
}

void test_console() {
    println("format: ", 12345, " ", -42, " ", hex(0xbeef), " ", hex(0x1f, 4), " ", true);
    check(string_equal("abc", "abc") && !string_equal("abc", "abd"), "string helpers");
}

void test_exceptions() {
    ExceptionRecord none = try_run([] {});
    check(!none.raised && none.vector == kNoException, "probe of code that does not fault");

    ExceptionRecord ud = probe([] { asm volatile("ud2"); });
    println("probe ud2: vector ", ud.vector, " (", exception_name(ud.vector), ")");
    check(ud.raised && ud.vector == kVectorUD, "ud2 raises #UD (vector 6)");

    ExceptionRecord gp = try_run([] { read_through_rax(kNonCanonical); });
    println("probe non-canonical read: vector ", gp.vector, " error code ", hex(gp.error_code));
    check(gp.vector == kVectorGP && gp.error_code == 0, "non-canonical read raises #GP(0) (vector 13)");

    ExceptionRecord pf = try_run([] { read_through_rax(kAboveIdentityMap); });
    println("probe read above 4 GiB: vector ", pf.vector, " cr2 ", hex(pf.cr2));
    check(pf.vector == kVectorPF && pf.cr2 == kAboveIdentityMap, "read above the 4 GiB identity map raises #PF");

    u32 after_nested = 0;
    ExceptionRecord outer = try_run([&] {
        ExceptionRecord inner = probe([] { asm volatile("ud2"); });
        after_nested = inner.vector;
        asm volatile("int3");
    });
    check(after_nested == kVectorUD && outer.vector == kVectorBP, "probes nest");

    u64 value = 0x1234;
    check(read_through_rax(reinterpret_cast<u64>(&value)) == 0x1234, "memory reads still work after faults");
}

void test_hypercalls() {
    if (running_on_nestor()) {
        HypercallResult version = abi_version();
        println("hypercall abi_version: status ", version.status, " value ", hex(version.value[0]));
        check(version.ok() && version.value[0] == NESTOR_ABI_VERSION, "ABI_VERSION hypercall");
        return;
    }
    ExceptionRecord hc = try_run([] { abi_version(); });
    println("probe hypercall without a hypervisor: vector ", hc.vector);
    check(hc.vector == kVectorUD, "a hypercall without a hypervisor raises #UD");
}

void test_cpu() {
    CpuidResult leaf0 = cpuid(0);
    char vendor[13] = {};
    __builtin_memcpy(vendor, &leaf0.ebx, 4);
    __builtin_memcpy(vendor + 4, &leaf0.edx, 4);
    __builtin_memcpy(vendor + 8, &leaf0.ecx, 4);
    println("cpuid: vendor ", vendor, ", max leaf ", hex(leaf0.eax), ", hypercall ",
            hypercall_instruction() == HypercallInstruction::vmmcall ? "vmmcall" : "vmcall");
    check(leaf0.eax >= 1 && vendor[0] != '\0', "cpuid leaf 0");

    u64 t0 = rdtsc();
    for (u32 i = 0; i < 1000; ++i) pause();
    u64 t1 = rdtsc();
    check(t1 > t0, "rdtsc is monotonic");

    check((read_cr0() >> 31) & 1 && (read_cr4() >> 5) & 1, "paging and PAE are on");
}

void test_boot_info(const BootInfo& boot) {
    println("boot: magic ", hex(boot.magic), " cmdline \"", boot.cmdline, "\"");
    check(boot.valid && boot.magic == 0x2BADB002, "multiboot v1 information");
    bool image_in_usable_memory = false;
    for (u32 i = 0; i < boot.memory_range_count; ++i) {
        const MemoryRange& r = boot.memory_ranges[i];
        println("memory range ", i, ": ", hex(r.base), " + ", hex(r.length), " type ", r.type);
        if (r.usable() && r.base <= kGuestBase && kGuestBase - r.base < r.length) image_in_usable_memory = true;
    }
    println("memory: ", boot.memory_range_count, " ranges, ", boot.usable_bytes() >> 20, " MiB usable");
    check(image_in_usable_memory, "the memory map holds the guest image at 1 MiB");
    for (u32 i = 0; i < boot.module_count; ++i) {
        const Module& m = boot.modules[i];
        println("module ", i, ": [", hex(m.start), ", ", hex(m.end), ") ", m.cmdline);
    }
    check(boot.module_count == 0 || boot.modules[0].end > boot.modules[0].start, "modules are well-formed");
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot* boot) {
    println("sdk selftest: start");
    test_console();
    test_exceptions();
    test_hypercalls();
    test_cpu();
    test_boot_info(*boot);
    if (boot->cmdline_has("crash")) asm volatile("ud2");
    int status = check_summary();
    char buffer[8];
    if (const char* requested = boot->cmdline_value("exit", buffer, sizeof(buffer))) {
        status = 0;
        for (const char* c = requested; *c >= '0' && *c <= '9'; ++c) status = status * 10 + (*c - '0');
    }
    return status;
}
