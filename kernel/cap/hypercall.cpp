// Hypercall decode (validate every argument against the caller's CSpace, change nothing) and
// invoke (act on what decode resolved).
#include "nestor/cap/hypercall.hpp"

#include "nestor/abi/abi.h"
#include "nestor/cap/cnode.hpp"
#include "nestor/cap/cspace.hpp"
#include "nestor/cap/domain.hpp"
#include "nestor/cap/irq.hpp"
#include "nestor/cap/memory_region.hpp"
#include "nestor/cap/notification.hpp"
#include "nestor/cap/operations.hpp"
#include "nestor/cap/system.hpp"
#include "nestor/cap/untyped.hpp"
#include "nestor/cap/vcpu.hpp"
#include "nestor/lib/assert.hpp"

// Propagates a failed lookup or check out of a decode function. `var` is the name of the
// variable it declares, which parentheses cannot enclose.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define NESTOR_TRY(var, expr)                             \
    auto var##_result = (expr);                           \
    if (!var##_result) return fail(var##_result.error()); \
    auto var = var##_result.value()
// NOLINTEND(bugprone-macro-parentheses)
#define NESTOR_CHECK(expr)                                      \
    do {                                                        \
        CapStatus check_status_ = (expr);                       \
        if (!check_status_) return fail(check_status_.error()); \
    } while (0)

namespace nestor::cap {

namespace {

using Decoded = CapResult<Invocation>;

// Arguments the call does not use must be zero, so they can gain a meaning later.
CapStatus unused_from(const HypercallArgs& in, usize first) {
    for (usize i = first; i < NESTOR_HYPERCALL_ARGS; ++i) {
        if (in.arg[i] != 0) return fail(Error::invalid_argument);
    }
    return {};
}

CapResult<Slot*> full_slot(Slot& root, u64 cnode, u64 index, u32 cnode_rights) {
    auto found = resolve_slot(root, cnode, index, cnode_rights);
    if (!found) return fail(found.error());
    if (found.value()->empty()) return fail(Error::slot_empty);
    return found.value();
}

CapResult<Slot*> empty_slot(Slot& root, u64 cnode, u64 index) {
    auto found = resolve_slot(root, cnode, index, NESTOR_RIGHT_CNODE_WRITE);
    if (!found) return fail(found.error());
    if (!found.value()->empty()) return fail(Error::slot_occupied);
    return found.value();
}

// Source and destination of copy/mint/move. The same slot is named before its emptiness is
// checked, so the error says what is wrong.
CapStatus decode_transfer(Slot& root, const HypercallArgs& in, u32 source_rights, Invocation& inv) {
    auto source = resolve_slot(root, in.arg[0], in.arg[1], source_rights);
    if (!source) return fail(source.error());
    auto dest = resolve_slot(root, in.arg[2], in.arg[3], NESTOR_RIGHT_CNODE_WRITE);
    if (!dest) return fail(dest.error());
    if (source.value() == dest.value()) return fail(Error::same_slot);
    if (source.value()->empty()) return fail(Error::slot_empty);
    if (!dest.value()->empty()) return fail(Error::slot_occupied);
    inv.source = source.value();
    inv.dest = dest.value();
    return {};
}

Decoded decode_copy(Slot& root, const HypercallArgs& in, Invocation inv) {
    NESTOR_CHECK(unused_from(in, 4));
    NESTOR_CHECK(decode_transfer(root, in, NESTOR_RIGHT_CNODE_READ, inv));
    if (would_form_cycle(inv.source->cap, *inv.dest)) return fail(Error::cnode_cycle);
    return inv;
}

Decoded decode_mint(Slot& root, const HypercallArgs& in, Invocation inv) {
    NESTOR_CHECK(decode_transfer(root, in, NESTOR_RIGHT_CNODE_READ, inv));
    if (in.arg[4] > 0xffffffffu) return fail(Error::invalid_rights);
    inv.rights = static_cast<u32>(in.arg[4]);
    inv.badge = in.arg[5];
    NESTOR_CHECK(check_mint(inv.source->cap, inv.rights, inv.badge));
    if (would_form_cycle(inv.source->cap, *inv.dest)) return fail(Error::cnode_cycle);
    return inv;
}

Decoded decode_move(Slot& root, const HypercallArgs& in, Invocation inv) {
    NESTOR_CHECK(unused_from(in, 4));
    NESTOR_CHECK(decode_transfer(root, in, NESTOR_RIGHT_CNODE_WRITE, inv));
    if (would_form_cycle(inv.source->cap, *inv.dest)) return fail(Error::cnode_cycle);
    return inv;
}

Decoded decode_slot_op(Slot& root, const HypercallArgs& in, Invocation inv, u32 cnode_rights) {
    NESTOR_CHECK(unused_from(in, 2));
    NESTOR_TRY(slot, full_slot(root, in.arg[0], in.arg[1], cnode_rights));
    inv.target = slot;
    return inv;
}

Decoded decode_identify(Slot& root, const HypercallArgs& in, Invocation inv) {
    NESTOR_CHECK(unused_from(in, 2));
    NESTOR_TRY(slot, resolve_slot(root, in.arg[0], in.arg[1], NESTOR_RIGHT_CNODE_READ));
    inv.target = slot;
    return inv;
}

Decoded decode_retype(Slot& root, const HypercallArgs& in, Invocation inv) {
    NESTOR_CHECK(unused_from(in, 5));
    NESTOR_TRY(untyped, resolve_object(root, in.arg[0], ObjectType::untyped, NESTOR_RIGHT_UNTYPED_RETYPE));
    NESTOR_TRY(dest, empty_slot(root, in.arg[3], in.arg[4]));
    if (in.arg[1] >= NESTOR_CAP_TYPE_COUNT) return fail(Error::invalid_type);
    if (in.arg[2] > 63) return fail(Error::invalid_size);
    inv.target = untyped;
    inv.dest = dest;
    inv.type = static_cast<ObjectType>(in.arg[1]);
    inv.size_bits = static_cast<u32>(in.arg[2]);
    NESTOR_CHECK(check_retype(static_cast<Untyped&>(*untyped->cap.object), inv.type, inv.size_bits));
    return inv;
}

Decoded decode_domain_create(Slot& root, const HypercallArgs& in, Invocation inv) {
    NESTOR_CHECK(unused_from(in, 5));
    NESTOR_TRY(untyped, resolve_object(root, in.arg[0], ObjectType::untyped, NESTOR_RIGHT_UNTYPED_RETYPE));
    NESTOR_TRY(dest, empty_slot(root, in.arg[1], in.arg[2]));
    inv.target = untyped;
    inv.dest = dest;
    inv.config = unpack_domain_config(in.arg[3], in.arg[4]);
    NESTOR_CHECK(check_create_domain(static_cast<Untyped&>(*untyped->cap.object), inv.config));
    return inv;
}

Decoded decode_domain_vcpu(Slot& root, const HypercallArgs& in, Invocation inv) {
    NESTOR_CHECK(unused_from(in, 4));
    NESTOR_TRY(domain, resolve_object(root, in.arg[0], ObjectType::domain, NESTOR_RIGHT_DOMAIN_CONTROL));
    NESTOR_TRY(dest, empty_slot(root, in.arg[2], in.arg[3]));
    if (in.arg[1] >= static_cast<Domain&>(*domain->cap.object).vcpu_count()) return fail(Error::index_out_of_range);
    inv.target = domain;
    inv.dest = dest;
    inv.value[0] = in.arg[1];
    return inv;
}

Decoded decode_domain_cspace(Slot& root, const HypercallArgs& in, Invocation inv) {
    NESTOR_CHECK(unused_from(in, 3));
    NESTOR_TRY(domain, resolve_object(root, in.arg[0], ObjectType::domain, NESTOR_RIGHT_DOMAIN_CONTROL));
    NESTOR_TRY(dest, empty_slot(root, in.arg[1], in.arg[2]));
    Slot& cspace = static_cast<Domain&>(*domain->cap.object).cspace_root();
    if (cspace.empty()) return fail(Error::slot_empty);
    if (would_form_cycle(cspace.cap, *dest)) return fail(Error::cnode_cycle);
    inv.target = domain;
    inv.dest = dest;
    return inv;
}

Decoded decode_domain_map(Slot& root, const HypercallArgs& in, Invocation inv) {
    NESTOR_CHECK(unused_from(in, 4));
    NESTOR_TRY(domain, resolve_object(root, in.arg[0], ObjectType::domain, NESTOR_RIGHT_DOMAIN_MAP));
    NESTOR_TRY(memory, resolve_object(root, in.arg[1], ObjectType::memory, 0));
    u64 rights = in.arg[3];
    if (rights == 0 || (rights & ~u64{NESTOR_RIGHTS_VALID_MEMORY}) != 0) return fail(Error::invalid_rights);
    // A mapping never grants more than the capability backing it.
    if ((rights & ~u64{memory->cap.rights}) != 0) return fail(Error::insufficient_rights);
    if (memory->cap.mapped_in != nullptr) return fail(Error::already_mapped);
    auto& region = static_cast<MemoryRegion&>(*memory->cap.object);
    NESTOR_CHECK(static_cast<Domain&>(*domain->cap.object).check_map(in.arg[2], region.size()));
    inv.target = domain;
    inv.other = memory;
    inv.value[0] = in.arg[2];
    inv.rights = static_cast<u32>(rights);
    return inv;
}

Decoded decode_domain_unmap(Slot& root, const HypercallArgs& in, Invocation inv) {
    NESTOR_CHECK(unused_from(in, 2));
    NESTOR_TRY(slot, full_slot(root, in.arg[0], in.arg[1], NESTOR_RIGHT_CNODE_WRITE));
    if (slot->cap.type != ObjectType::memory) return fail(Error::wrong_type);
    if (slot->cap.mapped_in == nullptr) return fail(Error::not_mapped);
    inv.target = slot;
    return inv;
}

Decoded decode_object_call(Slot& root, const HypercallArgs& in, Invocation inv, ObjectType type, u32 rights,
                           usize used_args) {
    NESTOR_CHECK(unused_from(in, used_args));
    NESTOR_TRY(target, resolve_object(root, in.arg[0], type, rights));
    inv.target = target;
    return inv;
}

Decoded decode_ioport_issue(Slot& root, const HypercallArgs& in, Invocation inv) {
    NESTOR_CHECK(unused_from(in, 5));
    NESTOR_TRY(range, resolve_object(root, in.arg[0], ObjectType::ioport_range, NESTOR_RIGHT_IOPORT_ISSUE));
    NESTOR_TRY(dest, empty_slot(root, in.arg[3], in.arg[4]));
    u64 first = in.arg[1];
    u64 count = in.arg[2];
    const Capability& cap = range->cap;
    if (count == 0 || first < cap.first_port || count > cap.port_count ||
        first - cap.first_port > cap.port_count - count) {
        return fail(Error::port_range);
    }
    inv.target = range;
    inv.dest = dest;
    inv.value[0] = first;
    inv.value[1] = count;
    return inv;
}

Decoded decode_irq_issue(Slot& root, const HypercallArgs& in, Invocation inv) {
    NESTOR_CHECK(unused_from(in, 4));
    NESTOR_TRY(control, resolve_object(root, in.arg[0], ObjectType::irq, NESTOR_RIGHT_IRQ_ISSUE));
    NESTOR_TRY(dest, empty_slot(root, in.arg[2], in.arg[3]));
    if (!control->cap.irq_control) return fail(Error::wrong_type);
    if (in.arg[1] >= Irq::kLineCount) return fail(Error::irq_line);
    inv.target = control;
    inv.dest = dest;
    inv.value[0] = in.arg[1];
    return inv;
}

Decoded decode_irq_bind(Slot& root, const HypercallArgs& in, Invocation inv) {
    NESTOR_CHECK(unused_from(in, 2));
    NESTOR_TRY(line, resolve_object(root, in.arg[0], ObjectType::irq, NESTOR_RIGHT_IRQ_BIND));
    NESTOR_TRY(target, resolve_object(root, in.arg[1], ObjectType::notification, NESTOR_RIGHT_NOTIFICATION_SIGNAL));
    if (line->cap.irq_control) return fail(Error::wrong_type);
    auto& irq = static_cast<Irq&>(*line->cap.object);
    if (irq.target(line->cap.irq_line) != nullptr) return fail(Error::already_bound);
    if (static_cast<Notification&>(*target->cap.object).bound_irq() != nullptr) return fail(Error::already_bound);
    inv.target = line;
    inv.other = target;
    return inv;
}

// Vectors 0..31 are exceptions; 0 itself means "no interrupt".
constexpr u64 kFirstInterruptVector = 32;
constexpr u64 kLastVector = 255;

Decoded decode_notification_set_vector(Slot& root, const HypercallArgs& in, Invocation inv) {
    NESTOR_CHECK(unused_from(in, 2));
    NESTOR_TRY(target, resolve_object(root, in.arg[0], ObjectType::notification, NESTOR_RIGHT_NOTIFICATION_WAIT));
    u64 vector = in.arg[1];
    if (vector != 0 && (vector < kFirstInterruptVector || vector > kLastVector)) return fail(Error::invalid_argument);
    inv.target = target;
    inv.value[0] = vector;
    return inv;
}

Decoded decode_vcpu_access(Slot& root, const HypercallArgs& in, Invocation inv, u32 rights, usize used_args) {
    NESTOR_CHECK(unused_from(in, used_args));
    NESTOR_TRY(vcpu, resolve_object(root, in.arg[0], ObjectType::vcpu, rights));
    if (in.arg[1] >= NESTOR_VCPU_REG_COUNT) return fail(Error::index_out_of_range);
    if (static_cast<VCpu&>(*vcpu->cap.object).running()) return fail(Error::vcpu_running);
    inv.target = vcpu;
    inv.value[0] = in.arg[1];
    inv.value[1] = in.arg[2];
    return inv;
}

bool is_platform_call(u64 number) {
    return number == NESTOR_HC_CONSOLE_WRITE || number == NESTOR_HC_YIELD || number == NESTOR_HC_SHUTDOWN;
}

// Calls whose invocation changes no reference count: they delete, move and release nothing, so
// no object can die during them, the caller included.
bool releases_nothing(u64 number) {
    switch (number) {
    case NESTOR_HC_ABI_VERSION:
    case NESTOR_HC_PHYSCAPS:
    case NESTOR_HC_CAP_IDENTIFY:
    case NESTOR_HC_NOTIFICATION_SIGNAL:
    case NESTOR_HC_NOTIFICATION_POLL:
    case NESTOR_HC_NOTIFICATION_SET_VECTOR:
    case NESTOR_HC_VCPU_READ: return true;
    default: return false;
    }
}

}  // namespace

// PHYSCAPS comes from the caller's System, whose platform capabilities were set at boot.
u64 physcaps_answer(const Domain& caller) { return physcaps_bits(caller.system().platform()); }

CapResult<Invocation> decode(Domain& caller, const HypercallArgs& in) {
    Slot& root = caller.cspace_root();
    Invocation inv;
    inv.number = in.number;
    inv.caller = &caller;
    switch (in.number) {
    // The platform serves these and checks their used arguments; the unused must still be zero.
    case NESTOR_HC_CONSOLE_WRITE: NESTOR_CHECK(unused_from(in, 2)); return inv;
    case NESTOR_HC_YIELD: NESTOR_CHECK(unused_from(in, 0)); return inv;
    case NESTOR_HC_SHUTDOWN: NESTOR_CHECK(unused_from(in, 1)); return inv;
    case NESTOR_HC_PHYSCAPS:
    case NESTOR_HC_ABI_VERSION: NESTOR_CHECK(unused_from(in, 0)); return inv;
    case NESTOR_HC_CAP_COPY: return decode_copy(root, in, inv);
    case NESTOR_HC_CAP_MINT: return decode_mint(root, in, inv);
    case NESTOR_HC_CAP_MOVE: return decode_move(root, in, inv);
    case NESTOR_HC_CAP_DELETE:
    case NESTOR_HC_CAP_REVOKE: return decode_slot_op(root, in, inv, NESTOR_RIGHT_CNODE_WRITE);
    case NESTOR_HC_CAP_IDENTIFY: return decode_identify(root, in, inv);
    case NESTOR_HC_UNTYPED_RETYPE: return decode_retype(root, in, inv);
    case NESTOR_HC_DOMAIN_CREATE: return decode_domain_create(root, in, inv);
    case NESTOR_HC_DOMAIN_VCPU: return decode_domain_vcpu(root, in, inv);
    case NESTOR_HC_DOMAIN_CSPACE: return decode_domain_cspace(root, in, inv);
    case NESTOR_HC_DOMAIN_MAP: return decode_domain_map(root, in, inv);
    case NESTOR_HC_DOMAIN_UNMAP: return decode_domain_unmap(root, in, inv);
    case NESTOR_HC_NOTIFICATION_SIGNAL:
        return decode_object_call(root, in, inv, ObjectType::notification, NESTOR_RIGHT_NOTIFICATION_SIGNAL, 1);
    case NESTOR_HC_NOTIFICATION_POLL:
        return decode_object_call(root, in, inv, ObjectType::notification, NESTOR_RIGHT_NOTIFICATION_WAIT, 1);
    case NESTOR_HC_NOTIFICATION_SET_VECTOR: return decode_notification_set_vector(root, in, inv);
    case NESTOR_HC_IOPORT_ISSUE: return decode_ioport_issue(root, in, inv);
    case NESTOR_HC_IRQ_ISSUE: return decode_irq_issue(root, in, inv);
    case NESTOR_HC_IRQ_BIND: return decode_irq_bind(root, in, inv);
    case NESTOR_HC_VCPU_READ: return decode_vcpu_access(root, in, inv, NESTOR_RIGHT_VCPU_READ, 2);
    case NESTOR_HC_VCPU_WRITE: return decode_vcpu_access(root, in, inv, NESTOR_RIGHT_VCPU_WRITE, 3);
    default: return fail(Error::invalid_hypercall);
    }
}

namespace {

// A capability for a part of the target object (a vCPU, the CSpace root, a port sub-range, an
// IRQ line), derived as a child of the target's capability so revoking the target revokes it.
void install_part(Slot& parent, Slot& dest, KernelObject& part, u32 rights, const Capability* like = nullptr) {
    Capability cap = like != nullptr ? *like : Capability{};
    cap.type = part.type;
    cap.object = &part;
    cap.rights = rights;
    cap.badge = 0;
    install(dest, cap, &parent);
}

void invoke_domain_vcpu(const Invocation& inv) {
    auto& domain = static_cast<Domain&>(*inv.target->cap.object);
    install_part(*inv.target, *inv.dest, domain.vcpu(static_cast<u32>(inv.value[0])), NESTOR_RIGHTS_VALID_VCPU);
}

void invoke_domain_cspace(const Invocation& inv) {
    auto& domain = static_cast<Domain&>(*inv.target->cap.object);
    const Capability& root = domain.cspace_root().cap;
    install_part(*inv.target, *inv.dest, *root.object, root.rights, &root);
}

void invoke_ioport_issue(const Invocation& inv) {
    Capability cap = inv.target->cap;
    cap.first_port = static_cast<u32>(inv.value[0]);
    cap.port_count = static_cast<u32>(inv.value[1]);
    install(*inv.dest, cap, inv.target);
}

void invoke_irq_issue(const Invocation& inv) {
    Capability cap = inv.target->cap;
    cap.irq_control = false;
    cap.irq_line = static_cast<u32>(inv.value[0]);
    cap.rights = NESTOR_RIGHT_IRQ_BIND;  // a line cannot issue further lines
    install(*inv.dest, cap, inv.target);
}

void invoke_irq_bind(const Invocation& inv) {
    auto& irq = static_cast<Irq&>(*inv.target->cap.object);
    auto& notification = static_cast<Notification&>(*inv.other->cap.object);
    irq.bind(inv.target->cap.irq_line, notification, inv.other->cap.badge);
}

void invoke_identify(const Invocation& inv, HypercallResult& out) {
    const Capability& cap = inv.target->cap;
    out.value[0] = static_cast<u64>(cap.type);
    out.value[1] = cap.rights;
    out.value[2] = cap.type == ObjectType::cnode ? (cap.guard << 8) | cap.guard_bits : cap.badge;
}

void invoke_notification_poll(const Invocation& inv, HypercallResult& out) {
    u64 word = 0;
    bool pending = static_cast<Notification&>(*inv.target->cap.object).poll(word);
    out.value[0] = word;
    out.value[1] = pending ? 1 : 0;
}

}  // namespace

void invoke(const Invocation& inv, HypercallResult& out, Reaper& reaper) {
    out.status = NESTOR_E_OK;
    switch (inv.number) {
    case NESTOR_HC_PHYSCAPS:
    case NESTOR_HC_ABI_VERSION: out = query_result(inv.number, 0, physcaps_answer(*inv.caller)); return;
    case NESTOR_HC_CAP_COPY: copy_cap(*inv.source, *inv.dest); return;
    case NESTOR_HC_CAP_MINT: mint_cap(*inv.source, *inv.dest, inv.rights, inv.badge); return;
    case NESTOR_HC_CAP_MOVE: move_cap(*inv.source, *inv.dest, reaper); return;
    case NESTOR_HC_CAP_DELETE: delete_cap(*inv.target, reaper); return;
    case NESTOR_HC_CAP_REVOKE: revoke_cap(*inv.target, reaper); return;
    case NESTOR_HC_CAP_IDENTIFY: invoke_identify(inv, out); return;
    case NESTOR_HC_UNTYPED_RETYPE: retype(*inv.target, inv.type, inv.size_bits, *inv.dest); return;
    case NESTOR_HC_DOMAIN_CREATE: create_domain(*inv.target, inv.config, *inv.dest); return;
    case NESTOR_HC_DOMAIN_VCPU: invoke_domain_vcpu(inv); return;
    case NESTOR_HC_DOMAIN_CSPACE: invoke_domain_cspace(inv); return;
    case NESTOR_HC_DOMAIN_MAP:
        static_cast<Domain&>(*inv.target->cap.object).map(*inv.other, inv.value[0], inv.rights);
        return;
    case NESTOR_HC_DOMAIN_UNMAP: inv.target->cap.mapped_in->unmap(inv.target->cap.mapping_index); return;
    case NESTOR_HC_NOTIFICATION_SIGNAL:
        static_cast<Notification&>(*inv.target->cap.object).signal(inv.target->cap.badge);
        return;
    case NESTOR_HC_NOTIFICATION_POLL: invoke_notification_poll(inv, out); return;
    case NESTOR_HC_NOTIFICATION_SET_VECTOR:
        static_cast<Notification&>(*inv.target->cap.object).set_vector(static_cast<u8>(inv.value[0]));
        return;
    case NESTOR_HC_IOPORT_ISSUE: invoke_ioport_issue(inv); return;
    case NESTOR_HC_IRQ_ISSUE: invoke_irq_issue(inv); return;
    case NESTOR_HC_IRQ_BIND: invoke_irq_bind(inv); return;
    case NESTOR_HC_VCPU_READ:
        out.value[0] = static_cast<VCpu&>(*inv.target->cap.object).read(static_cast<u32>(inv.value[0]));
        return;
    case NESTOR_HC_VCPU_WRITE:
        static_cast<VCpu&>(*inv.target->cap.object).write(static_cast<u32>(inv.value[0]), inv.value[1]);
        return;
    default: ASSERT_UNREACHABLE();
    }
}

namespace {

// Every call that names an object: decoded into an Invocation, then invoked.
[[gnu::noinline]] Disposition dispatch_invocation(Domain& caller, const HypercallArgs& in, HypercallResult& out) {
    auto decoded = decode(caller, in);
    if (!decoded) {
        out.status = static_cast<u64>(decoded.error());
        return Disposition::done;
    }
    if (is_platform_call(in.number)) return Disposition::platform;
    // A caller always holds a reference to itself (a domain is reaped the moment its last one
    // goes), so pinning it around a call that releases nothing would change nothing.
    if (releases_nothing(in.number)) {
        ASSERT(caller.cap_refs > 0 && !caller.doomed);
        Reaper untouched;
        invoke(decoded.value(), out, untouched);
        ASSERT(untouched.empty());
        return Disposition::done;
    }
    // The caller is pinned while the call runs: revoking an untyped it was built from may take
    // its last capability, and it must not vanish before the call has finished.
    Reaper reaper;
    acquire(caller);
    invoke(decoded.value(), out, reaper);
    release(caller, reaper);
    bool caller_dies = caller.doomed;
    reaper.reap();
    return caller_dies ? Disposition::caller_destroyed : Disposition::done;
}

}  // namespace

Disposition dispatch(Domain& caller, const HypercallArgs& in, HypercallResult& out) {
    // The exit path's cheapest calls skip building an Invocation: decode would only check that
    // every argument is zero, and invoke would only answer.
    if (is_query(in.number)) {
        u64 any = 0;
        for (u64 arg : in.arg) any |= arg;
        out = query_result(in.number, any, physcaps_answer(caller));
        return Disposition::done;
    }
    out = HypercallResult{};
    return dispatch_invocation(caller, in, out);
}

}  // namespace nestor::cap
