// nestor-manifest: checks a manifest text, packs it into the binary boot module, and dumps a
// binary module the way the kernel reads it. Usage in docs/manifest.md.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "manifest_text.hpp"

namespace {

using namespace nestor::manifest_text;

constexpr int kExitOk = 0;
constexpr int kExitRefused = 1;  // the manifest or module is wrong
constexpr int kExitUsage = 2;    // the command line is wrong, or a file cannot be written

const char* const kUsage =
    "usage: nestor-manifest check FILE [--nested-virt on|off]\n"
    "       nestor-manifest pack FILE -o OUT.bin [--nested-virt on|off] [--component NAME=MODULE]...\n"
    "       nestor-manifest dump OUT.bin\n"
    "--nested-virt tells the build's NESTED_VIRT option (default off; MODULE builds say on).\n"
    "--component gives the module file of each component the manifest lists (components = [...]):\n"
    "its size and SHA-256 go into the packed manifest, and the kernel loads nothing else.\n";

int usage(const std::string& problem) {
    std::cerr << "nestor-manifest: " << problem << "\n" << kUsage;
    return kExitUsage;
}

struct Arguments {
    std::string command;
    std::string input;
    std::string output;
    BuildOptions options;
    std::vector<std::pair<std::string, std::string>> components;  // NAME, module file
};

// Returns an empty string on success, else what is wrong with the command line.
std::string parse_arguments(int argc, char** argv, Arguments& args) {
    std::vector<std::string> words(argv + 1, argv + argc);
    if (words.empty()) return "no command";
    args.command = words[0];
    for (std::size_t i = 1; i < words.size(); ++i) {
        const std::string& word = words[i];
        bool has_next = i + 1 < words.size();
        if (word == "--nested-virt" && has_next) {
            const std::string& value = words[++i];
            if (value != "on" && value != "off") return "--nested-virt takes on or off, not \"" + value + "\"";
            args.options.nested_virt = value == "on";
        } else if (word == "--component" && has_next) {
            const std::string& value = words[++i];
            std::size_t equals = value.find('=');
            if (equals == std::string::npos || equals == 0 || equals + 1 == value.size())
                return "--component takes NAME=MODULE, not \"" + value + "\"";
            args.components.emplace_back(value.substr(0, equals), value.substr(equals + 1));
        } else if (word == "-o" && has_next) {
            args.output = words[++i];
        } else if (!word.empty() && word[0] == '-') {
            return "unknown or incomplete option \"" + word + "\"";
        } else if (args.input.empty()) {
            args.input = word;
        } else {
            return "unexpected argument \"" + word + "\"";
        }
    }
    if (args.input.empty()) return "no input file";
    if (args.command == "pack" && args.output.empty()) return "pack needs -o OUT.bin";
    if (args.command != "pack" && !args.output.empty()) return "-o is only for pack";
    if (args.command != "pack" && !args.components.empty()) return "--component is only for pack";
    if (args.command == "dump" && args.options.nested_virt) return "--nested-virt is not for dump";
    return {};
}

// Prints every diagnostic; true if there were none.
bool checked(const ParseOutcome& outcome) {
    for (const Diagnostic& d : outcome.errors) std::cerr << d.str() << "\n";
    return outcome.ok();
}

int check(const Arguments& args) {
    ParseOutcome outcome = parse_manifest_file(args.input, args.options);
    if (!checked(outcome)) return kExitRefused;
    std::size_t count = outcome.manifest.domains.size();
    std::cout << args.input << ": ok, " << count << (count == 1 ? " domain\n" : " domains\n");
    return kExitOk;
}

int pack(const Arguments& args) {
    ParseOutcome outcome = parse_manifest_file(args.input, args.options);
    if (!checked(outcome)) return kExitRefused;
    for (const auto& [name, path] : args.components) {
        std::string problem;
        if (!attach_component(outcome.manifest, name, path, problem)) {
            std::cerr << args.input << ": " << problem << "\n";
            return kExitRefused;
        }
    }
    for (const ComponentSpec& component : outcome.manifest.components) {
        if (component.size == 0) {
            std::cerr << args.input << ":" << component.line << ": component \"" << component.name
                      << "\" needs its module: --component " << component.name << "=FILE\n";
            return kExitRefused;
        }
    }
    std::vector<std::uint8_t> image = pack_manifest(outcome.manifest);
    std::ofstream out(args.output, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(image.data()), static_cast<std::streamsize>(image.size()));
    if (!out.flush()) {
        std::cerr << args.output << ": cannot write the file\n";
        std::remove(args.output.c_str());  // never leave a half-written module for the image build
        return kExitUsage;
    }
    return kExitOk;
}

int dump(const Arguments& args) {
    std::ifstream in(args.input, std::ios::binary);
    if (!in) {
        std::cerr << args.input << ": cannot read the file\n";
        return kExitUsage;
    }
    std::vector<std::uint8_t> image((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::string text;
    bool accepted = dump_manifest(image.data(), image.size(), text);
    if (!accepted) {
        std::cerr << args.input << ": " << text << "\n";
        return kExitRefused;
    }
    std::cout << text;
    return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
    Arguments args;
    std::string problem = parse_arguments(argc, argv, args);
    if (args.command == "--help" || args.command == "-h" || args.command == "help") {
        std::cout << kUsage;
        return kExitOk;
    }
    if (!problem.empty()) return usage(problem);
    if (args.command == "check") return check(args);
    if (args.command == "pack") return pack(args);
    if (args.command == "dump") return dump(args);
    return usage("unknown command \"" + args.command + "\"");
}
