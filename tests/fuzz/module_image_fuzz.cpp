// libFuzzer target: arbitrary bytes as a loadable component's boot module. plan_module() and
// load_module() must refuse or accept without reading outside the file or writing outside the
// image (ASan, with the image allocated to exactly plan.image_bytes) nor undefined behaviour
// (UBSan); what they accept must keep the plan's promises: regions page-aligned, in order, inside
// the image, never writable and executable, and an entry inside the image.
#include <cstdlib>
#include <cstring>
#include <vector>

#include "module_image_fuzz_exports.hpp"
#include "nestor/module/module_image.hpp"

using namespace nestor;
using namespace nestor::module;

namespace {

constexpr u64 kBase = 0xFFFFFE0000000000ull;  // where a module would run
constexpr u64 kPage = 4096;

void check_plan(const ModulePlan& plan) {
    if (plan.image_bytes == 0 || plan.image_bytes % kPage != 0 || plan.image_bytes > kMaxImageBytes) std::abort();
    if (plan.region_count == 0 || plan.region_count > kMaxRegions) std::abort();
    u64 end = 0;
    for (u32 i = 0; i < plan.region_count; ++i) {
        const ImageRegion& r = plan.regions[i];
        if (r.offset % kPage != 0 || r.bytes == 0 || r.bytes % kPage != 0) std::abort();
        if (r.offset < end || r.offset + r.bytes > plan.image_bytes) std::abort();
        end = r.offset + r.bytes;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const u8* data, usize size) {
    auto plan = plan_module(data, size);
    if (!plan.ok()) return 0;
    check_plan(plan.value());
    std::vector<u8> image(plan.value().image_bytes, 0);
    auto entry = load_module(data, size, plan.value(), image.data(), kBase, kFuzzExports, "nestor_nested_module");
    if (entry.ok() && (entry.value() < kBase || entry.value() - kBase >= plan.value().image_bytes)) std::abort();
    if (!entry.ok() && entry.error().error == ModuleError::unresolved_symbol) {
        // The name kept for the log: terminated and printable.
        const ModuleFault fault = entry.error();
        const char* symbol = fault.symbol;
        usize length = strnlen(symbol, kSymbolNameBytes);
        if (length == kSymbolNameBytes) std::abort();
        for (usize i = 0; i < length; ++i)
            if (symbol[i] < 0x20 || symbol[i] > 0x7e) std::abort();
    }
    return 0;
}
