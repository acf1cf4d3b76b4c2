#include "nestor/log.hpp"

#include "nestor/platform.hpp"

namespace nestor::log {
namespace {

class ConsoleSink final : public Sink {
public:
    void write(const char* text, usize length) override { platform::console_write(text, length); }
};

ConsoleSink console_sink;
Level current_threshold = Level::info;

bool equal(const char* a, const char* b) { return __builtin_strcmp(a, b) == 0; }

}  // namespace

Level threshold() { return current_threshold; }
void set_threshold(Level level) { current_threshold = level; }
Sink& console() { return console_sink; }

void begin_line(Level level) {
    static const char* const prefixes[] = {"error: ", "warn: ", "", "debug: "};
    const char* prefix = prefixes[static_cast<u8>(level)];
    console_sink.write(prefix, __builtin_strlen(prefix));
}

void end_line() { console_sink.write("\n", 1); }

bool parse_level(const char* text, Level& out) {
    static const char* const names[] = {"error", "warn", "info", "debug"};
    for (u8 i = 0; i < 4; ++i) {
        if (equal(text, names[i])) {
            out = static_cast<Level>(i);
            return true;
        }
    }
    return false;
}

}  // namespace nestor::log
