// Domain: a guest. It owns its vCPUs, a guest-physical mapping table and the root of its
// capability space. All of it is carved in one go from an untyped its creator holds, so a domain
// is either fully built or not built at all.
#pragma once

#include "nestor/abi/domain.h"
#include "nestor/cap/capability.hpp"
#include "nestor/cap/domain_config.hpp"
#include "nestor/cap/error.hpp"

namespace nestor::cap {

class System;
class VCpu;
class MemoryRegion;
class Untyped;

struct Mapping {
    bool used = false;
    u64 gpa = 0;
    u64 size = 0;
    paddr hpa = 0;
    u32 rights = 0;           // NESTOR_RIGHT_MEMORY_*
    Slot* backing = nullptr;  // the memory capability this mapping lives and dies with
};

class Domain final : public KernelObject {
public:
    static constexpr u32 kMaxVcpus = NESTOR_DOMAIN_MAX_VCPUS;
    static constexpr u32 kMaxMappings = NESTOR_DOMAIN_MAX_MAPPINGS;
    static constexpr u64 kGuestPhysLimit = u64{1} << 52;

    Domain(System& system, const DomainConfig& config);

    System& system() const { return *system_; }
    const DomainConfig& config() const { return config_; }
    Slot& cspace_root() { return cspace_root_; }
    u32 vcpu_count() const { return vcpu_count_; }
    VCpu& vcpu(u32 index) const { return *vcpus_[index]; }
    void attach_vcpu(VCpu& vcpu) { vcpus_[vcpu_count_++] = &vcpu; }
    const Mapping& mapping(u32 index) const { return mappings_[index]; }
    u64 mapped_bytes() const { return mapped_bytes_; }

    // Whether region could be mapped at gpa: the decode half of a map.
    CapStatus check_map(u64 gpa, u64 size) const;
    // Maps the region named by backing (already checked) and records the mapping in the cap.
    void map(Slot& backing, u64 gpa, u32 rights);
    void unmap(u32 index);
    // The backing capability moved to another slot.
    void rebind(u32 index, Slot& backing) { mappings_[index].backing = &backing; }

    // Tears down mappings and the CSpace root at destruction; the vCPUs are returned to their
    // untyped by the caller.
    void tear_down(Reaper& reaper);

private:
    System* system_;
    DomainConfig config_;
    u32 vcpu_count_ = 0;
    VCpu* vcpus_[kMaxVcpus] = {};
    Mapping mappings_[kMaxMappings];
    u64 mapped_bytes_ = 0;
    Slot cspace_root_;
};

}  // namespace nestor::cap
