#include <catch2/catch.hpp>
#include <string>

#include "nestor/pc/console_keys.hpp"

using namespace nestor;
using namespace nestor::pc;
using Kind = ConsoleKeys::Key::Kind;

namespace {

// Feeds `input` and writes what it meant: typed bytes as themselves, the NMI button as '!'.
std::string meaning(ConsoleKeys& keys, const std::string& input) {
    std::string out;
    for (char c : input) {
        ConsoleKeys::Key key = keys.feed(static_cast<u8>(c));
        if (key.kind == Kind::typed) out += static_cast<char>(key.byte);
        if (key.kind == Kind::nmi_button) out += '!';
    }
    return out;
}

}  // namespace

TEST_CASE("pc.console_keys.plain_bytes_are_typed") {
    ConsoleKeys keys;
    CHECK(meaning(keys, "ls -l n\r") == "ls -l n\r");
}

TEST_CASE("pc.console_keys.escape_n_presses_the_nmi_button") {
    ConsoleKeys keys;
    CHECK(meaning(keys,
                  "a\x1dn"
                  "b") == "a!b");
    // The escape and its key in two reads of the host's UART.
    CHECK(meaning(keys, "\x1d").empty());
    CHECK(meaning(keys, "n") == "!");
    CHECK(meaning(keys, "n") == "n");  // the escape was used up
}

TEST_CASE("pc.console_keys.other_escapes") {
    ConsoleKeys keys;
    CHECK(meaning(keys, "\x1d\x1d") == "\x1d");    // Ctrl-] twice types one
    CHECK(meaning(keys, "\x1dx") == "x");          // an escape that means nothing is dropped
    CHECK(meaning(keys, "\x1d\x1dn") == "\x1dn");  // a typed Ctrl-] starts no escape
}
