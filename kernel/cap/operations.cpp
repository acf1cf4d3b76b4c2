// Capability operations and object creation. Every action here runs only after its check
// passed, so none of them can fail half way.
#include "nestor/cap/operations.hpp"

#include "nestor/cap/cnode.hpp"
#include "nestor/cap/ioport_range.hpp"
#include "nestor/cap/irq.hpp"
#include "nestor/cap/memory_region.hpp"
#include "nestor/cap/notification.hpp"
#include "nestor/cap/vcpu.hpp"
#include "nestor/lib/assert.hpp"
#include "nestor/lib/util.hpp"

namespace nestor::cap {

// --- capability derivation -------------------------------------------------------------------

namespace {

constexpr u64 kGuardBitsMask = 0x7f;
constexpr u64 kGuardReservedBit = 0x80;
constexpr u32 kGuardValueShift = 8;

CapStatus check_guard(const Capability& source, u64 guard_word) {
    if ((guard_word & kGuardReservedBit) != 0) return fail(Error::invalid_guard);
    u64 bits = guard_word & kGuardBitsMask;
    u64 value = guard_word >> kGuardValueShift;
    u32 radix = static_cast<const CNode&>(*source.object).radix_bits();
    if (bits + radix > 64) return fail(Error::invalid_guard);
    if (bits < 64 && (value >> bits) != 0) return fail(Error::invalid_guard);
    return {};
}

CapStatus check_badge(const Capability& source, u64 badge) {
    switch (source.type) {
    case ObjectType::notification:
        // A badge identifies a sender to the receiver: once set it cannot be changed.
        if (badge != 0 && source.badge != 0 && badge != source.badge) return fail(Error::badge_already_set);
        return {};
    case ObjectType::cnode: return check_guard(source, badge);
    default: return badge == 0 ? CapStatus{} : CapStatus{fail(Error::badge_not_supported)};
    }
}

}  // namespace

CapStatus check_mint(const Capability& source, u32 rights, u64 badge) {
    ASSERT(!source.empty());
    if ((rights & ~valid_rights(source.type)) != 0) return fail(Error::invalid_rights);
    if ((rights & ~source.rights) != 0) return fail(Error::rights_escalation);
    return check_badge(source, badge);
}

void copy_cap(Slot& source, Slot& dst) { install(dst, source.cap, &source); }

void mint_cap(Slot& source, Slot& dst, u32 rights, u64 badge) {
    ASSERT(check_mint(source.cap, rights, badge).ok());
    Capability derived = source.cap;
    derived.rights = rights;
    if (derived.type == ObjectType::notification && badge != 0) derived.badge = badge;
    if (derived.type == ObjectType::cnode) {
        derived.guard_bits = static_cast<u8>(badge & kGuardBitsMask);
        derived.guard = badge >> kGuardValueShift;
    }
    install(dst, derived, &source);
}

void move_cap(Slot& source, Slot& dst, Reaper& reaper) { transfer(source, dst, reaper); }

void delete_cap(Slot& slot, Reaper& reaper) { clear(slot, reaper); }

void revoke_cap(Slot& slot, Reaper& reaper) {
    // Leaves first, one at a time: no recursion, and no slot is reached after it was emptied.
    // Objects losing their last capability are only queued, so the tree stays intact meanwhile.
    while (slot.first_child != nullptr) {
        Slot* leaf = slot.first_child;
        while (leaf->first_child != nullptr) leaf = leaf->first_child;
        clear(*leaf, reaper);
    }
}

// --- carving objects from untyped --------------------------------------------------------------

usize carve_plan(ObjectType type, u32 size_bits, CarveRequest* requests) {
    constexpr u64 align = Untyped::kObjectAlign;
    switch (type) {
    case ObjectType::untyped: requests[0] = {u64{1} << size_bits, kPageSize}; return 1;
    case ObjectType::cnode: requests[0] = {CNode::footprint_for(size_bits), align}; return 1;
    case ObjectType::memory:
        requests[0] = {sizeof(MemoryRegion), align};
        requests[1] = {u64{1} << size_bits, kPageSize};
        return 2;
    case ObjectType::notification: requests[0] = {sizeof(Notification), align}; return 1;
    case ObjectType::ioport_range: requests[0] = {sizeof(IoPortRange), align}; return 1;
    case ObjectType::irq: requests[0] = {sizeof(Irq), align}; return 1;
    case ObjectType::domain: requests[0] = {sizeof(Domain), align}; return 1;
    case ObjectType::vcpu: requests[0] = {sizeof(VCpu), align}; return 1;
    case ObjectType::null: break;
    }
    ASSERT_UNREACHABLE();
}

namespace {

CapStatus check_size_bits(ObjectType type, u32 size_bits) {
    switch (type) {
    case ObjectType::untyped:
        if (size_bits < NESTOR_UNTYPED_MIN_BITS || size_bits > NESTOR_UNTYPED_MAX_BITS)
            return fail(Error::invalid_size);
        return {};
    case ObjectType::cnode:
        if (size_bits < NESTOR_CNODE_MIN_BITS || size_bits > NESTOR_CNODE_MAX_BITS) return fail(Error::invalid_size);
        return {};
    case ObjectType::memory:
        if (size_bits < NESTOR_MEMORY_MIN_BITS || size_bits > NESTOR_MEMORY_MAX_BITS) return fail(Error::invalid_size);
        return {};
    case ObjectType::notification: return size_bits == 0 ? CapStatus{} : CapStatus{fail(Error::invalid_size)};
    default: return fail(Error::invalid_type);
    }
}

// Carves and constructs one object of type (the plan must fit) and charges it to untyped.
KernelObject& carve_object(Untyped& untyped, ObjectType type, u32 size_bits) {
    CarveRequest plan[2];
    usize parts = carve_plan(type, size_bits, plan);
    u64 begin = 0;
    u64 ignored = 0;
    paddr at = untyped.carve(plan[0], begin);
    paddr backing = parts > 1 ? untyped.carve(plan[1], ignored) : 0;
    KernelObject* object = nullptr;
    switch (type) {
    case ObjectType::untyped: object = Untyped::create_at(untyped.system(), at, plan[0].size); break;
    case ObjectType::cnode: object = untyped.construct<CNode>(at, plan[0].size, size_bits); break;
    case ObjectType::memory:
        // Guest memory never shows a previous owner's data.
        fill_bytes(untyped.system().memory().window(backing, plan[1].size), 0, plan[1].size);
        object = untyped.construct<MemoryRegion>(at, plan[0].size, backing, plan[1].size);
        break;
    case ObjectType::notification: object = untyped.construct<Notification>(at, plan[0].size); break;
    case ObjectType::ioport_range: object = untyped.construct<IoPortRange>(at, plan[0].size); break;
    case ObjectType::irq: object = untyped.construct<Irq>(at, plan[0].size); break;
    default: ASSERT_UNREACHABLE();
    }
    object->phys = at;
    untyped.adopt(*object, begin, untyped.watermark(), plan[0].size + (parts > 1 ? plan[1].size : 0));
    untyped.system().object_created();
    return *object;
}

Capability full_capability(KernelObject& object) {
    Capability cap;
    cap.type = object.type;
    cap.rights = valid_rights(object.type);
    cap.object = &object;
    return cap;
}

}  // namespace

CapStatus check_retype(const Untyped& untyped, ObjectType type, u32 size_bits) {
    CapStatus size_ok = check_size_bits(type, size_bits);
    if (!size_ok) return size_ok;
    // A child untyped holds its own header, so it must be larger than one.
    if (type == ObjectType::untyped && (u64{1} << size_bits) <= Untyped::header_bytes())
        return fail(Error::invalid_size);
    CarveRequest plan[2];
    usize parts = carve_plan(type, size_bits, plan);
    if (!untyped.fits(plan, parts)) return fail(Error::untyped_exhausted);
    return {};
}

void retype(Slot& untyped_slot, ObjectType type, u32 size_bits, Slot& dst) {
    ASSERT(untyped_slot.cap.type == ObjectType::untyped);
    auto& untyped = static_cast<Untyped&>(*untyped_slot.cap.object);
    ASSERT(check_retype(untyped, type, size_bits).ok());
    install(dst, full_capability(carve_object(untyped, type, size_bits)), &untyped_slot);
}

// --- domains -----------------------------------------------------------------------------------

namespace {

constexpr usize kDomainPlanMax = 2 + Domain::kMaxVcpus;

usize domain_plan(const DomainConfig& config, CarveRequest* plan) {
    plan[0] = {sizeof(Domain), Untyped::kObjectAlign};
    plan[1] = {CNode::footprint_for(config.cspace_bits), Untyped::kObjectAlign};
    for (u32 i = 0; i < config.vcpus; ++i) plan[2 + i] = {sizeof(VCpu), Untyped::kObjectAlign};
    return 2 + config.vcpus;
}

template <typename T, typename... Args> T& carve_part(Untyped& untyped, const CarveRequest& request, Args&&... args) {
    u64 begin = 0;
    paddr at = untyped.carve(request, begin);
    T* object = untyped.construct<T>(at, request.size, forward<Args>(args)...);
    object->phys = at;
    untyped.adopt(*object, begin, untyped.watermark(), request.size);
    untyped.system().object_created();
    return *object;
}

}  // namespace

CapStatus check_create_domain(const Untyped& untyped, const DomainConfig& config) {
    CapStatus sane = sanitise_domain_config(config, untyped.system().platform());
    if (!sane) return sane;
    CarveRequest plan[kDomainPlanMax];
    if (!untyped.fits(plan, domain_plan(config, plan))) return fail(Error::untyped_exhausted);
    return {};
}

Domain& create_domain(Slot& untyped_slot, const DomainConfig& config, Slot& dst) {
    ASSERT(untyped_slot.cap.type == ObjectType::untyped);
    auto& untyped = static_cast<Untyped&>(*untyped_slot.cap.object);
    ASSERT(check_create_domain(untyped, config).ok());
    CarveRequest plan[kDomainPlanMax];
    domain_plan(config, plan);

    Domain& domain = carve_part<Domain>(untyped, plan[0], untyped.system(), config);
    CNode& root = carve_part<CNode>(untyped, plan[1], config.cspace_bits);
    Capability root_cap = full_capability(root);
    // The root consumes every cptr bit, so a cptr is simply a slot index.
    root_cap.guard_bits = static_cast<u8>(64 - config.cspace_bits);
    install(domain.cspace_root(), root_cap, &untyped_slot);
    for (u32 i = 0; i < config.vcpus; ++i) domain.attach_vcpu(carve_part<VCpu>(untyped, plan[2 + i], domain, i));
    install(dst, full_capability(domain), &untyped_slot);
    return domain;
}

// --- the boot domain ---------------------------------------------------------------------------

CapResult<Domain*> bootstrap(System& system, paddr base, u64 size, const DomainConfig& config) {
    CapStatus sane = sanitise_domain_config(config, system.platform());
    if (!sane) return fail(sane.error());
    if (config.cspace_bits < 3) return fail(Error::cfg_cspace_size);  // the boot slots need 8
    if (!is_aligned(base, kPageSize) || size <= Untyped::header_bytes()) return fail(Error::untyped_exhausted);

    Untyped* untyped = Untyped::create_at(system, base, size);
    system.object_created();
    Capability untyped_cap = full_capability(*untyped);
    Slot boot_untyped;
    install(boot_untyped, untyped_cap, nullptr);

    CarveRequest extra[2];
    carve_plan(ObjectType::ioport_range, 0, &extra[0]);
    carve_plan(ObjectType::irq, 0, &extra[1]);
    CarveRequest plan[kDomainPlanMax + 2];
    usize parts = domain_plan(config, plan);
    plan[parts++] = extra[0];
    plan[parts++] = extra[1];
    if (!untyped->fits(plan, parts)) {
        Reaper reaper;
        clear(boot_untyped, reaper);
        reaper.reap();
        return fail(Error::untyped_exhausted);
    }

    Slot boot_domain;
    Domain& domain = create_domain(boot_untyped, config, boot_domain);
    auto& root = static_cast<CNode&>(*domain.cspace_root().cap.object);
    Reaper unused;
    transfer(boot_untyped, root.slot(kBootSlotUntyped), unused);
    transfer(boot_domain, root.slot(kBootSlotDomain), unused);
    ASSERT(unused.empty());
    copy_cap(domain.cspace_root(), root.slot(kBootSlotCSpace));

    Capability ports = full_capability(carve_object(*untyped, ObjectType::ioport_range, 0));
    ports.first_port = 0;
    ports.port_count = IoPortRange::kPortCount;
    install(root.slot(kBootSlotIoPorts), ports, &root.slot(kBootSlotUntyped));

    Capability irqs = full_capability(carve_object(*untyped, ObjectType::irq, 0));
    irqs.irq_control = true;
    install(root.slot(kBootSlotIrqControl), irqs, &root.slot(kBootSlotUntyped));
    return &domain;
}

}  // namespace nestor::cap
