// CNode: a power-of-two table of capability slots. A domain's CSpace is a tree of CNodes.
#pragma once

#include "nestor/cap/capability.hpp"
#include "nestor/cap/object.hpp"

namespace nestor::cap {

class alignas(16) CNode final : public KernelObject {
public:
    explicit CNode(u32 radix_bits);

    static u64 footprint_for(u32 radix_bits);

    u32 radix_bits() const { return radix_bits_; }
    u64 slot_count() const { return u64{1} << radix_bits_; }
    Slot& slot(u64 index);
    // Empties every slot (at destruction).
    void clear_all(Reaper& reaper);

private:
    // The slots follow the header in the same carve.
    Slot* slots() { return reinterpret_cast<Slot*>(this + 1); }
    u32 radix_bits_;
};

}  // namespace nestor::cap
