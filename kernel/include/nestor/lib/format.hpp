// A small type-safe formatter: "{}" placeholders, each argument carries its own type, so a
// mismatch cannot read the wrong bytes as with printf. Specs: {:x} hex, {:#x} with 0x,
// {:08x} zero-padded width, {:8} space-padded width, {:b} binary, {:c} character.
// A placeholder without an argument prints "{?}"; surplus arguments are ignored.
#pragma once

#include "nestor/lib/types.hpp"

namespace nestor {

class Sink {
public:
    virtual void write(const char* text, usize length) = 0;

protected:
    ~Sink() = default;
};

// Formats into a fixed buffer, always NUL-terminated, truncating what does not fit.
class BufferSink final : public Sink {
public:
    BufferSink(char* buffer, usize capacity) : buffer_(buffer), capacity_(capacity) { terminate(); }
    void write(const char* text, usize length) override;
    const char* text() const { return buffer_; }
    usize length() const { return length_; }
    bool truncated() const { return truncated_; }

private:
    void terminate() {
        if (capacity_ > 0) buffer_[length_] = '\0';
    }
    char* buffer_;
    usize capacity_;
    usize length_ = 0;
    bool truncated_ = false;
};

struct FormatArg {
    enum class Kind : u8 { signed_int, unsigned_int, boolean, character, string, pointer };
    Kind kind;
    union {
        i64 s;
        u64 u;
        const char* str;
        const void* ptr;
    };

    FormatArg(signed char v) : kind(Kind::signed_int), s(v) {}
    FormatArg(short v) : kind(Kind::signed_int), s(v) {}
    FormatArg(int v) : kind(Kind::signed_int), s(v) {}
    FormatArg(long v) : kind(Kind::signed_int), s(v) {}
    FormatArg(long long v) : kind(Kind::signed_int), s(v) {}
    FormatArg(unsigned char v) : kind(Kind::unsigned_int), u(v) {}
    FormatArg(unsigned short v) : kind(Kind::unsigned_int), u(v) {}
    FormatArg(unsigned int v) : kind(Kind::unsigned_int), u(v) {}
    FormatArg(unsigned long v) : kind(Kind::unsigned_int), u(v) {}
    FormatArg(unsigned long long v) : kind(Kind::unsigned_int), u(v) {}
    FormatArg(bool v) : kind(Kind::boolean), u(v) {}
    FormatArg(char v) : kind(Kind::character), u(static_cast<unsigned char>(v)) {}
    FormatArg(const char* v) : kind(Kind::string), str(v) {}
    FormatArg(char* v) : kind(Kind::string), str(v) {}
    FormatArg(const void* v) : kind(Kind::pointer), ptr(v) {}
    FormatArg(void* v) : kind(Kind::pointer), ptr(v) {}
    template <typename E>
        requires __is_enum
    (E) FormatArg(E v) : FormatArg(static_cast<__underlying_type(E)>(v)) {}
};

void format_args(Sink& sink, const char* fmt, const FormatArg* args, usize count);

template <typename... Args> void format(Sink& sink, const char* fmt, const Args&... args) {
    if constexpr (sizeof...(Args) == 0) {
        format_args(sink, fmt, nullptr, 0);
    } else {
        const FormatArg packed[] = {FormatArg(args)...};
        format_args(sink, fmt, packed, sizeof...(Args));
    }
}

// Formats into buf (capacity bytes); returns the length written, excluding the NUL.
template <typename... Args> usize format_into(char* buf, usize capacity, const char* fmt, const Args&... args) {
    BufferSink sink(buf, capacity);
    format(sink, fmt, args...);
    return sink.length();
}

}  // namespace nestor
