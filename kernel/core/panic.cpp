#include "nestor/lib/assert.hpp"
#include "nestor/log.hpp"
#include "nestor/platform.hpp"

namespace nestor {

[[noreturn]] void panic_at(const char* file, int line, const char* what) {
    // A panic while panicking would recurse through the log: stop at once instead.
    static bool panicking = false;
    if (!panicking) {
        panicking = true;
        log::error("PANIC at {}:{}: {}", file, line, what);
    }
    platform::shutdown(ExitStatus::panic);
}

}  // namespace nestor
