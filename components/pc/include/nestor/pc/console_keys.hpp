// What the host's console input means to the PC that takes it: typed bytes for its serial port,
// and an escape for the operator. Ctrl-] (0x1D, telnet's escape character, which a terminal sends
// and a serial console's user rarely needs) starts a two-key sequence:
//   Ctrl-] n        presses the PC's NMI button (PcPlatform::press_nmi_button)
//   Ctrl-] Ctrl-]   types one Ctrl-]
//   Ctrl-] KEY      types KEY (an escape that means nothing is dropped)
// The escape may end one read of the host's UART and its key start the next.
#pragma once

#include "nestor/lib/types.hpp"

namespace nestor::pc {

class ConsoleKeys {
public:
    static constexpr u8 kEscape = 0x1D;  // Ctrl-]
    static constexpr u8 kNmiButton = 'n';

    struct Key {
        enum class Kind : u8 { none, typed, nmi_button };
        Kind kind = Kind::none;
        u8 byte = 0;  // for `typed`
    };

    // One byte from the host's console: what it means (none: the escape, waiting for its key).
    Key feed(u8 byte) {
        if (!escaped_) {
            if (byte == kEscape) {
                escaped_ = true;
                return {};
            }
            return {Key::Kind::typed, byte};
        }
        escaped_ = false;
        if (byte == kNmiButton) return {Key::Kind::nmi_button, 0};
        return {Key::Kind::typed, byte};
    }

private:
    bool escaped_ = false;
};

}  // namespace nestor::pc
