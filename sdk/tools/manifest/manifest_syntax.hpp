// The syntax of a manifest text: a small TOML subset (key = value lines, [[domain]] tables,
// strings, integers, arrays and inline tables, # comments). This layer knows nothing of domains;
// manifest_text.cpp gives the keys their meaning.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace nestor::manifest_text {

struct Entry;

struct Value {
    enum class Kind { string, integer, array, table };
    Kind kind = Kind::string;
    int line = 0;
    std::string text;            // string: its contents; integer: as written
    std::uint64_t number = 0;    // integer
    std::vector<Value> items;    // array
    std::vector<Entry> entries;  // inline table
};

struct Entry {
    std::string key;
    int line = 0;
    Value value;
};

// A [[domain]] table (or the top level, line 0): its entries in order, keys unique.
struct Table {
    int line = 0;
    std::vector<Entry> entries;
};

struct Document {
    Table top;
    std::vector<Table> domains;
};

// The first syntax error ends parsing: what follows a broken line cannot be trusted.
struct SyntaxError : std::runtime_error {
    SyntaxError(int line_number, const std::string& message) : std::runtime_error(message), line(line_number) {}
    int line;
};

// Throws SyntaxError (including for a key set twice in one table).
Document parse_document(std::string_view text);

// "a string", "a number", "an array", "a table": for type error messages.
const char* kind_phrase(Value::Kind kind);

}  // namespace nestor::manifest_text
