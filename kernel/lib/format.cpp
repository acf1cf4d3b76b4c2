#include "nestor/lib/format.hpp"

namespace nestor {

void BufferSink::write(const char* text, usize length) {
    for (usize i = 0; i < length; ++i) {
        if (length_ + 1 >= capacity_) {
            truncated_ = true;
            break;
        }
        buffer_[length_++] = text[i];
    }
    terminate();
}

namespace {

struct Spec {
    bool alternate = false;  // '#': 0x / 0b prefix
    char fill = ' ';
    usize width = 0;
    char type = 0;  // 0, 'x', 'X', 'd', 'b', 'c', 's', 'p'
};

// Parses the text between ':' and '}' ; false for a malformed spec.
bool parse_spec(const char*& p, Spec& spec) {
    if (*p == '#') {
        spec.alternate = true;
        ++p;
    }
    if (*p == '0') {
        spec.fill = '0';
        ++p;
    }
    while (*p >= '0' && *p <= '9') {
        spec.width = spec.width * 10 + static_cast<usize>(*p - '0');
        if (spec.width > 64) return false;
        ++p;
    }
    if (*p && *p != '}') spec.type = *p++;
    return *p == '}';
}

void pad(Sink& sink, char fill, usize count) {
    for (usize i = 0; i < count; ++i) sink.write(&fill, 1);
}

void write_padded(Sink& sink, const Spec& spec, const char* prefix, const char* digits, usize ndigits) {
    usize prefix_len = __builtin_strlen(prefix);
    usize total = prefix_len + ndigits;
    usize padding = spec.width > total ? spec.width - total : 0;
    if (spec.fill == '0') {
        sink.write(prefix, prefix_len);
        pad(sink, '0', padding);
    } else {
        pad(sink, ' ', padding);
        sink.write(prefix, prefix_len);
    }
    sink.write(digits, ndigits);
}

void write_unsigned(Sink& sink, const Spec& spec, u64 value, bool negative) {
    unsigned base = 10;
    const char* alphabet = "0123456789abcdef";
    const char* prefix = negative ? "-" : "";
    switch (spec.type) {
    case 'x':
    case 'p':
        base = 16;
        if (spec.alternate || spec.type == 'p') prefix = "0x";
        break;
    case 'X':
        base = 16;
        alphabet = "0123456789ABCDEF";
        if (spec.alternate) prefix = "0x";
        break;
    case 'b':
        base = 2;
        if (spec.alternate) prefix = "0b";
        break;
    default: break;
    }
    char digits[64];
    usize n = 0;
    do {
        digits[sizeof(digits) - 1 - n++] = alphabet[value % base];
        value /= base;
    } while (value != 0);
    write_padded(sink, spec, prefix, digits + sizeof(digits) - n, n);
}

void write_arg(Sink& sink, const Spec& spec, const FormatArg& arg) {
    switch (arg.kind) {
    case FormatArg::Kind::signed_int:
        if (spec.type == 'c') {
            char c = static_cast<char>(arg.s);
            sink.write(&c, 1);
        } else if (arg.s < 0 && (spec.type == 0 || spec.type == 'd')) {
            write_unsigned(sink, spec, 0 - static_cast<u64>(arg.s), true);
        } else {
            write_unsigned(sink, spec, static_cast<u64>(arg.s), false);
        }
        return;
    case FormatArg::Kind::unsigned_int:
        if (spec.type == 'c') {
            char c = static_cast<char>(arg.u);
            sink.write(&c, 1);
        } else {
            write_unsigned(sink, spec, arg.u, false);
        }
        return;
    case FormatArg::Kind::boolean: {
        const char* text = arg.u ? "true" : "false";
        write_padded(sink, Spec{false, ' ', spec.width, 0}, "", text, __builtin_strlen(text));
        return;
    }
    case FormatArg::Kind::character: {
        char c = static_cast<char>(arg.u);
        if (spec.type == 'x' || spec.type == 'X' || spec.type == 'd')
            write_unsigned(sink, spec, arg.u, false);
        else
            sink.write(&c, 1);
        return;
    }
    case FormatArg::Kind::string: {
        const char* text = arg.str ? arg.str : "(null)";
        write_padded(sink, Spec{false, ' ', spec.width, 0}, "", text, __builtin_strlen(text));
        return;
    }
    case FormatArg::Kind::pointer: {
        Spec pointer_spec = spec;
        pointer_spec.type = 'p';
        write_unsigned(sink, pointer_spec, reinterpret_cast<uptr>(arg.ptr), false);
        return;
    }
    }
}

}  // namespace

void format_args(Sink& sink, const char* fmt, const FormatArg* args, usize count) {
    usize next = 0;
    const char* literal = fmt;
    const char* p = fmt;
    auto flush = [&](const char* end) {
        if (end > literal) sink.write(literal, static_cast<usize>(end - literal));
    };
    while (*p) {
        if (p[0] == '{' && p[1] == '{') {
            flush(p + 1);
            p += 2;
            literal = p;
            continue;
        }
        if (p[0] == '}' && p[1] == '}') {
            flush(p + 1);
            p += 2;
            literal = p;
            continue;
        }
        if (*p != '{') {
            ++p;
            continue;
        }
        flush(p);
        const char* start = p++;
        Spec spec;
        bool well_formed = true;
        if (*p == ':') {
            ++p;
            well_formed = parse_spec(p, spec);
        } else if (*p != '}') {
            well_formed = false;
        }
        if (!well_formed) {
            // Print a malformed placeholder as it stands rather than guess.
            while (*p && *p != '}') ++p;
            if (*p) ++p;
            sink.write(start, static_cast<usize>(p - start));
        } else {
            ++p;  // past '}'
            if (next < count)
                write_arg(sink, spec, args[next++]);
            else
                sink.write("{?}", 3);
        }
        literal = p;
    }
    flush(p);
}

}  // namespace nestor
