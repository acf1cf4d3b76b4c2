// Kernel log on the platform console, with levels. Messages below the threshold cost one compare.
#pragma once

#include "nestor/lib/format.hpp"

namespace nestor::log {

enum class Level : u8 { error = 0, warn = 1, info = 2, debug = 3 };

Level threshold();
void set_threshold(Level level);
Sink& console();
void begin_line(Level level);  // writes the level prefix
void end_line();

template <typename... Args> void write(Level level, const char* fmt, const Args&... args) {
    if (level > threshold()) return;
    begin_line(level);
    format(console(), fmt, args...);
    end_line();
}

template <typename... Args> void error(const char* fmt, const Args&... args) { write(Level::error, fmt, args...); }
template <typename... Args> void warn(const char* fmt, const Args&... args) { write(Level::warn, fmt, args...); }
template <typename... Args> void info(const char* fmt, const Args&... args) { write(Level::info, fmt, args...); }
template <typename... Args> void debug(const char* fmt, const Args&... args) { write(Level::debug, fmt, args...); }

// A guest's console text at the info level, after "[source] ": a whole line (ends_line), or the
// start of one, which later text of the same source continues without the prefix. Any other
// output first ends a line left open, and then shows it again (the start of a line that a user is
// typing stays whole at the bottom).
void console_text(const char* source, const char* text, usize length, bool ends_line);
// `source` will print nothing more: a line it left open is ended.
void end_console_line(const char* source);

// Parses "error", "warn", "info" or "debug"; false for anything else.
bool parse_level(const char* text, Level& out);

}  // namespace nestor::log
