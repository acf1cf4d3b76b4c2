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
// A guest's console line that was started and not ended yet (a prompt, what a user is typing).
// Other output ends it on the console and then shows it again, so that the user's line stays
// whole at the bottom.
constexpr usize kOpenLineCapacity = 128;
const char* open_source = nullptr;  // whose line is open on the console now
const char* held_source = nullptr;  // whose open line other output interrupted
char open_text[kOpenLineCapacity];
usize open_length = 0;

void hold_open_line() {
    if (!open_source) return;
    console_sink.write("\n", 1);
    held_source = open_source;
    open_source = nullptr;
}

void show_held_line() {
    if (!held_source) return;
    open_source = held_source;
    held_source = nullptr;
    format(console_sink, "[{}] ", open_source);
    console_sink.write(open_text, open_length);
}

void remember_open_text(const char* text, usize length) {
    for (usize i = 0; i < length && open_length < kOpenLineCapacity; ++i) open_text[open_length++] = text[i];
}

bool equal(const char* a, const char* b) { return __builtin_strcmp(a, b) == 0; }

}  // namespace

Level threshold() { return current_threshold; }
void set_threshold(Level level) { current_threshold = level; }
Sink& console() { return console_sink; }

void begin_line(Level level) {
    hold_open_line();
    static const char* const prefixes[] = {"error: ", "warn: ", "", "debug: "};
    const char* prefix = prefixes[static_cast<u8>(level)];
    console_sink.write(prefix, __builtin_strlen(prefix));
}

void end_line() {
    console_sink.write("\n", 1);
    show_held_line();
}

void console_text(const char* source, const char* text, usize length, bool ends_line) {
    if (Level::info > current_threshold) return;
    bool continues = open_source == source;
    if (!continues) {
        begin_line(Level::info);
        format(console_sink, "[{}] ", source);
    }
    console_sink.write(text, length);
    if (!ends_line) {
        if (!continues) open_length = 0;
        remember_open_text(text, length);
        open_source = source;
        return;
    }
    // A whole line of another source leaves the held one's text for show_held_line.
    if (continues) {
        open_source = nullptr;
        open_length = 0;
    }
    end_line();
}

void end_console_line(const char* source) {
    if (held_source == source) held_source = nullptr;
    if (open_source != source) return;
    console_sink.write("\n", 1);
    open_source = nullptr;
}

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
