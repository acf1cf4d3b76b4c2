// The meaning of a manifest text: which keys exist, their types and limits, and the rules that
// span domains. Limits come from nestor/manifest.h, the same numbers the kernel reader enforces,
// so a manifest this accepts is one the kernel accepts.
#include "manifest_text.hpp"

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include "manifest_syntax.hpp"
#include "nestor/manifest.h"

namespace nestor::manifest_text {
namespace {

constexpr std::size_t kMaxNameLength = NESTOR_MANIFEST_NAME_SIZE - 1;
constexpr std::size_t kMaxCmdlineLength = NESTOR_MANIFEST_CMDLINE_SIZE - 1;
constexpr std::size_t kMaxModuleCmdlineLength = NESTOR_MANIFEST_MODULE_CMDLINE_SIZE - 1;

std::string quoted(const std::string& text) { return "\"" + text + "\""; }

// How a value appears in a message: strings quoted, numbers as written.
std::string as_written(const Value& value) {
    return value.kind == Value::Kind::string ? quoted(value.text) : value.text;
}

bool is_name_char(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'; }
bool is_image_char(char c) { return is_name_char(c) || (c >= 'A' && c <= 'Z') || c == '.'; }

struct CpuidPolicyName {
    const char* name;
    std::uint32_t value;
};
constexpr CpuidPolicyName kCpuidPolicies[] = {
    {"default", NESTOR_CPUID_POLICY_DEFAULT},
    {"minimal", NESTOR_CPUID_POLICY_MINIMAL},
    {"host", NESTOR_CPUID_POLICY_HOST},
};

struct FlagName {
    const char* name;
    std::uint32_t bit;
};
constexpr FlagName kFlags[] = {{"nested_virt", NESTOR_DOMAIN_FLAG_NESTED_VIRT}};

// Parses "123", "0x7b"; false if malformed or above limit.
bool parse_number(std::string_view text, std::uint64_t limit, std::uint64_t& out) {
    int base = 10;
    if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
        base = 16;
        text.remove_prefix(2);
    }
    if (text.empty()) return false;
    std::uint64_t value = 0;
    for (char c : text) {
        int digit = -1;
        if (c >= '0' && c <= '9') digit = c - '0';
        if (base == 16 && c >= 'a' && c <= 'f') digit = c - 'a' + 10;
        if (base == 16 && c >= 'A' && c <= 'F') digit = c - 'A' + 10;
        if (digit < 0) return false;
        auto udigit = static_cast<std::uint64_t>(digit), ubase = static_cast<std::uint64_t>(base);
        if (udigit > limit || value > (limit - udigit) / ubase) return false;  // value * base + digit > limit
        value = value * ubase + udigit;
    }
    out = value;
    return true;
}

// Where the parts of one domain were written, for messages raised after the whole table is read.
struct DomainLines {
    int name = 0;
    int nested_virt = 0;            // the "nested_virt" flag item, 0 if not asked
    int console = 0;                // the "console" key, 0 if not given
    std::vector<int> signal_items;  // one per DomainSpec::signals entry
};

class Validator {
public:
    Validator(std::string file, const BuildOptions& options) : file_(std::move(file)), options_(options) {}

    ParseOutcome run(std::string_view text) {
        ParseOutcome outcome;
        try {
            Document doc = parse_document(text);
            top_level(doc.top, outcome.manifest);
            domains(doc.domains, outcome.manifest);
        } catch (const SyntaxError& e) {
            report(e.line, e.what());
        }
        outcome.errors = sorted_by_line(std::move(errors_));
        return outcome;
    }

    // A stable sort by line (std::stable_sort trips a deprecation warning in this libstdc++).
    static std::vector<Diagnostic> sorted_by_line(std::vector<Diagnostic> errors) {
        std::vector<std::size_t> order(errors.size());
        for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
        std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
            return errors[a].line != errors[b].line ? errors[a].line < errors[b].line : a < b;
        });
        std::vector<Diagnostic> sorted;
        sorted.reserve(order.size());
        for (std::size_t i : order) sorted.push_back(std::move(errors[i]));
        return sorted;
    }

private:
    void report(int line, const std::string& message) { errors_.push_back(Diagnostic{file_, line, message}); }

    bool expect_kind(const Entry& entry, Value::Kind kind) {
        if (entry.value.kind == kind) return true;
        report(entry.line,
               quoted(entry.key) + " must be " + kind_phrase(kind) + ", not " + kind_phrase(entry.value.kind));
        return false;
    }

    bool expect_item_kind(const Value& item, Value::Kind kind, const std::string& what) {
        if (item.kind == kind) return true;
        report(item.line, "each " + what + " must be " + kind_phrase(kind) + ", not " + kind_phrase(item.kind));
        return false;
    }

    // --- top level -----------------------------------------------------------------------
    void top_level(const Table& top, ManifestSpec& manifest) {
        bool has_version = false;
        for (const Entry& entry : top.entries) {
            if (entry.key == "components") {
                components(entry, manifest);
                continue;
            }
            if (entry.key != "version") {
                report(entry.line,
                       "unknown key " + quoted(entry.key) + " at the top level (only \"version\" and \"components\")");
                continue;
            }
            has_version = true;
            if (!expect_kind(entry, Value::Kind::integer)) continue;
            if (entry.value.number != NESTOR_MANIFEST_TEXT_VERSION) {
                report(entry.line, "unsupported version " + entry.value.text + " (this tool reads version " +
                                       std::to_string(NESTOR_MANIFEST_TEXT_VERSION) + ")");
                continue;
            }
            manifest.version = static_cast<std::uint32_t>(entry.value.number);
        }
        if (!has_version) {
            report(1, "missing \"version = " + std::to_string(NESTOR_MANIFEST_TEXT_VERSION) +
                          "\" before the first [[domain]]");
        }
    }

    // components = ["nested"]: the loadable components the kernel loads from boot modules.
    void components(const Entry& entry, ManifestSpec& manifest) {
        if (!expect_kind(entry, Value::Kind::array)) return;
        for (const Value& item : entry.value.items) {
            if (!expect_item_kind(item, Value::Kind::string, "component")) continue;
            if (item.text != NESTOR_MANIFEST_COMPONENT_NESTED) {
                report(item.line, "unknown component " + quoted(item.text) +
                                      " (known components: " + NESTOR_MANIFEST_COMPONENT_NESTED + ")");
                continue;
            }
            // The nested component is for a build that can load it (MODULE packs with --nested-virt on).
            if (!options_.nested_virt) {
                report(item.line, "component " + quoted(item.text) +
                                      " needs nested virtualization, but this build has NESTED_VIRT=OFF");
                continue;
            }
            bool repeated = false;
            for (const ComponentSpec& c : manifest.components) repeated = repeated || c.name == item.text;
            if (repeated) {
                report(item.line, "component " + quoted(item.text) + " listed twice");
                continue;
            }
            ComponentSpec spec;
            spec.line = item.line;
            spec.name = item.text;
            manifest.components.push_back(spec);
        }
    }

    // --- domains -------------------------------------------------------------------------
    void domains(const std::vector<Table>& tables, ManifestSpec& manifest) {
        if (tables.empty()) report(1, "no [[domain]] tables: a manifest describes at least one domain");
        std::vector<DomainLines> lines;
        for (std::size_t i = 0; i < tables.size(); ++i) {
            if (i == NESTOR_MANIFEST_MAX_DOMAINS) {
                report(tables[i].line,
                       "too many domains: at most " + std::to_string(NESTOR_MANIFEST_MAX_DOMAINS) + " are allowed");
            }
            manifest.domains.emplace_back();
            lines.emplace_back();
            domain(tables[i], manifest.domains.back(), lines.back());
        }
        check_names_unique(manifest.domains, lines);
        check_signal_targets(manifest.domains, lines);
        check_console_input(manifest.domains, lines);
    }

    void check_console_input(const std::vector<DomainSpec>& specs, const std::vector<DomainLines>& lines) {
        const DomainSpec* taker = nullptr;
        for (std::size_t i = 0; i < specs.size(); ++i) {
            if (specs[i].console != NESTOR_MANIFEST_CONSOLE_INPUT) continue;
            if (specs[i].platform != NESTOR_MANIFEST_PLATFORM_PC)
                report(lines[i].console, "domain " + quoted(specs[i].name) +
                                             " asks for the console's input, which reaches a domain through the "
                                             "serial port of platform \"pc\"");
            if (taker)
                report(lines[i].console, "domain " + quoted(specs[i].name) +
                                             " asks for the console's input, which domain " + quoted(taker->name) +
                                             " already takes: one domain at most");
            else
                taker = &specs[i];
        }
    }

    void domain(const Table& table, DomainSpec& spec, DomainLines& lines) {
        spec.line = table.line;
        bool has_name = false, has_image = false, has_memory = false;
        int initrd_line = 0, modules_line = 0;
        for (const Entry& entry : table.entries) {
            const std::string& key = entry.key;
            if (key == "name") {
                has_name = true;
                lines.name = entry.line;
                name(entry, spec);
            } else if (key == "image") {
                has_image = true;
                image(entry, spec);
            } else if (key == "memory") {
                has_memory = true;
                memory(entry, spec);
            } else if (key == "vcpus") {
                vcpus(entry, spec);
            } else if (key == "flags") {
                flags(entry, spec, lines);
            } else if (key == "cpuid") {
                cpuid(entry, spec);
            } else if (key == "platform") {
                platform(entry, spec);
            } else if (key == "console") {
                lines.console = entry.line;
                console(entry, spec);
            } else if (key == "on_reset") {
                on_reset(entry, spec);
            } else if (key == "cmdline") {
                cmdline(entry, spec);
            } else if (key == "ioports") {
                ioports(entry, spec);
            } else if (key == "signals") {
                signals(entry, spec, lines);
            } else if (key == "modules") {
                modules_line = entry.line;
                modules(entry, spec);
            } else if (key == "initrd") {
                initrd_line = entry.line;
                initrd(entry, spec);
            } else {
                report(entry.line, "unknown key " + quoted(key) + " in [[domain]]");
            }
        }
        std::string who = has_name ? "domain " + quoted(spec.name) : std::string("[[domain]]");
        if (!has_name) report(table.line, who + " has no \"name\"");
        if (!has_image) report(table.line, who + " has no \"image\"");
        if (!has_memory) report(table.line, who + " has no \"memory\"");
        if (initrd_line && modules_line)
            report(std::max(initrd_line, modules_line),
                   who +
                       " has both \"initrd\" and \"modules\": a Linux kernel's initrd is its modules, one after "
                       "another; list them all in \"modules\"");
        check_nested_virt(spec, lines);
    }

    // Refusals the kernel's sanitiser would make at boot, made here instead.
    void check_nested_virt(const DomainSpec& spec, const DomainLines& lines) {
        if ((spec.flags & NESTOR_DOMAIN_FLAG_NESTED_VIRT) == 0) return;
        if (!options_.nested_virt) {
            report(lines.nested_virt,
                   "domain " + quoted(spec.name) + " asks for nested_virt, but this build has NESTED_VIRT=OFF");
        }
        if (spec.cpuid_policy == NESTOR_CPUID_POLICY_MINIMAL) {
            report(lines.nested_virt,
                   "domain " + quoted(spec.name) + " asks for nested_virt, which the \"minimal\" CPUID policy hides");
        }
    }

    // A name of 1..31 characters from the charset; what names it goes in the message.
    bool check_identifier(int line, const std::string& what, const std::string& text, bool image_charset) {
        if (text.empty()) {
            report(line, what + " is empty");
            return false;
        }
        if (text.size() > kMaxNameLength) {
            report(line,
                   what + " " + quoted(text) + " is longer than " + std::to_string(kMaxNameLength) + " characters");
            return false;
        }
        auto allowed = image_charset ? is_image_char : is_name_char;
        if (!std::all_of(text.begin(), text.end(), allowed)) {
            const char* charset = image_charset ? "A-Z, a-z, 0-9, '.', '_' and '-'" : "a-z, 0-9, '_' and '-'";
            report(line, what + " " + quoted(text) + " may only use " + charset);
            return false;
        }
        return true;
    }

    bool check_length(int line, const std::string& what, const std::string& text, std::size_t limit) {
        if (text.size() <= limit) return true;
        report(line, what + " is longer than " + std::to_string(limit) + " characters");
        return false;
    }

    void name(const Entry& entry, DomainSpec& spec) {
        if (!expect_kind(entry, Value::Kind::string)) return;
        spec.name = entry.value.text;
        check_identifier(entry.line, "domain name", spec.name, false);
    }

    void image(const Entry& entry, DomainSpec& spec) {
        if (!expect_kind(entry, Value::Kind::string)) return;
        spec.image = entry.value.text;
        check_identifier(entry.line, "image name", spec.image, true);
    }

    void memory(const Entry& entry, DomainSpec& spec) {
        const Value& value = entry.value;
        std::uint64_t bytes = 0;
        if (value.kind == Value::Kind::integer) {
            bytes = value.number;
        } else if (value.kind == Value::Kind::string) {
            if (!parse_size(value.text, bytes)) {
                report(entry.line, "memory " + quoted(value.text) +
                                       " is not a size: write a number of bytes, or a number with a K, M or G suffix");
                return;
            }
        } else {
            report(entry.line, "\"memory\" must be a string such as \"16M\" or a number, not " +
                                   std::string(kind_phrase(value.kind)));
            return;
        }
        std::string shown = "memory " + as_written(value);
        if (bytes % NESTOR_MANIFEST_MEMORY_ALIGN != 0) {
            report(entry.line, shown + " is not a multiple of 4K");
        } else if (bytes < NESTOR_MANIFEST_MIN_MEMORY) {
            report(entry.line, shown + " is less than the minimum " + format_size(NESTOR_MANIFEST_MIN_MEMORY));
        } else if (bytes > NESTOR_MANIFEST_MAX_MEMORY) {
            report(entry.line, shown + " is more than the maximum " + format_size(NESTOR_MANIFEST_MAX_MEMORY));
        }
        spec.memory_bytes = bytes;
    }

    // "16M", "1536K", "1G" or "65536". A size too big for 64 bits is well-formed, just too
    // large: it saturates so the maximum check reports it.
    static bool parse_size(const std::string& text, std::uint64_t& bytes) {
        std::string digits = text;
        std::uint64_t scale = 1;
        if (!digits.empty()) {
            switch (digits.back()) {
            case 'K':
            case 'k': scale = std::uint64_t{1} << 10; break;
            case 'M':
            case 'm': scale = std::uint64_t{1} << 20; break;
            case 'G':
            case 'g': scale = std::uint64_t{1} << 30; break;
            default: break;
            }
            if (scale != 1) digits.pop_back();
        }
        if (digits.empty() || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
            return false;
        }
        constexpr std::uint64_t kSaturated = ~std::uint64_t{0};
        std::uint64_t value = 0;
        if (!parse_number(digits, kSaturated / scale, value)) {
            bytes = kSaturated - (kSaturated % NESTOR_MANIFEST_MEMORY_ALIGN);  // aligned, above any maximum
            return true;
        }
        bytes = value * scale;
        return true;
    }

    void vcpus(const Entry& entry, DomainSpec& spec) {
        if (!expect_kind(entry, Value::Kind::integer)) return;
        if (entry.value.number == 0 || entry.value.number > NESTOR_MANIFEST_MAX_VCPUS) {
            report(entry.line, "vcpus must be between 1 and " + std::to_string(NESTOR_MANIFEST_MAX_VCPUS) + ", not " +
                                   entry.value.text);
            return;
        }
        spec.vcpus = static_cast<std::uint32_t>(entry.value.number);
    }

    void flags(const Entry& entry, DomainSpec& spec, DomainLines& lines) {
        if (!expect_kind(entry, Value::Kind::array)) return;
        for (const Value& item : entry.value.items) {
            if (!expect_item_kind(item, Value::Kind::string, "flag")) continue;
            const FlagName* flag = std::find_if(std::begin(kFlags), std::end(kFlags),
                                                [&](const FlagName& f) { return item.text == f.name; });
            if (flag == std::end(kFlags)) {
                report(item.line, "unknown flag " + quoted(item.text) + " (known flags: nested_virt)");
                continue;
            }
            if ((spec.flags & flag->bit) != 0) {
                report(item.line, "flag " + quoted(item.text) + " is listed twice");
                continue;
            }
            spec.flags |= flag->bit;
            if (flag->bit == NESTOR_DOMAIN_FLAG_NESTED_VIRT) lines.nested_virt = item.line;
        }
    }

    void cpuid(const Entry& entry, DomainSpec& spec) {
        if (!expect_kind(entry, Value::Kind::string)) return;
        for (const CpuidPolicyName& policy : kCpuidPolicies) {
            if (entry.value.text == policy.name) {
                spec.cpuid_policy = policy.value;
                return;
            }
        }
        report(entry.line, "unknown CPUID policy " + quoted(entry.value.text) + " (known: default, minimal, host)");
    }

    void platform(const Entry& entry, DomainSpec& spec) {
        if (!expect_kind(entry, Value::Kind::string)) return;
        if (entry.value.text == "bare") {
            spec.platform = NESTOR_MANIFEST_PLATFORM_BARE;
        } else if (entry.value.text == "pc") {
            spec.platform = NESTOR_MANIFEST_PLATFORM_PC;
        } else {
            report(entry.line, "unknown platform " + quoted(entry.value.text) + " (known: bare, pc)");
        }
    }

    void console(const Entry& entry, DomainSpec& spec) {
        if (!expect_kind(entry, Value::Kind::string)) return;
        if (entry.value.text == "output") {
            spec.console = NESTOR_MANIFEST_CONSOLE_OUTPUT;
        } else if (entry.value.text == "input") {
            spec.console = NESTOR_MANIFEST_CONSOLE_INPUT;
        } else {
            report(entry.line, "unknown console " + quoted(entry.value.text) + " (known: output, input)");
        }
    }

    void on_reset(const Entry& entry, DomainSpec& spec) {
        if (!expect_kind(entry, Value::Kind::string)) return;
        if (entry.value.text == "stop") {
            spec.on_reset = NESTOR_MANIFEST_ON_RESET_STOP;
        } else if (entry.value.text == "restart") {
            spec.on_reset = NESTOR_MANIFEST_ON_RESET_RESTART;
        } else {
            report(entry.line, "unknown on_reset " + quoted(entry.value.text) + " (known: stop, restart)");
        }
    }

    void cmdline(const Entry& entry, DomainSpec& spec) {
        if (!expect_kind(entry, Value::Kind::string)) return;
        if (check_length(entry.line, "cmdline", entry.value.text, kMaxCmdlineLength)) spec.cmdline = entry.value.text;
    }

    void ioports(const Entry& entry, DomainSpec& spec) {
        if (!expect_kind(entry, Value::Kind::array)) return;
        std::vector<std::string> written;
        for (const Value& item : entry.value.items) {
            if (spec.ioports.size() == NESTOR_MANIFEST_MAX_IOPORT_RANGES) {
                report(item.line,
                       "more than " + std::to_string(NESTOR_MANIFEST_MAX_IOPORT_RANGES) + " I/O port ranges");
                return;
            }
            IoPortSpec range;
            if (!ioport_range(item, range) || overlaps_earlier(item, range, spec.ioports, written)) continue;
            spec.ioports.push_back(range);
            written.push_back(as_written(item));
        }
    }

    bool overlaps_earlier(const Value& item, const IoPortSpec& range, const std::vector<IoPortSpec>& earlier,
                          const std::vector<std::string>& written) {
        for (std::size_t i = 0; i < earlier.size(); ++i) {
            if (range.first <= earlier[i].last && earlier[i].first <= range.last) {
                report(item.line, "I/O port range " + as_written(item) + " overlaps " + written[i]);
                return true;
            }
        }
        return false;
    }

    bool ioport_range(const Value& item, IoPortSpec& range) {
        constexpr std::uint64_t kMaxPort = 0xffff;
        std::uint64_t first = 0, last = 0;
        if (item.kind == Value::Kind::integer) {
            if (item.number > kMaxPort) {
                report(item.line, "I/O port " + item.text + " is above 0xffff");
                return false;
            }
            first = last = item.number;
        } else if (!expect_item_kind(item, Value::Kind::string, "I/O port range")) {
            return false;
        } else {
            std::string_view text = item.text;
            std::size_t dash = text.find('-');
            std::string_view first_text = text.substr(0, dash);
            std::string_view last_text = dash == std::string_view::npos ? first_text : text.substr(dash + 1);
            constexpr std::uint64_t kAnyNumber = ~std::uint64_t{0};
            if (!parse_number(first_text, kAnyNumber, first) || !parse_number(last_text, kAnyNumber, last)) {
                report(item.line, "I/O port range " + quoted(item.text) +
                                      " is malformed: write \"FIRST-LAST\" or \"PORT\", e.g. \"0x3f8-0x3ff\"");
                return false;
            }
            if (first > kMaxPort || last > kMaxPort) {
                report(item.line, "I/O port range " + quoted(item.text) + " goes above 0xffff");
                return false;
            }
            if (first > last) {
                report(item.line, "I/O port range " + quoted(item.text) + " has its first port above its last");
                return false;
            }
        }
        if (nestor_manifest_ports_are_kernel_owned(static_cast<std::uint32_t>(first),
                                                   static_cast<std::uint32_t>(last))) {
            report(item.line, "I/O port range " + as_written(item) +
                                  " includes ports the kernel drives (the PIC 0x20-0x21 and 0xa0-0xa1, the exit "
                                  "ports 0xf4-0xf7 and 0x8900)");
            return false;
        }
        range.first = static_cast<std::uint16_t>(first);
        range.last = static_cast<std::uint16_t>(last);
        return true;
    }

    void signals(const Entry& entry, DomainSpec& spec, DomainLines& lines) {
        if (!expect_kind(entry, Value::Kind::array)) return;
        for (const Value& item : entry.value.items) {
            if (!expect_item_kind(item, Value::Kind::string, "signal target")) continue;
            if (spec.signals.size() == NESTOR_MANIFEST_MAX_SIGNALS) {
                report(item.line, "more than " + std::to_string(NESTOR_MANIFEST_MAX_SIGNALS) + " signal targets");
                return;
            }
            if (std::find(spec.signals.begin(), spec.signals.end(), item.text) != spec.signals.end()) {
                report(item.line, "signal target " + quoted(item.text) + " is listed twice");
                continue;
            }
            spec.signals.push_back(item.text);
            lines.signal_items.push_back(item.line);
        }
    }

    void modules(const Entry& entry, DomainSpec& spec) {
        if (!expect_kind(entry, Value::Kind::array)) return;
        for (const Value& item : entry.value.items) {
            if (spec.modules.size() == NESTOR_MANIFEST_MAX_MODULES) {
                report(item.line, "more than " + std::to_string(NESTOR_MANIFEST_MAX_MODULES) + " modules");
                return;
            }
            if (!expect_item_kind(item, Value::Kind::table, "module")) continue;
            ModuleSpec module_spec;
            if (module(item, module_spec)) spec.modules.push_back(std::move(module_spec));
        }
    }

    // initrd = "NAME": a Linux kernel's initrd, packed as its one module (the kernel hands a
    // bzImage its modules as the initrd).
    void initrd(const Entry& entry, DomainSpec& spec) {
        if (!expect_kind(entry, Value::Kind::string)) return;
        if (check_identifier(entry.line, "initrd image name", entry.value.text, true))
            spec.modules.push_back(ModuleSpec{entry.value.text, ""});
    }

    bool module(const Value& table, ModuleSpec& spec) {
        bool has_image = false, ok = true;
        for (const Entry& entry : table.entries) {
            if (entry.key == "image") {
                has_image = true;
                ok = expect_kind(entry, Value::Kind::string) &&
                     check_identifier(entry.line, "module image name", entry.value.text, true) && ok;
                spec.image = entry.value.text;
            } else if (entry.key == "cmdline") {
                ok = expect_kind(entry, Value::Kind::string) &&
                     check_length(entry.line, "module cmdline", entry.value.text, kMaxModuleCmdlineLength) && ok;
                spec.cmdline = entry.value.text;
            } else {
                report(entry.line,
                       "unknown key " + quoted(entry.key) + " in a module (only \"image\" and \"cmdline\")");
                ok = false;
            }
        }
        if (!has_image) report(table.line, "module has no \"image\"");
        return ok && has_image;
    }

    // --- rules across domains ------------------------------------------------------------
    void check_names_unique(const std::vector<DomainSpec>& specs, const std::vector<DomainLines>& lines) {
        std::map<std::string, int> first_line;
        for (std::size_t i = 0; i < specs.size(); ++i) {
            if (lines[i].name == 0) continue;  // no name: already reported
            auto [at, inserted] = first_line.emplace(specs[i].name, lines[i].name);
            if (!inserted) {
                report(lines[i].name, "duplicate domain name " + quoted(specs[i].name) + " (first used on line " +
                                          std::to_string(at->second) + ")");
            }
        }
    }

    void check_signal_targets(const std::vector<DomainSpec>& specs, const std::vector<DomainLines>& lines) {
        for (std::size_t i = 0; i < specs.size(); ++i) {
            for (std::size_t s = 0; s < specs[i].signals.size(); ++s) {
                const std::string& target = specs[i].signals[s];
                int line = lines[i].signal_items[s];
                if (target == specs[i].name) {
                    report(line, "domain " + quoted(specs[i].name) + " signals itself");
                } else if (std::none_of(specs.begin(), specs.end(),
                                        [&](const DomainSpec& d) { return d.name == target; })) {
                    report(line, "domain " + quoted(specs[i].name) + " signals unknown domain " + quoted(target));
                }
            }
        }
    }

    std::string file_;
    BuildOptions options_;
    std::vector<Diagnostic> errors_;
};

}  // namespace

ParseOutcome parse_manifest(std::string_view text, const std::string& file, const BuildOptions& options) {
    return Validator(file, options).run(text);
}

ParseOutcome parse_manifest_file(const std::string& path, const BuildOptions& options) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        ParseOutcome outcome;
        outcome.errors.push_back(Diagnostic{path, 0, "cannot read the file"});
        return outcome;
    }
    std::ostringstream text;
    text << in.rdbuf();
    return parse_manifest(text.str(), path, options);
}

std::string format_size(std::uint64_t bytes) {
    constexpr struct {
        std::uint64_t scale;
        char suffix;
    } kUnits[] = {{std::uint64_t{1} << 30, 'G'}, {std::uint64_t{1} << 20, 'M'}, {std::uint64_t{1} << 10, 'K'}};
    for (const auto& unit : kUnits) {
        if (bytes != 0 && bytes % unit.scale == 0) return std::to_string(bytes / unit.scale) + unit.suffix;
    }
    return std::to_string(bytes);
}

}  // namespace nestor::manifest_text
