#include "nestor/kernel.hpp"
#include "nestor/lib/cmdline.hpp"
#include "nestor/log.hpp"
#include "nestor/platform.hpp"
#include "nestor/virt/appliance.hpp"
#include "nestor/virt/builtin_guest.hpp"
#include "nestor/virt/platform_caps.hpp"

namespace nestor {
namespace {

#if defined(NESTOR_DEBUG)
constexpr const char* kBuildType = "debug";
#else
constexpr const char* kBuildType = "release";
#endif

const char* on_off(int value) { return value ? "ON" : "OFF"; }
const char* yes_no(bool value) { return value ? "yes" : "no"; }
// NESTED_VIRT: 0 OFF, 1 ON, 2 MODULE (cmake/NestorOptions.cmake).
const char* nested_option(int value) { return value == 2 ? "MODULE" : on_off(value); }

const char* vendor_name(CpuVendor vendor) {
    switch (vendor) {
    case CpuVendor::amd: return "AMD";
    case CpuVendor::intel: return "Intel";
    case CpuVendor::unknown: break;
    }
    return "unknown";
}

// The nested-virtualization predicate for this build on this CPU, with its reason when it says no.
void print_nested_availability() {
    nested::Availability nested = virt::nested_virt_availability();
    if (nested.available)
        log::info("nested: available");
    else
        log::info("nested: unavailable ({})", nested.reason);
}

void print_banner(const BootInfo& boot) {
    log::info("Nestor {} ({}) - modular x86-64 microhypervisor", NESTOR_VERSION_STRING, kBuildType);
    log::info("build: NESTED_VIRT={} AMD_SVM={} INTEL_VMX={}", nested_option(NESTOR_OPT_NESTED_VIRT),
              on_off(NESTOR_OPT_AMD_SVM), on_off(NESTOR_OPT_INTEL_VMX));
    const CpuFeatures& cpu = platform::cpu_features();
    log::info("cpu: {} ({}) \"{}\"", vendor_name(cpu.vendor), cpu.vendor_string, cpu.brand);
    if (cpu.vendor == CpuVendor::intel || cpu.vmx)
        log::info("virt: VMX={} EPT={} VPID={} unrestricted-guest={}", yes_no(cpu.vmx), yes_no(cpu.ept),
                  yes_no(cpu.vpid), yes_no(cpu.unrestricted_guest));
    else
        log::info("virt: SVM={} NPT={} NRIPS={} ASIDs={}", yes_no(cpu.svm), yes_no(cpu.npt), yes_no(cpu.nrips),
                  cpu.svm_asids);
    virt::load_nested_module(boot);  // NESTED_VIRT=MODULE only: the other builds link a no-op
    print_nested_availability();
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

// A hypervisor without a backend for its CPU can do nothing: say exactly why and stop.
void require_backend() {
    if (virt::select_virt_ops()) return;
    const CpuFeatures& cpu = platform::cpu_features();
    if (cpu.vendor == CpuVendor::amd && !NESTOR_OPT_AMD_SVM)
        log::error(
            "this image was built without the AMD SVM backend (AMD_SVM=OFF): it cannot run guests on this "
            "AMD CPU");
    else if (cpu.vendor == CpuVendor::intel && !NESTOR_OPT_INTEL_VMX)
        log::error(
            "this image was built without the Intel VMX backend (INTEL_VMX=OFF): it cannot run guests on "
            "this Intel CPU");
    else
        log::error(
            "this CPU offers no usable virtualization: Nestor needs SVM with nested paging (AMD) or VMX "
            "with EPT and unrestricted guest (Intel)");
    platform::shutdown(ExitStatus::failure);
}

// A number option from the command line, or `fallback` when absent or malformed (reported).
u64 number_option(const char* cmdline, const char* key, u64 fallback) {
    char text[24];
    if (!cmdline_option(cmdline, key, text, sizeof(text))) return fallback;
    u64 value = 0;
    for (const char* p = text; *p; ++p) {
        if (*p < '0' || *p > '9' || value > 1'000'000'000'000) {
            log::warn("boot: {}={} is not a number; using {}", key, text, fallback);
            return fallback;
        }
        value = value * 10 + static_cast<u64>(*p - '0');
    }
    return value;
}

// nestor.time-slice=TICKS: how long a guest runs before the kernel takes the CPU back.
u64 time_slice(const char* cmdline) { return number_option(cmdline, "nestor.time-slice", virt::kDefaultTimeSlice); }

}  // namespace

[[noreturn]] void kernel_main(const BootInfo& boot, const MemorySummary& memory) {
    print_banner(boot);
    print_memory(boot, memory);
    require_backend();
    char guest[32];
    if (cmdline_option(boot.cmdline, "nestor.builtin-guest", guest, sizeof(guest))) {
        u32 status = virt::run_builtin_guest(guest, time_slice(boot.cmdline));
        platform::shutdown(status == 0 ? ExitStatus::success : ExitStatus::failure);
    }
    if (virt::has_appliance(boot)) {
        virt::ApplianceOptions options{time_slice(boot.cmdline),
                                       number_option(boot.cmdline, "nestor.watchdog", virt::kMaxPreemptions)};
        u32 status = virt::run_appliance(boot, options);
        platform::shutdown(status == 0 ? ExitStatus::success : ExitStatus::failure);
    }
    log::info("nothing to run: no manifest module and no built-in guest asked for; shutting down");
    platform::shutdown(ExitStatus::success);
}

}  // namespace nestor
