#include "nestor/virt/unknown_msr_log.hpp"

namespace nestor::virt {

bool UnknownMsrLog::seen(u32 index) const {
    for (u32 i = 0; i < count_; ++i)
        if (indices_[i] == index) return true;
    return false;
}

UnknownMsrLog::Report UnknownMsrLog::note(u32 index) {
    if (seen(index)) return Report::none;
    if (count_ < kCapacity) {
        indices_[count_++] = index;
        return Report::this_msr;
    }
    if (overflow_reported_) return Report::none;
    overflow_reported_ = true;
    return Report::further_msrs;
}

}  // namespace nestor::virt
