// One instance of the capability runtime: the memory window it reaches kernel objects through
// and the platform's capabilities. Nothing is global, so tests may run several side by side.
#pragma once

#include "nestor/cap/domain_config.hpp"
#include "nestor/cap/domain_observer.hpp"
#include "nestor/cap/kernel_memory.hpp"

namespace nestor::cap {

class System {
public:
    System(KernelMemory& memory, const PlatformCaps& platform) : memory_(memory), platform_(platform) {}
    System(const System&) = delete;
    System& operator=(const System&) = delete;

    KernelMemory& memory() { return memory_; }
    const PlatformCaps& platform() const { return platform_; }
    // Counts every live kernel object; a balanced system returns to zero (a leak check).
    u64 live_objects() const { return live_objects_; }
    void object_created() { ++live_objects_; }
    void object_destroyed() { --live_objects_; }
    // Null until the kernel attaches one (host tests may run without).
    DomainObserver* observer() const { return observer_; }
    void set_observer(DomainObserver* observer) { observer_ = observer; }
    // A fresh mark for one graph search.
    u64 next_epoch() { return ++epoch_; }

private:
    KernelMemory& memory_;
    PlatformCaps platform_;
    u64 live_objects_ = 0;
    u64 epoch_ = 0;
    DomainObserver* observer_ = nullptr;
};

}  // namespace nestor::cap
