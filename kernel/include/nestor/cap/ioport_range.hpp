// IoPortRange: authority over x86 I/O ports. The boot domain gets one covering every port; it
// issues capabilities for sub-ranges (the range is recorded in the capability).
#pragma once

#include "nestor/cap/object.hpp"

namespace nestor::cap {

class IoPortRange final : public KernelObject {
public:
    static constexpr u32 kPortCount = 65536;
    IoPortRange() : KernelObject(ObjectType::ioport_range) {}
};

}  // namespace nestor::cap
