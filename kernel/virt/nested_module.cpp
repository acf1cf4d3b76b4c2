// NESTED_VIRT=MODULE: the nested component from a boot module. In order: the manifest must name
// it (components = ["nested"]), a boot module "nested" must exist with the size and SHA-256 the
// manifest records, its ELF must pass the loader (nestor/module/module_image.hpp) with every
// undefined symbol in the kernel's export list, and its descriptor must carry this kernel's
// magic, interface version and layout fingerprint, its table lying in its own image and every
// hook in its text. Only then is it mapped (text read-execute, read-only data read-only, data
// read-write, no alias left in the direct map) and its table installed. Any refusal leaves the
// null stub in place, and the predicate's reason says why.
#include "nestor/lib/sha256.hpp"
#include "nestor/log.hpp"
#include "nestor/manifest_reader.hpp"
#include "nestor/module/module_image.hpp"
#include "nestor/nested/nested_module.hpp"
#include "nestor/virt/boot_modules.hpp"
#include "nestor/virt/platform_caps.hpp"

namespace nestor::virt {

// Generated from nested_module_exports.list (the only kernel symbols a module may use).
extern const module::ExportTable kNestedModuleExports;

namespace {

// Static: it outlives the boot as the predicate's reason for every refused nested domain.
char refusal[160];

void refuse(const char* why, const char* detail = "") {
    format_into(refusal, sizeof(refusal), "nested module not loaded: {}{}", why, detail);
    set_nested_module_not_loaded(refusal);
    log::info("nested: module not loaded ({}{})", why, detail);
}

bool inside_region(const module::ModulePlan& plan, u64 offset, u64 bytes, bool executable) {
    for (u32 i = 0; i < plan.region_count; ++i) {
        const module::ImageRegion& r = plan.regions[i];
        bool is_text = r.access == module::PageAccess::read_execute;
        if (is_text == executable && offset >= r.offset && bytes <= r.bytes && offset - r.offset <= r.bytes - bytes)
            return true;
    }
    return false;
}

// The descriptor and the table it points to, read from the relocated image at `image` (which
// runs at `base`). Returns the table's run-time address, or 0 with the log's reason.
u64 check_descriptor(const module::ModulePlan& plan, const u8* image, u64 base, u64 entry) {
    u64 offset = entry - base;
    if (!inside_region(plan, offset, sizeof(nested::ModuleDescriptor), false)) {
        refuse("corrupt image (the descriptor is not in its data)");
        return 0;
    }
    nested::ModuleDescriptor d;
    copy_bytes(&d, image + offset, sizeof(d));
    if (d.magic != nested::kModuleMagic) {
        refuse("corrupt image (no descriptor magic)");
        return 0;
    }
    constexpr u32 kVersion = nested::kModuleInterfaceVersion;
    constexpr u64 kFingerprint = nested::module_layout_fingerprint();
    if (d.interface_version != kVersion) {
        static char detail[48];
        format_into(detail, sizeof(detail), " {}, the kernel's is {}", d.interface_version, kVersion);
        refuse("wrong interface version", detail);
        return 0;
    }
    if (d.layout_fingerprint != kFingerprint) {
        refuse("wrong layout fingerprint (built against other kernel structures)");
        return 0;
    }
    u64 ops = reinterpret_cast<u64>(d.ops);
    if (ops < base || !inside_region(plan, ops - base, sizeof(nested::NestedOps), false)) {
        refuse("corrupt image (its table is outside its data)");
        return 0;
    }
    u64 hooks[sizeof(nested::NestedOps) / sizeof(u64)];
    copy_bytes(hooks, image + (ops - base), sizeof(hooks));
    // The first word is the name (data); every other one a hook, which must be in the text.
    for (usize i = 1; i < array_size(hooks); ++i) {
        if (hooks[i] < base || !inside_region(plan, hooks[i] - base, 1, true)) {
            refuse("corrupt image (a hook points outside its text)");
            return 0;
        }
    }
    if (hooks[0] < base || !inside_region(plan, hooks[0] - base, 1, false)) {
        refuse("corrupt image (its name is outside its data)");
        return 0;
    }
    return ops;
}

}  // namespace

void load_nested_module(const BootInfo& boot) {
    const BootModule* manifest_module = find_module(boot, "manifest");
    if (!manifest_module) return refuse("no manifest");
    auto manifest = manifest::read_manifest(module_bytes(*manifest_module), module_size(*manifest_module));
    if (!manifest) return refuse("the manifest is refused");
    manifest::ManifestComponent wanted{};
    if (!manifest->find_component(NESTOR_MANIFEST_COMPONENT_NESTED, wanted))
        return refuse("the manifest names no nested component");
    const BootModule* found = find_module(boot, NESTOR_MANIFEST_COMPONENT_NESTED);
    if (!found) return refuse("no boot module \"nested\"");
    const u8* file = module_bytes(*found);
    const usize size = module_size(*found);
    Sha256Digest expected;
    copy_bytes(expected.bytes, wanted.sha256, sizeof(expected.bytes));
    if (size != wanted.size || !(sha256(file, size) == expected))
        return refuse("hash mismatch (not the module the manifest was packed with)");

    auto plan = module::plan_module(file, size);
    if (!plan) return refuse("corrupt image: ", module::module_error_name(plan.error().error));
    paddr physical = 0;
    void* writable = nullptr;
    if (plan->image_bytes > platform::kModuleMemoryBytes ||
        !platform::reserve_module_memory(plan->image_bytes, physical, writable))
        return refuse("no memory for it");
    u8* image = static_cast<u8*>(writable);
    const u64 base = platform::module_area();
    auto entry = module::load_module(file, size, *plan, image, base, kNestedModuleExports, nested::kModuleEntrySymbol);
    if (!entry) {
        // The reservation stays: it was taken whole, and these boots are rare.
        if (entry.error().error == module::ModuleError::unresolved_symbol) {
            static char symbol[module::kSymbolNameBytes];
            copy_bytes(symbol, entry.error().symbol, sizeof(symbol));
            return refuse("unresolved symbol ", symbol);
        }
        return refuse("corrupt image: ", module::module_error_name(entry.error().error));
    }
    u64 ops = check_descriptor(*plan, image, base, *entry);
    if (ops == 0) return;
    for (u32 i = 0; i < plan->region_count; ++i) {
        const module::ImageRegion& r = plan->regions[i];
        if (!platform::map_module_region(physical, r.offset, r.bytes, r.access == module::PageAccess::read_write,
                                         r.access == module::PageAccess::read_execute))
            return refuse("its pages could not be mapped");
    }
    if (!platform::seal_module_memory(physical)) return refuse("its pages could not be sealed");
    install_nested_ops(*reinterpret_cast<const nested::NestedOps*>(ops));
    log::info("nested: module loaded ({} bytes)", size);
}

}  // namespace nestor::virt
