#include "nestor/kernel.hpp"
#include "nestor/lib/cmdline.hpp"
#include "nestor/log.hpp"
#include "nestor/platform.hpp"
#include "nestor/virt/builtin_guest.hpp"

namespace nestor {
namespace {

#if defined(NESTOR_DEBUG)
constexpr const char* kBuildType = "debug";
#else
constexpr const char* kBuildType = "release";
#endif

const char* on_off(int value) { return value ? "ON" : "OFF"; }
const char* yes_no(bool value) { return value ? "yes" : "no"; }

const char* vendor_name(CpuVendor vendor) {
    switch (vendor) {
    case CpuVendor::amd: return "AMD";
    case CpuVendor::intel: return "Intel";
    case CpuVendor::unknown: break;
    }
    return "unknown";
}

void print_banner() {
    log::info("Nestor {} ({}) - modular x86-64 microhypervisor", NESTOR_VERSION_STRING, kBuildType);
    log::info("build: NESTED_VIRT={} AMD_SVM={} INTEL_VMX={}", on_off(NESTOR_OPT_NESTED_VIRT),
              on_off(NESTOR_OPT_AMD_SVM), on_off(NESTOR_OPT_INTEL_VMX));
    const CpuFeatures& cpu = platform::cpu_features();
    log::info("cpu: {} ({}) \"{}\"", vendor_name(cpu.vendor), cpu.vendor_string, cpu.brand);
    if (cpu.vendor == CpuVendor::intel || cpu.vmx)
        log::info("virt: VMX={} EPT={} VPID={} unrestricted-guest={}", yes_no(cpu.vmx), yes_no(cpu.ept),
                  yes_no(cpu.vpid), yes_no(cpu.unrestricted_guest));
    else
        log::info("virt: SVM={} NPT={} NRIPS={} ASIDs={}", yes_no(cpu.svm), yes_no(cpu.npt), yes_no(cpu.nrips),
                  cpu.svm_asids);
    log::info("boot: banner at tsc {}", platform::timestamp());
}

void print_memory(const BootInfo& boot, const MemorySummary& memory) {
    log::info("memory: {} MiB usable in {} ranges, {} KiB reserved, {} frames free, {} page-table frames",
              memory.usable_bytes >> 20, boot.memory_count, memory.reserved_bytes >> 10, memory.free_frames,
              memory.page_table_frames);
    for (usize i = 0; i < boot.module_count; ++i)
        log::info("module {}: [{:#x}, {:#x}) \"{}\"", i, boot.modules[i].start, boot.modules[i].end,
                  boot.modules[i].cmdline);
    log::info("cmdline: \"{}\"", boot.cmdline);
}

// nestor.time-slice=TICKS: how long a guest runs before the kernel takes the CPU back.
u64 time_slice(const char* cmdline) {
    char text[24];
    if (!cmdline_option(cmdline, "nestor.time-slice", text, sizeof(text))) return virt::kDefaultTimeSlice;
    u64 value = 0;
    for (const char* p = text; *p; ++p) {
        if (*p < '0' || *p > '9' || value > 1'000'000'000'000) {
            log::warn("boot: nestor.time-slice={} is not a number of ticks; using {}", text, virt::kDefaultTimeSlice);
            return virt::kDefaultTimeSlice;
        }
        value = value * 10 + static_cast<u64>(*p - '0');
    }
    return value;
}

}  // namespace

[[noreturn]] void kernel_main(const BootInfo& boot, const MemorySummary& memory) {
    print_banner();
    print_memory(boot, memory);
    char guest[32];
    if (cmdline_option(boot.cmdline, "nestor.builtin-guest", guest, sizeof(guest))) {
        u32 status = virt::run_builtin_guest(guest, time_slice(boot.cmdline));
        platform::shutdown(status == 0 ? ExitStatus::success : ExitStatus::failure);
    }
    log::info("nothing to run yet: shutting down");
    platform::shutdown(ExitStatus::success);
}

}  // namespace nestor
