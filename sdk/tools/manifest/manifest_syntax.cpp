// A recursive-descent parser for the manifest's TOML subset. It tracks the line of every key and
// value so the meaning layer can point at the exact line of a problem.
#include "manifest_syntax.hpp"

#include <limits>

namespace nestor::manifest_text {
namespace {

bool is_key_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_word_char(char c) { return is_key_char(c) || c == '.'; }

class Parser {
public:
    explicit Parser(std::string_view text) : text_(text) {}

    Document document() {
        Document doc;
        Table* current = &doc.top;
        for (;;) {
            skip_blank_lines();
            if (at_end()) break;
            if (peek() == '[') {
                doc.domains.push_back(Table{line_, {}});
                table_header();
                current = &doc.domains.back();
            } else {
                key_value(current->entries);
            }
            end_of_line();
        }
        return doc;
    }

private:
    // --- characters ----------------------------------------------------------------------
    bool at_end() const { return pos_ >= text_.size(); }
    char peek() const { return at_end() ? '\0' : text_[pos_]; }
    char peek_next() const { return pos_ + 1 < text_.size() ? text_[pos_ + 1] : '\0'; }
    bool at_line_end() const { return at_end() || peek() == '\n' || (peek() == '\r' && peek_next() == '\n'); }

    void advance() {
        if (peek() == '\n') ++line_;
        ++pos_;
    }

    [[noreturn]] void error(const std::string& message) const { throw SyntaxError(line_, message); }
    [[noreturn]] void error_at(int line, const std::string& message) const { throw SyntaxError(line, message); }

    // How the character at the cursor reads in a message.
    std::string describe_here() const {
        if (at_end()) return "the end of the file";
        if (at_line_end()) return "the end of the line";
        char c = peek();
        if (c == '\'') return "\"'\"";
        if (c >= 0x20 && c < 0x7f) return std::string("'") + c + "'";
        return "a control or non-ASCII byte";
    }

    void skip_blank() {
        while (peek() == ' ' || peek() == '\t') advance();
    }
    void skip_comment() {
        if (peek() != '#') return;
        while (!at_end() && peek() != '\n') advance();
    }
    void skip_line_break() {
        if (peek() == '\r') advance();
        if (peek() == '\n') advance();
    }
    // Blank lines, comments and line breaks: between statements and inside arrays and tables.
    void skip_blank_lines() {
        for (;;) {
            skip_blank();
            skip_comment();
            if (at_end() || !at_line_end()) return;
            skip_line_break();
        }
    }

    void end_of_line() {
        skip_blank();
        skip_comment();
        if (!at_line_end()) error("expected the end of the line, found " + describe_here());
        skip_line_break();
    }

    void expect(char c, const std::string& what) {
        if (peek() != c) error("expected " + what + ", found " + describe_here());
        advance();
    }

    // --- statements ----------------------------------------------------------------------
    void table_header() {
        advance();  // '['
        if (peek() != '[') error("only [[domain]] tables are allowed");
        advance();
        skip_blank();
        std::string name = key();
        skip_blank();
        if (peek() != ']' || peek_next() != ']') error("expected ']]' to close [[" + name + "]]");
        advance();
        advance();
        if (name != "domain") error("unknown table [[" + name + "]]: only [[domain]] tables are allowed");
    }

    std::string key() {
        if (peek() == '"') error("quoted keys are not allowed: write the key bare");
        std::string name;
        while (is_key_char(peek())) {
            name += peek();
            advance();
        }
        if (name.empty()) error("expected a key (letters, digits, '_' and '-'), found " + describe_here());
        return name;
    }

    void add_entry(std::vector<Entry>& entries, Entry entry) {
        for (const Entry& existing : entries) {
            if (existing.key == entry.key) {
                error_at(entry.line, "duplicate key \"" + entry.key + "\" (first set on line " +
                                         std::to_string(existing.line) + ")");
            }
        }
        entries.push_back(std::move(entry));
    }

    void key_value(std::vector<Entry>& entries) {
        Entry entry;
        entry.line = line_;
        entry.key = key();
        skip_blank();
        expect('=', "'=' after \"" + entry.key + "\"");
        skip_blank();
        if (at_line_end()) error("missing value after \"" + entry.key + " =\"");
        entry.value = value();
        add_entry(entries, std::move(entry));
    }

    // --- values --------------------------------------------------------------------------
    Value value() {
        char c = peek();
        if (c == '"') return string_value();
        if (is_digit(c)) return integer_value();
        if (c == '[') return array_value();
        if (c == '{') return table_value();
        if (is_word_char(c)) {
            std::string word = bare_word();
            error("\"" + word + "\" is not a value: strings need double quotes");
        }
        error("expected a value (a \"string\", a number, [an, array] or {a = table}), found " + describe_here());
    }

    std::string bare_word() {
        std::string word;
        while (is_word_char(peek())) {
            word += peek();
            advance();
        }
        return word;
    }

    Value string_value() {
        Value v{Value::Kind::string, line_, {}, 0, {}, {}};
        advance();  // opening quote
        for (;;) {
            if (at_line_end()) error_at(v.line, "unterminated string: missing the closing '\"'");
            char c = peek();
            if (c == '"') break;
            if (c == '\\') {
                advance();
                char escaped = peek();
                if (escaped != '"' && escaped != '\\') {
                    error("unknown escape in string: only \\\" and \\\\ are allowed");
                }
                c = escaped;
            } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
                error("control character in string");
            } else if (static_cast<unsigned char>(c) >= 0x80) {
                error("non-ASCII character in string: strings are ASCII");
            }
            v.text += c;
            advance();
        }
        advance();  // closing quote
        return v;
    }

    Value integer_value() {
        Value v{Value::Kind::integer, line_, bare_word(), 0, {}, {}};
        switch (parse_integer(v.text, v.number)) {
        case IntegerParse::ok: break;
        case IntegerParse::malformed: error("\"" + v.text + "\" is not a number (decimal, or hex with 0x)");
        case IntegerParse::too_large: error("number " + v.text + " is too large");
        }
        return v;
    }

    Value array_value() {
        Value v{Value::Kind::array, line_, {}, 0, {}, {}};
        advance();  // '['
        for (;;) {
            skip_blank_lines();
            if (at_end()) error_at(v.line, "unterminated array: missing ']'");
            if (peek() == ']') break;
            v.items.push_back(value());
            skip_blank_lines();
            if (peek() == ',') {
                advance();
                continue;
            }
            if (peek() != ']') {
                if (at_end()) error_at(v.line, "unterminated array: missing ']'");
                error("expected ',' or ']' in array, found " + describe_here());
            }
        }
        advance();  // ']'
        return v;
    }

    Value table_value() {
        Value v{Value::Kind::table, line_, {}, 0, {}, {}};
        advance();  // '{'
        for (;;) {
            skip_blank_lines();
            if (at_end()) error_at(v.line, "unterminated table: missing '}'");
            if (peek() == '}') break;
            key_value(v.entries);
            skip_blank_lines();
            if (peek() == ',') {
                advance();
                continue;
            }
            if (peek() != '}') {
                if (at_end()) error_at(v.line, "unterminated table: missing '}'");
                error("expected ',' or '}' in table, found " + describe_here());
            }
        }
        advance();  // '}'
        return v;
    }

    enum class IntegerParse { ok, malformed, too_large };

    static IntegerParse parse_integer(const std::string& text, std::uint64_t& out) {
        std::uint64_t base = 10;
        std::string_view digits = text;
        if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) {
            base = 16;
            digits.remove_prefix(2);
        }
        if (digits.empty()) return IntegerParse::malformed;
        std::uint64_t value = 0;
        bool overflow = false;
        for (char c : digits) {
            std::uint64_t digit = 0;
            if (c >= '0' && c <= '9') {
                digit = static_cast<std::uint64_t>(c - '0');
            } else if (base == 16 && c >= 'a' && c <= 'f') {
                digit = static_cast<std::uint64_t>(c - 'a') + 10;
            } else if (base == 16 && c >= 'A' && c <= 'F') {
                digit = static_cast<std::uint64_t>(c - 'A') + 10;
            } else {
                return IntegerParse::malformed;
            }
            // Keep scanning after an overflow: "99999x" is malformed, not too large.
            if (value > (std::numeric_limits<std::uint64_t>::max() - digit) / base) overflow = true;
            if (!overflow) value = value * base + digit;
        }
        if (overflow) return IntegerParse::too_large;
        out = value;
        return IntegerParse::ok;
    }

    std::string_view text_;
    std::size_t pos_ = 0;
    int line_ = 1;
};

}  // namespace

Document parse_document(std::string_view text) { return Parser(text).document(); }

const char* kind_phrase(Value::Kind kind) {
    switch (kind) {
    case Value::Kind::string: return "a string";
    case Value::Kind::integer: return "a number";
    case Value::Kind::array: return "an array";
    case Value::Kind::table: return "a table";
    }
    return "a value";
}

}  // namespace nestor::manifest_text
