// BUILTIN_GUESTS=OFF: the image carries no built-in test guest (appliance images hold no
// test-only code); asking for one is an error that names the option, never silence.
#include "nestor/log.hpp"
#include "nestor/virt/builtin_guest.hpp"

namespace nestor::virt {
namespace {

constexpr u32 kFailureStatus = 1;

}  // namespace

u32 run_builtin_guest(const char* name, u64) {
    log::error(
        "this image was built without the built-in test guests (BUILTIN_GUESTS=OFF): it cannot run "
        "nestor.builtin-guest={}",
        name);
    return kFailureStatus;
}

}  // namespace nestor::virt
