#include "nestor/virt/unknown_msr_log.hpp"

namespace nestor::virt {

bool UnknownMsrLog::seen(u32 index) const {
    for (u32 i = 0; i < count_; ++i)
        if (indices_[i] == index) return true;
    return false;
}

bool UnknownMsrLog::first_time(u32 index) {
    if (seen(index)) return false;
    if (!full()) {
        indices_[count_++] = index;
        return true;
    }
    if (overflow_reported_) return false;
    overflow_reported_ = true;
    return true;
}

}  // namespace nestor::virt
