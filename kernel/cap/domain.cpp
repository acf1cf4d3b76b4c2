// Domain: guest-physical mappings and teardown.
#include "nestor/cap/domain.hpp"

#include "nestor/cap/memory_region.hpp"
#include "nestor/cap/system.hpp"
#include "nestor/lib/assert.hpp"

namespace nestor::cap {

Domain::Domain(System& system, const DomainConfig& config)
    : KernelObject(ObjectType::domain), system_(&system), config_(config) {
    cspace_root_.container = this;
}

CapStatus Domain::check_map(u64 gpa, u64 size) const {
    u64 end = 0;
    if (!is_aligned(gpa, kPageSize) || !checked_add(gpa, size, end) || end > kGuestPhysLimit) {
        return fail(Error::invalid_gpa);
    }
    bool has_free_entry = false;
    for (const Mapping& m : mappings_) {
        if (!m.used) {
            has_free_entry = true;
            continue;
        }
        if (gpa < m.gpa + m.size && m.gpa < end) return fail(Error::mapping_overlap);
    }
    if (size > config_.memory_bytes - mapped_bytes_) return fail(Error::memory_limit);
    if (!has_free_entry) return fail(Error::mapping_table_full);
    return {};
}

void Domain::map(Slot& backing, u64 gpa, u32 rights) {
    ASSERT(backing.cap.type == ObjectType::memory && backing.cap.mapped_in == nullptr);
    auto& region = static_cast<MemoryRegion&>(*backing.cap.object);
    ASSERT(check_map(gpa, region.size()).ok());
    for (u32 i = 0; i < kMaxMappings; ++i) {
        if (mappings_[i].used) continue;
        mappings_[i] = Mapping{true, gpa, region.size(), region.backing(), rights, &backing};
        mapped_bytes_ += region.size();
        region.mapped();
        backing.cap.mapped_in = this;
        backing.cap.mapping_index = i;
        if (DomainObserver* observer = system_->observer()) observer->mapped(*this, mappings_[i]);
        return;
    }
    ASSERT_UNREACHABLE();
}

void Domain::unmap(u32 index) {
    Mapping& m = mappings_[index];
    ASSERT(m.used && m.backing->cap.mapped_in == this);
    if (DomainObserver* observer = system_->observer()) observer->unmapped(*this, m);
    static_cast<MemoryRegion&>(*m.backing->cap.object).unmapped();
    m.backing->cap.mapped_in = nullptr;
    m.backing->cap.mapping_index = 0;
    mapped_bytes_ -= m.size;
    m = Mapping{};
}

void Domain::tear_down(Reaper& reaper) {
    if (DomainObserver* observer = system_->observer()) observer->destroyed(*this);
    for (u32 i = 0; i < kMaxMappings; ++i) {
        if (mappings_[i].used) unmap(i);
    }
    if (!cspace_root_.empty()) clear(cspace_root_, reaper);
}

}  // namespace nestor::cap
