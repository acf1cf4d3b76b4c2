// A reference model of the capability runtime and a harness that drives the real runtime (through
// dispatch) and the model with one operation stream, comparing them after every step. Shared by
// the property test (random operations) and the libFuzzer target (fuzzer-chosen operations).
#pragma once

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "host_memory.hpp"
#include "nestor/abi/abi.h"
#include "nestor/cap/memory_region.hpp"
#include "nestor/cap/vcpu.hpp"

namespace nestor::cap::model {

using test::Booted;

// Where operation choices come from: a PRNG or fuzzer bytes.
class OpSource {
public:
    virtual ~OpSource() = default;
    virtual u64 next(u64 bound) = 0;  // uniform-ish in [0, bound)
    virtual bool done() const = 0;
};

struct MObject {
    ObjectType type = ObjectType::null;
    bool alive = true;
    bool doomed = false;
    KernelObject* real = nullptr;
    int source = -1;  // untyped it was carved from
    u64 begin = 0, end = 0, footprint = 0;
    u32 refs = 0;
    // untyped
    paddr usable_base = 0;
    u64 capacity = 0, watermark = 0, used = 0;
    int children = 0;
    // cnode
    u32 radix = 0;
    // domain
    std::vector<int> vcpus;
    u64 memory_limit = 0, mapped = 0;
    int root_cap = -1;  // cap in the domain's CSpace root slot
    // vcpu
    int domain = -1;
    // memory
    u64 region_size = 0;
};

struct MCap {
    bool alive = true;
    int object = -1;
    ObjectType type = ObjectType::null;
    u32 rights = 0;
    u64 badge = 0;
    u8 guard_bits = 0;
    u64 guard = 0;
    int parent = -1;
    int container = -1;  // CNode object, or the domain for its root slot (index -1)
    i64 index = 0;
    int mapped_domain = -1;
    u64 gpa = 0;
};

using SlotKey = std::pair<int, i64>;

class Harness {
public:
    static constexpr u64 kRoot = NESTOR_CSPACE_ROOT;

    explicit Harness(usize memory_bytes = 4u << 20) : booted_(memory_bytes) { adopt_boot(); }

    Booted& booted() { return booted_; }
    u64 steps() const { return steps_; }
    // The boot domain was destroyed by an operation (e.g. deleting its own capability); the
    // harness checked that nothing survived and cannot continue.
    bool dead() const { return dead_; }
    u64 successes() const { return successes_; }
    const std::string& failure() const { return failure_; }

    // One random operation on both sides; false (with failure()) on any divergence.
    bool step(OpSource& source) {
        ++steps_;
        HypercallArgs args = generate(source);
        u64 expected = predict(args);
        u64 actual =
            booted_.call(args.number, args.arg[0], args.arg[1], args.arg[2], args.arg[3], args.arg[4], args.arg[5]);
        if (expected != actual) {
            return fail_with("status mismatch for hypercall " + std::to_string(args.number) + ": model " +
                             std::to_string(expected) + " real " + std::to_string(actual) + describe(args));
        }
        if (actual != NESTOR_E_OK) return check();
        ++successes_;
        SlotKey revoked{-1, 0};
        if (args.number == NESTOR_HC_CAP_REVOKE) revoked = slot_of(args.arg[0], args.arg[1]);
        apply(args);
        if (booted_.disposition == Disposition::caller_destroyed) {
            // The boot domain lost its last capability: everything must be gone, in both.
            dead_ = true;
            u64 alive = 0;
            for (auto& o : objects_) alive += o.alive ? 1 : 0;
            if (alive != 0 || booted_.system.live_objects() != 0) {
                return fail_with("boot domain died leaving objects: model " + std::to_string(alive) + " real " +
                                 std::to_string(booted_.system.live_objects()) + " after hypercall " +
                                 std::to_string(args.number) + describe(args) + alive_objects());
            }
            return true;
        }
        if (revoked.first >= 0 && objects_[revoked.first].alive && real_slot(revoked).has_children()) {
            return fail_with("revoke left a descendant");
        }
        return check();
    }

    // Tears everything down from the boot untyped and checks nothing is left.
    // Tears everything down and checks nothing is left: first the boot domain revokes its
    // untyped (if it still holds it there), then every remaining capability is deleted.
    bool finish() {
        if (!dead_ && booted_.slot(kBootSlotUntyped).cap.object == boot_untyped_) {
            if (booted_.call(NESTOR_HC_CAP_REVOKE, kRoot, kBootSlotUntyped) != NESTOR_E_OK) {
                return fail_with("final revoke refused");
            }
        }
        while (booted_.system.live_objects() > 0) {
            // Everything alive was carved, directly or not, from the boot untyped: it is alive too.
            Slot* any = first_full_slot();
            if (any == nullptr) {
                return fail_with("leak: " + std::to_string(booted_.system.live_objects()) +
                                 " objects alive without a capability");
            }
            Reaper reaper;
            delete_cap(*any, reaper);
            reaper.reap();
        }
        return true;
    }

    // Checks every invariant on the real runtime and its agreement with the model.
    bool check() {
        if (!check_real_structure()) return false;
        return check_against_model();
    }

private:
    // --- model bookkeeping -------------------------------------------------------------------
    int new_object(const MObject& o) {
        objects_.push_back(o);
        return static_cast<int>(objects_.size()) - 1;
    }

    int install(SlotKey key, MCap cap) {
        cap.container = key.first;
        cap.index = key.second;
        cap.mapped_domain = -1;
        caps_.push_back(cap);
        int id = static_cast<int>(caps_.size()) - 1;
        slots_[key] = id;
        if (counted(key, cap)) acquire(cap.object);
        return id;
    }

    static bool counted(SlotKey key, const MCap& cap) {
        return !(cap.type == ObjectType::cnode && key.second >= 0 && key.first == cap.object);
    }

    void acquire(int object) {
        MObject& o = objects_[object];
        ++o.refs;
        if (o.type == ObjectType::vcpu) ++objects_[o.domain].refs;
    }

    void release(int object) {
        MObject& o = objects_[object];
        --o.refs;
        int owner = object;
        if (o.type == ObjectType::vcpu) {
            owner = o.domain;
            --objects_[owner].refs;
        }
        if (unreferenced(objects_[owner]) && !objects_[owner].doomed) doom(owner);
    }

    bool would_form_cycle(const MCap& cap, SlotKey dst) const {
        if (cap.type != ObjectType::cnode || dst.second < 0) return false;
        int target = dst.first;
        if (cap.object == target) return false;
        std::vector<int> work{cap.object};
        std::vector<bool> seen(objects_.size(), false);
        seen[cap.object] = true;
        while (!work.empty()) {
            int node = work.back();
            work.pop_back();
            for (auto it = slots_.lower_bound({node, 0}); it != slots_.end() && it->first.first == node; ++it) {
                const MCap& held = caps_[it->second];
                if (held.type != ObjectType::cnode || seen[held.object]) continue;
                if (held.object == target) return true;
                seen[held.object] = true;
                work.push_back(held.object);
            }
        }
        return false;
    }

    static bool unreferenced(const MObject& o) {
        return o.refs == 0 && (o.type != ObjectType::untyped || o.children == 0);
    }

    void doom(int id) {
        objects_[id].doomed = true;
        doomed_.push_back(id);
    }

    void unmap(int cap_id) {
        MCap& c = caps_[cap_id];
        objects_[c.mapped_domain].mapped -= objects_[c.object].region_size;
        c.mapped_domain = -1;
    }

    void clear(int cap_id) {
        MCap& c = caps_[cap_id];
        if (c.mapped_domain >= 0) unmap(cap_id);
        for (auto& other : caps_) {
            if (other.alive && other.parent == cap_id) other.parent = c.parent;
        }
        SlotKey key{c.container, c.index};
        slots_.erase(key);
        c.alive = false;
        if (counted(key, c)) release(c.object);
    }

    void give_back(int id) {
        MObject& o = objects_[id];
        o.alive = false;
        if (o.source < 0) return;
        MObject& u = objects_[o.source];
        --u.children;
        u.used -= o.footprint;
        u.watermark = 0;
        for (auto& other : objects_) {
            if (other.alive && other.source == o.source) u.watermark = std::max(u.watermark, other.end);
        }
        if (unreferenced(u) && !u.doomed) doom(o.source);
    }

    void reap() {
        while (!doomed_.empty()) {
            int id = doomed_.back();
            doomed_.pop_back();
            MObject& o = objects_[id];
            if (o.type == ObjectType::cnode) {
                for (i64 i = 0; i < (i64{1} << o.radix); ++i) {
                    auto it = slots_.find({id, i});
                    if (it != slots_.end()) clear(it->second);
                }
            } else if (o.type == ObjectType::domain) {
                for (usize c = 0; c < caps_.size(); ++c) {
                    if (caps_[c].alive && caps_[c].mapped_domain == id) unmap(static_cast<int>(c));
                }
                auto it = slots_.find({id, -1});
                if (it != slots_.end()) clear(it->second);
                for (int v : objects_[id].vcpus) give_back(v);
            }
            give_back(id);
        }
    }

    void revoke(int cap_id) {
        for (;;) {
            int leaf = -1;
            for (usize c = 0; c < caps_.size() && leaf < 0; ++c) {
                if (caps_[c].alive && descends(static_cast<int>(c), cap_id)) leaf = static_cast<int>(c);
            }
            if (leaf < 0) break;
            clear(leaf);
        }
    }

    bool descends(int cap, int ancestor) const {
        for (int at = caps_[cap].parent; at >= 0; at = caps_[at].parent) {
            if (at == ancestor) return true;
        }
        return false;
    }

    // Carves like the runtime does; false if it does not fit.
    static bool place(const MObject& u, u64& offset, const CarveRequest& r, paddr& at) {
        u64 start = u.usable_base + offset;
        u64 aligned = align_up(start, r.align);
        u64 end = aligned + r.size;
        if (end - u.usable_base > u.capacity) return false;
        at = aligned;
        offset = end - u.usable_base;
        return true;
    }

    bool fits(int untyped, const std::vector<CarveRequest>& plan) const {
        u64 offset = objects_[untyped].watermark;
        paddr at = 0;
        for (auto& r : plan) {
            if (!place(objects_[untyped], offset, r, at)) return false;
        }
        return true;
    }

    // Carves one object from plan parts; returns its id with begin/end/footprint/phys set.
    int carve(int untyped, ObjectType type, const std::vector<CarveRequest>& parts, paddr& first_at) {
        MObject& u = objects_[untyped];
        MObject o;
        o.type = type;
        o.source = untyped;
        o.begin = u.watermark;
        for (usize i = 0; i < parts.size(); ++i) {
            paddr at = 0;
            place(u, u.watermark, parts[i], at);
            if (i == 0) first_at = at;
            o.footprint += parts[i].size;
        }
        o.end = u.watermark;
        u.used += o.footprint;
        ++u.children;
        return new_object(o);
    }

    static std::vector<CarveRequest> plan_for(ObjectType type, u32 bits) {
        CarveRequest r[2];
        usize n = carve_plan(type, bits, r);
        return std::vector<CarveRequest>(r, r + n);
    }

    // --- boot --------------------------------------------------------------------------------
    void adopt_boot() {
        Domain& d = *booted_.root;
        Untyped& u = booted_.untyped();
        boot_untyped_ = &u;
        MObject mu;
        mu.type = ObjectType::untyped;
        mu.real = &u;
        mu.usable_base = u.base() + Untyped::header_bytes();
        mu.capacity = u.capacity();
        mu.watermark = u.watermark();
        mu.used = u.used();
        int uid = new_object(mu);
        // The boot objects, identified from the real runtime once.
        std::map<KernelObject*, int> ids;
        ids[&u] = uid;
        for (KernelObject* k = u.first_carved(); k != nullptr; k = k->next_carved) {
            MObject o;
            o.type = k->type;
            o.real = k;
            o.source = uid;
            o.begin = k->carve_begin;
            o.end = k->carve_end;
            o.footprint = k->footprint;
            if (k->type == ObjectType::cnode) o.radix = static_cast<CNode*>(k)->radix_bits();
            ids[k] = new_object(o);
            ++objects_[uid].children;
        }
        int did = ids[&d];
        domain_of_root_ = did;
        objects_[did].memory_limit = d.config().memory_bytes;
        for (u32 i = 0; i < d.vcpu_count(); ++i) {
            int v = ids[&d.vcpu(i)];
            objects_[did].vcpus.push_back(v);
            objects_[v].domain = did;
        }
        root_cnode_ = ids[d.cspace_root().cap.object];
        // Caps: the domain's root slot and the root CNode's slots, parents resolved afterwards.
        std::map<Slot*, int> cap_of;
        auto adopt_cap = [&](Slot& s, SlotKey key) {
            MCap c;
            c.object = ids[s.cap.object];
            c.type = s.cap.type;
            c.rights = s.cap.rights;
            c.badge = s.cap.badge;
            c.guard_bits = s.cap.guard_bits;
            c.guard = s.cap.guard;
            cap_of[&s] = install(key, c);
        };
        adopt_cap(d.cspace_root(), {did, -1});
        CNode& root = booted_.root_cnode();
        for (u64 i = 0; i < root.slot_count(); ++i) {
            if (!root.slot(i).empty()) adopt_cap(root.slot(i), {root_cnode_, static_cast<i64>(i)});
        }
        for (auto& [slot, id] : cap_of) caps_[id].parent = slot->cdt_parent ? cap_of.at(slot->cdt_parent) : -1;
        objects_[did].root_cap = cap_of[&d.cspace_root()];
    }

    // --- operation generation ----------------------------------------------------------------
    // Half the time an occupied slot of the root CNode, so most operations get past decoding.
    u64 pick_slot_index(OpSource& s) {
        if (s.next(2) == 0 && root_cnode_ >= 0) {
            std::vector<u64> occupied;
            for (auto it = slots_.lower_bound({root_cnode_, 0}); it != slots_.end() && it->first.first == root_cnode_;
                 ++it) {
                occupied.push_back(static_cast<u64>(it->first.second));
            }
            if (!occupied.empty()) return occupied[s.next(occupied.size())];
        }
        return s.next(8) == 0 ? s.next(70) : s.next(64);
    }
    u64 pick_cnode(OpSource& s) { return s.next(4) == 0 ? pick_slot_index(s) : kRoot; }
    // Half the time an empty slot of the root CNode, for destinations.
    u64 pick_free_index(OpSource& s, u64 cnode) {
        if (cnode == kRoot && s.next(2) == 0) {
            std::vector<u64> free;
            for (u64 i = 0; i < 64; ++i) {
                if (cap_at({root_cnode_, static_cast<i64>(i)}) < 0) free.push_back(i);
            }
            if (!free.empty()) return free[s.next(free.size())];
        }
        return pick_index(s, cnode);
    }
    u64 pick_index(OpSource& s, u64 cnode) { return cnode == kRoot ? pick_slot_index(s) : s.next(9); }

    HypercallArgs generate(OpSource& s) {
        static constexpr u64 kCalls[] = {
            NESTOR_HC_CAP_COPY,    NESTOR_HC_CAP_MINT,       NESTOR_HC_CAP_MOVE,       NESTOR_HC_CAP_DELETE,
            NESTOR_HC_CAP_REVOKE,  NESTOR_HC_UNTYPED_RETYPE, NESTOR_HC_UNTYPED_RETYPE, NESTOR_HC_DOMAIN_CREATE,
            NESTOR_HC_DOMAIN_VCPU, NESTOR_HC_DOMAIN_MAP,     NESTOR_HC_DOMAIN_UNMAP,   NESTOR_HC_DOMAIN_CSPACE,
            NESTOR_HC_CAP_COPY,    NESTOR_HC_CAP_MINT,
        };
        HypercallArgs a;
        a.number = kCalls[s.next(sizeof(kCalls) / sizeof(kCalls[0]))];
        switch (a.number) {
        case NESTOR_HC_CAP_COPY:
        case NESTOR_HC_CAP_MOVE:
        case NESTOR_HC_CAP_MINT:
            a.arg[0] = pick_cnode(s);
            a.arg[1] = pick_index(s, a.arg[0]);
            a.arg[2] = pick_cnode(s);
            a.arg[3] = pick_free_index(s, a.arg[2]);
            if (a.number == NESTOR_HC_CAP_MINT) {
                a.arg[4] = s.next(16) == 0 ? s.next(u64{1} << 34) : s.next(8);
                u64 kind = s.next(4);
                a.arg[5] = kind == 0 ? s.next(4) : kind == 1 ? NESTOR_CNODE_GUARD(s.next(64), s.next(4)) : 0;
            }
            break;
        case NESTOR_HC_CAP_DELETE:
        case NESTOR_HC_CAP_REVOKE:
        case NESTOR_HC_DOMAIN_UNMAP:
            a.arg[0] = pick_cnode(s);
            a.arg[1] = pick_index(s, a.arg[0]);
            break;
        default: break;
        }
        // The boot domain deleting its own capability or untyped ends a run: keep that rare.
        bool destructive =
            a.number == NESTOR_HC_CAP_DELETE || a.number == NESTOR_HC_CAP_REVOKE || a.number == NESTOR_HC_CAP_MOVE;
        if (destructive && a.arg[0] == kRoot && (a.arg[1] == kBootSlotUntyped || a.arg[1] == kBootSlotDomain) &&
            s.next(64) != 0) {
            a.arg[1] = kBootFirstFreeSlot + s.next(64 - kBootFirstFreeSlot);
        }
        switch (a.number) {
        case NESTOR_HC_UNTYPED_RETYPE: {
            static constexpr u32 kTypes[] = {NESTOR_CAP_CNODE, NESTOR_CAP_MEMORY, NESTOR_CAP_NOTIFICATION,
                                             NESTOR_CAP_UNTYPED, NESTOR_CAP_DOMAIN};
            a.arg[0] = pick_slot_index(s);
            a.arg[1] = s.next(32) == 0 ? s.next(12) : kTypes[s.next(5)];
            switch (a.arg[1]) {
            case NESTOR_CAP_CNODE: a.arg[2] = s.next(5); break;
            case NESTOR_CAP_MEMORY: a.arg[2] = 11 + s.next(4); break;
            case NESTOR_CAP_UNTYPED: a.arg[2] = 11 + s.next(9); break;
            default: a.arg[2] = s.next(8) == 0 ? 1 : 0; break;
            }
            a.arg[3] = pick_cnode(s);
            a.arg[4] = pick_free_index(s, a.arg[3]);
            break;
        }
        case NESTOR_HC_DOMAIN_CREATE:
            a.arg[0] = pick_slot_index(s);
            a.arg[1] = pick_cnode(s);
            a.arg[2] = pick_free_index(s, a.arg[1]);
            a.arg[3] = NESTOR_DOMAIN_CREATE_PACK(s.next(4), s.next(4), s.next(3), s.next(8) == 0 ? 1 : 0);
            a.arg[4] = (1 + s.next(8)) * kPageSize * 4;
            break;
        case NESTOR_HC_DOMAIN_VCPU:
            a.arg[0] = pick_slot_index(s);
            a.arg[1] = s.next(3);
            a.arg[2] = pick_cnode(s);
            a.arg[3] = pick_free_index(s, a.arg[2]);
            break;
        case NESTOR_HC_DOMAIN_CSPACE:
            a.arg[0] = pick_slot_index(s);
            a.arg[1] = pick_cnode(s);
            a.arg[2] = pick_free_index(s, a.arg[1]);
            break;
        case NESTOR_HC_DOMAIN_MAP:
            a.arg[0] = pick_slot_index(s);
            a.arg[1] = pick_slot_index(s);
            a.arg[2] = s.next(16) * kPageSize + (s.next(32) == 0 ? 1 : 0);
            a.arg[3] = s.next(9);
            break;
        default: break;
        }
        return a;
    }

    // --- the model's decode: the expected status ---------------------------------------------
    struct Lookup {
        u64 status = NESTOR_E_OK;
        SlotKey key{-1, 0};
        int cap = -1;  // the cap in that slot, or -1
    };

    int cap_at(SlotKey key) const {
        auto it = slots_.find(key);
        return it == slots_.end() ? -1 : it->second;
    }

    Lookup resolve_slot(u64 cnode, u64 index, u32 needed) const {
        Lookup r;
        int cnode_cap = -1;
        if (cnode == kRoot) {
            cnode_cap = objects_[booted_domain()].root_cap;
            if (cnode_cap < 0) return {NESTOR_E_LOOKUP_FAILED};
        } else {
            Lookup c = resolve_object(cnode, ObjectType::cnode, 0);
            if (c.status != NESTOR_E_OK) return c;
            cnode_cap = c.cap;
        }
        if (cnode == kRoot && caps_[cnode_cap].type != ObjectType::cnode) return {NESTOR_E_LOOKUP_FAILED};
        if ((caps_[cnode_cap].rights & needed) != needed) return {NESTOR_E_INSUFFICIENT_RIGHTS};
        const MObject& cn = objects_[caps_[cnode_cap].object];
        if (index >= (u64{1} << cn.radix)) return {NESTOR_E_INDEX_OUT_OF_RANGE};
        r.key = {caps_[cnode_cap].object, static_cast<i64>(index)};
        r.cap = cap_at(r.key);
        return r;
    }

    Lookup resolve_object(u64 cptr, ObjectType type, u32 rights) const {
        int root_cap = objects_[booted_domain()].root_cap;
        if (root_cap < 0) return {NESTOR_E_LOOKUP_FAILED};
        const MObject& root = objects_[caps_[root_cap].object];
        if (cptr >= (u64{1} << root.radix)) return {NESTOR_E_GUARD_MISMATCH};
        Lookup r;
        r.key = {caps_[root_cap].object, static_cast<i64>(cptr)};
        r.cap = cap_at(r.key);
        if (r.cap < 0) return {NESTOR_E_SLOT_EMPTY};
        if (caps_[r.cap].type != type) return {NESTOR_E_WRONG_TYPE};
        if ((caps_[r.cap].rights & rights) != rights) return {NESTOR_E_INSUFFICIENT_RIGHTS};
        return r;
    }

    Lookup empty_slot(u64 cnode, u64 index) const {
        Lookup r = resolve_slot(cnode, index, NESTOR_RIGHT_CNODE_WRITE);
        if (r.status == NESTOR_E_OK && r.cap >= 0) return {NESTOR_E_SLOT_OCCUPIED};
        return r;
    }

    int booted_domain() const { return domain_of_root_; }

    u64 predict_transfer(const HypercallArgs& a, u32 source_rights, Lookup& src, Lookup& dst) const {
        src = resolve_slot(a.arg[0], a.arg[1], source_rights);
        if (src.status) return src.status;
        dst = resolve_slot(a.arg[2], a.arg[3], NESTOR_RIGHT_CNODE_WRITE);
        if (dst.status) return dst.status;
        if (src.key == dst.key) return NESTOR_E_SAME_SLOT;
        if (src.cap < 0) return NESTOR_E_SLOT_EMPTY;
        if (dst.cap >= 0) return NESTOR_E_SLOT_OCCUPIED;
        return NESTOR_E_OK;
    }

    u64 predict_mint(const MCap& src, u64 rights, u64 badge) const {
        if (rights > 0xffffffffu || (rights & ~u64{valid_rights(src.type)}) != 0) return NESTOR_E_INVALID_RIGHTS;
        if ((rights & ~u64{src.rights}) != 0) return NESTOR_E_RIGHTS_ESCALATION;
        if (src.type == ObjectType::notification) {
            return badge != 0 && src.badge != 0 && badge != src.badge ? NESTOR_E_BADGE_ALREADY_SET : NESTOR_E_OK;
        }
        if (src.type == ObjectType::cnode) {
            u64 bits = badge & 0x7f, value = badge >> 8;
            if ((badge & 0x80) || bits + objects_[src.object].radix > 64 || (bits < 64 && (value >> bits) != 0)) {
                return NESTOR_E_INVALID_GUARD;
            }
            return NESTOR_E_OK;
        }
        return badge != 0 ? NESTOR_E_BADGE_NOT_SUPPORTED : NESTOR_E_OK;
    }

    u64 predict_retype(const HypercallArgs& a) const {
        Lookup u = resolve_object(a.arg[0], ObjectType::untyped, NESTOR_RIGHT_UNTYPED_RETYPE);
        if (u.status) return u.status;
        Lookup d = empty_slot(a.arg[3], a.arg[4]);
        if (d.status) return d.status;
        u64 type = a.arg[1], bits = a.arg[2];
        if (type >= NESTOR_CAP_TYPE_COUNT) return NESTOR_E_INVALID_TYPE;
        switch (type) {
        case NESTOR_CAP_UNTYPED:
            if (bits < 12 || bits > 47 || (u64{1} << bits) <= Untyped::header_bytes()) return NESTOR_E_INVALID_SIZE;
            break;
        case NESTOR_CAP_CNODE:
            if (bits < 1 || bits > 12) return NESTOR_E_INVALID_SIZE;
            break;
        case NESTOR_CAP_MEMORY:
            if (bits < 12 || bits > 30) return NESTOR_E_INVALID_SIZE;
            break;
        case NESTOR_CAP_NOTIFICATION:
            if (bits != 0) return NESTOR_E_INVALID_SIZE;
            break;
        default: return NESTOR_E_INVALID_TYPE;
        }
        if (!fits(caps_[u.cap].object, plan_for(static_cast<ObjectType>(type), static_cast<u32>(bits)))) {
            return NESTOR_E_UNTYPED_EXHAUSTED;
        }
        return NESTOR_E_OK;
    }

    std::vector<CarveRequest> domain_plan(const DomainConfig& c) const {
        std::vector<CarveRequest> plan = plan_for(ObjectType::domain, 0);
        auto cn = plan_for(ObjectType::cnode, c.cspace_bits);
        plan.insert(plan.end(), cn.begin(), cn.end());
        for (u32 i = 0; i < c.vcpus; ++i) plan.push_back(plan_for(ObjectType::vcpu, 0)[0]);
        return plan;
    }

    u64 predict_create(const HypercallArgs& a) const {
        Lookup u = resolve_object(a.arg[0], ObjectType::untyped, NESTOR_RIGHT_UNTYPED_RETYPE);
        if (u.status) return u.status;
        Lookup d = empty_slot(a.arg[1], a.arg[2]);
        if (d.status) return d.status;
        DomainConfig c = unpack_domain_config(a.arg[3], a.arg[4]);
        if (c.vcpus == 0) return NESTOR_E_CFG_NO_VCPUS;
        if (c.cspace_bits < 1 || c.cspace_bits > 12) return NESTOR_E_CFG_CSPACE_SIZE;
        if (c.flags && c.cpuid_policy == NESTOR_CPUID_POLICY_MINIMAL) return NESTOR_E_CFG_NESTED_VIRT_CPUID_CONFLICT;
        if (!fits(caps_[u.cap].object, domain_plan(c))) return NESTOR_E_UNTYPED_EXHAUSTED;
        return NESTOR_E_OK;
    }

    u64 predict_map(const HypercallArgs& a) const {
        Lookup d = resolve_object(a.arg[0], ObjectType::domain, NESTOR_RIGHT_DOMAIN_MAP);
        if (d.status) return d.status;
        Lookup m = resolve_object(a.arg[1], ObjectType::memory, 0);
        if (m.status) return m.status;
        u64 rights = a.arg[3];
        if (rights == 0 || (rights & ~u64{NESTOR_RIGHTS_VALID_MEMORY}) != 0) return NESTOR_E_INVALID_RIGHTS;
        if ((rights & ~u64{caps_[m.cap].rights}) != 0) return NESTOR_E_INSUFFICIENT_RIGHTS;
        if (caps_[m.cap].mapped_domain >= 0) return NESTOR_E_ALREADY_MAPPED;
        int dom = caps_[d.cap].object;
        u64 gpa = a.arg[2], size = objects_[caps_[m.cap].object].region_size;
        if (gpa % kPageSize != 0) return NESTOR_E_INVALID_GPA;
        int used = 0;
        for (auto& c : caps_) {
            if (!c.alive || c.mapped_domain != dom) continue;
            ++used;
            u64 other = objects_[c.object].region_size;
            if (gpa < c.gpa + other && c.gpa < gpa + size) return NESTOR_E_MAPPING_OVERLAP;
        }
        if (size > objects_[dom].memory_limit - objects_[dom].mapped) return NESTOR_E_MEMORY_LIMIT;
        if (used >= static_cast<int>(Domain::kMaxMappings)) return NESTOR_E_MAPPING_TABLE_FULL;
        return NESTOR_E_OK;
    }

    u64 predict(const HypercallArgs& a) const {
        Lookup src, dst;
        switch (a.number) {
        case NESTOR_HC_CAP_COPY:
        case NESTOR_HC_CAP_MOVE: {
            u32 needed = a.number == NESTOR_HC_CAP_COPY ? NESTOR_RIGHT_CNODE_READ : NESTOR_RIGHT_CNODE_WRITE;
            u64 s = predict_transfer(a, needed, src, dst);
            if (s) return s;
            return would_form_cycle(caps_[src.cap], dst.key) ? NESTOR_E_CNODE_CYCLE : NESTOR_E_OK;
        }
        case NESTOR_HC_CAP_MINT: {
            u64 s = predict_transfer(a, NESTOR_RIGHT_CNODE_READ, src, dst);
            if (!s) s = predict_mint(caps_[src.cap], a.arg[4], a.arg[5]);
            if (s) return s;
            return would_form_cycle(caps_[src.cap], dst.key) ? NESTOR_E_CNODE_CYCLE : NESTOR_E_OK;
        }
        case NESTOR_HC_CAP_DELETE:
        case NESTOR_HC_CAP_REVOKE:
        case NESTOR_HC_DOMAIN_UNMAP: {
            Lookup l = resolve_slot(a.arg[0], a.arg[1], NESTOR_RIGHT_CNODE_WRITE);
            if (l.status) return l.status;
            if (l.cap < 0) return NESTOR_E_SLOT_EMPTY;
            if (a.number != NESTOR_HC_DOMAIN_UNMAP) return NESTOR_E_OK;
            if (caps_[l.cap].type != ObjectType::memory) return NESTOR_E_WRONG_TYPE;
            return caps_[l.cap].mapped_domain >= 0 ? NESTOR_E_OK : NESTOR_E_NOT_MAPPED;
        }
        case NESTOR_HC_UNTYPED_RETYPE: return predict_retype(a);
        case NESTOR_HC_DOMAIN_CREATE: return predict_create(a);
        case NESTOR_HC_DOMAIN_VCPU: {
            Lookup d = resolve_object(a.arg[0], ObjectType::domain, NESTOR_RIGHT_DOMAIN_CONTROL);
            if (d.status) return d.status;
            Lookup t = empty_slot(a.arg[2], a.arg[3]);
            if (t.status) return t.status;
            return a.arg[1] < objects_[caps_[d.cap].object].vcpus.size() ? NESTOR_E_OK : NESTOR_E_INDEX_OUT_OF_RANGE;
        }
        case NESTOR_HC_DOMAIN_CSPACE: {
            Lookup d = resolve_object(a.arg[0], ObjectType::domain, NESTOR_RIGHT_DOMAIN_CONTROL);
            if (d.status) return d.status;
            Lookup t = empty_slot(a.arg[1], a.arg[2]);
            if (t.status) return t.status;
            int root = objects_[caps_[d.cap].object].root_cap;
            if (root < 0) return NESTOR_E_SLOT_EMPTY;
            return would_form_cycle(caps_[root], t.key) ? NESTOR_E_CNODE_CYCLE : NESTOR_E_OK;
        }
        case NESTOR_HC_DOMAIN_MAP: return predict_map(a);
        default: return NESTOR_E_INVALID_HYPERCALL;
        }
    }

    SlotKey slot_of(u64 cnode, u64 index) const { return resolve_slot(cnode, index, 0).key; }

    // --- the model's invoke ------------------------------------------------------------------
    void apply(const HypercallArgs& a) {
        Lookup src, dst;
        switch (a.number) {
        case NESTOR_HC_CAP_COPY: {
            predict_transfer(a, 0, src, dst);
            MCap c = caps_[src.cap];
            c.parent = src.cap;
            install(dst.key, c);
            break;
        }
        case NESTOR_HC_CAP_MINT: {
            predict_transfer(a, 0, src, dst);
            MCap c = caps_[src.cap];
            c.parent = src.cap;
            c.rights = static_cast<u32>(a.arg[4]);
            if (c.type == ObjectType::notification && a.arg[5] != 0) c.badge = a.arg[5];
            if (c.type == ObjectType::cnode) {
                c.guard_bits = static_cast<u8>(a.arg[5] & 0x7f);
                c.guard = a.arg[5] >> 8;
            }
            install(dst.key, c);
            break;
        }
        case NESTOR_HC_CAP_MOVE: {
            predict_transfer(a, 0, src, dst);
            MCap& c = caps_[src.cap];
            bool was_counted = counted(src.key, c);
            slots_.erase(src.key);
            c.container = dst.key.first;
            c.index = dst.key.second;
            slots_[dst.key] = src.cap;
            bool is_counted = counted(dst.key, c);
            if (is_counted && !was_counted) acquire(c.object);
            if (was_counted && !is_counted) release(c.object);
            reap();
            break;
        }
        case NESTOR_HC_CAP_DELETE:
            clear(cap_at(slot_of(a.arg[0], a.arg[1])));
            reap();
            break;
        case NESTOR_HC_CAP_REVOKE:
            revoke(cap_at(slot_of(a.arg[0], a.arg[1])));
            reap();
            break;
        case NESTOR_HC_DOMAIN_UNMAP: unmap(cap_at(slot_of(a.arg[0], a.arg[1]))); break;
        case NESTOR_HC_UNTYPED_RETYPE: apply_retype(a); break;
        case NESTOR_HC_DOMAIN_CREATE: apply_create(a); break;
        case NESTOR_HC_DOMAIN_VCPU: {
            Lookup d = resolve_object(a.arg[0], ObjectType::domain, 0);
            MCap c;
            c.object = objects_[caps_[d.cap].object].vcpus[a.arg[1]];
            c.type = ObjectType::vcpu;
            c.rights = NESTOR_RIGHTS_VALID_VCPU;
            c.parent = d.cap;
            install(slot_of(a.arg[2], a.arg[3]), c);
            break;
        }
        case NESTOR_HC_DOMAIN_CSPACE: {
            Lookup d = resolve_object(a.arg[0], ObjectType::domain, 0);
            MCap c = caps_[objects_[caps_[d.cap].object].root_cap];
            c.parent = d.cap;
            c.badge = 0;
            install(slot_of(a.arg[1], a.arg[2]), c);
            break;
        }
        case NESTOR_HC_DOMAIN_MAP: {
            Lookup d = resolve_object(a.arg[0], ObjectType::domain, 0);
            Lookup m = resolve_object(a.arg[1], ObjectType::memory, 0);
            MCap& c = caps_[m.cap];
            c.mapped_domain = caps_[d.cap].object;
            c.gpa = a.arg[2];
            objects_[c.mapped_domain].mapped += objects_[c.object].region_size;
            break;
        }
        default: break;
        }
        refresh_root();
    }

    void apply_retype(const HypercallArgs& a) {
        Lookup u = resolve_object(a.arg[0], ObjectType::untyped, 0);
        SlotKey key = slot_of(a.arg[3], a.arg[4]);
        auto type = static_cast<ObjectType>(a.arg[1]);
        u32 bits = static_cast<u32>(a.arg[2]);
        paddr at = 0;
        int id = carve(caps_[u.cap].object, type, plan_for(type, bits), at);
        MObject& o = objects_[id];
        if (type == ObjectType::cnode) o.radix = bits;
        if (type == ObjectType::memory) o.region_size = u64{1} << bits;
        if (type == ObjectType::untyped) {
            o.usable_base = at + Untyped::header_bytes();
            o.capacity = (u64{1} << bits) - Untyped::header_bytes();
        }
        MCap c;
        c.object = id;
        c.type = type;
        c.rights = valid_rights(type);
        c.parent = u.cap;
        install(key, c);
        o.real = real_slot(key).cap.object;
        phys_[id] = at;
    }

    void apply_create(const HypercallArgs& a) {
        Lookup u = resolve_object(a.arg[0], ObjectType::untyped, 0);
        int uid = caps_[u.cap].object;
        SlotKey key = slot_of(a.arg[1], a.arg[2]);
        DomainConfig cfg = unpack_domain_config(a.arg[3], a.arg[4]);
        std::vector<CarveRequest> plan = domain_plan(cfg);
        paddr at = 0;
        int did = carve(uid, ObjectType::domain, {plan[0]}, at);
        phys_[did] = at;
        int cid = carve(uid, ObjectType::cnode, {plan[1]}, at);
        phys_[cid] = at;
        objects_[cid].radix = cfg.cspace_bits;
        objects_[did].memory_limit = cfg.memory_bytes;
        MCap root;
        root.object = cid;
        root.type = ObjectType::cnode;
        root.rights = NESTOR_RIGHTS_VALID_CNODE;
        root.guard_bits = static_cast<u8>(64 - cfg.cspace_bits);
        root.parent = u.cap;
        objects_[did].root_cap = install({did, -1}, root);
        for (u32 i = 0; i < cfg.vcpus; ++i) {
            int vid = carve(uid, ObjectType::vcpu, {plan[2 + i]}, at);
            phys_[vid] = at;
            objects_[vid].domain = did;
            objects_[did].vcpus.push_back(vid);
        }
        MCap c;
        c.object = did;
        c.type = ObjectType::domain;
        c.rights = NESTOR_RIGHTS_VALID_DOMAIN;
        c.parent = u.cap;
        install(key, c);
        auto* d = static_cast<Domain*>(real_slot(key).cap.object);
        objects_[did].real = d;
        objects_[cid].real = d->cspace_root().cap.object;
        for (u32 i = 0; i < cfg.vcpus; ++i) objects_[objects_[did].vcpus[i]].real = &d->vcpu(i);
    }

    void refresh_root() {
        // Root cap of a domain may have been deleted.
        for (usize i = 0; i < objects_.size(); ++i) {
            MObject& o = objects_[i];
            if (o.type == ObjectType::domain && o.root_cap >= 0 && !caps_[o.root_cap].alive) o.root_cap = -1;
        }
    }

    // --- comparing with the real runtime -----------------------------------------------------
    Slot& real_slot(SlotKey key) {
        MObject& o = objects_[key.first];
        if (key.second < 0) return static_cast<Domain*>(o.real)->cspace_root();
        return static_cast<CNode*>(o.real)->slot(static_cast<u64>(key.second));
    }

    bool fail_with(const std::string& what) {
        failure_ = "step " + std::to_string(steps_) + ": " + what;
        return false;
    }

    std::string alive_objects() const {
        std::string s = " alive:";
        for (usize i = 0; i < objects_.size(); ++i) {
            const MObject& o = objects_[i];
            if (!o.alive) continue;
            s += " #" + std::to_string(i) + "(type " + std::to_string(static_cast<int>(o.type)) + " refs " +
                 std::to_string(o.refs) + " children " + std::to_string(o.children) + " source " +
                 std::to_string(o.source) + " doomed " + std::to_string(o.doomed) + ")";
        }
        return s;
    }

    static std::string describe(const HypercallArgs& a) {
        std::string s = " (args";
        for (u64 v : a.arg) s += " " + std::to_string(v);
        return s + ")";
    }

    Slot* first_full_slot() {
        std::vector<Untyped*> untypeds{boot_untyped_};
        for (usize i = 0; i < untypeds.size(); ++i) {
            for (KernelObject* k = untypeds[i]->first_carved(); k != nullptr; k = k->next_carved) {
                if (k->type == ObjectType::untyped) untypeds.push_back(static_cast<Untyped*>(k));
                if (k->type == ObjectType::domain && !static_cast<Domain*>(k)->cspace_root().empty()) {
                    return &static_cast<Domain*>(k)->cspace_root();
                }
                if (k->type != ObjectType::cnode) continue;
                auto* cn = static_cast<CNode*>(k);
                for (u64 s = 0; s < cn->slot_count(); ++s) {
                    if (!cn->slot(s).empty()) return &cn->slot(s);
                }
            }
        }
        return nullptr;
    }

    // Invariants of the real runtime alone: rights, references, accounting, reachability.
    bool check_real_structure() {
        std::vector<Untyped*> untypeds{boot_untyped_};
        std::vector<Slot*> slots;
        std::map<KernelObject*, u32> refs;
        u64 objects = 1;
        for (usize i = 0; i < untypeds.size(); ++i) {
            Untyped& u = *untypeds[i];
            u64 used = 0, top = 0;
            for (KernelObject* k = u.first_carved(); k != nullptr; k = k->next_carved) {
                ++objects;
                used += k->footprint;
                top = std::max(top, k->carve_end);
                if (k->type == ObjectType::untyped) untypeds.push_back(static_cast<Untyped*>(k));
                if (k->type == ObjectType::cnode) {
                    auto* cn = static_cast<CNode*>(k);
                    for (u64 s = 0; s < cn->slot_count(); ++s) slots.push_back(&cn->slot(s));
                }
                if (k->type == ObjectType::domain) slots.push_back(&static_cast<Domain*>(k)->cspace_root());
            }
            if (used != u.used())
                return fail_with("untyped accounting off: carved " + std::to_string(used) + " used " +
                                 std::to_string(u.used()));
            if (top != u.watermark() || u.watermark() > u.capacity()) return fail_with("untyped watermark off");
        }
        if (objects != booted_.system.live_objects()) return fail_with("unreachable live object (leak)");
        for (Slot* s : slots) {
            if (s->empty()) {
                if (s->first_child || s->cdt_parent) return fail_with("empty slot in the derivation tree");
                continue;
            }
            if (!counts_as_reference(*s, s->cap)) continue;
            ++refs[s->cap.object];
            if (s->cap.type == ObjectType::vcpu) ++refs[&static_cast<VCpu*>(s->cap.object)->domain()];
            const Slot* p = s->cdt_parent;
            if (p && p->cap.object == s->cap.object && (s->cap.rights & ~p->cap.rights) != 0) {
                return fail_with("a capability has more rights than its parent");
            }
            if (s->cap.rights & ~valid_rights(s->cap.type)) return fail_with("invalid rights bits");
        }
        for (usize i = 0; i < untypeds.size(); ++i) {
            for (KernelObject* k = untypeds[i]->first_carved(); k != nullptr; k = k->next_carved) {
                if (refs[k] != k->cap_refs) return fail_with("cap_refs disagree with the slots");
                bool owned_part = k->type == ObjectType::vcpu;
                bool carrier = k->type == ObjectType::untyped && static_cast<Untyped*>(k)->children() > 0;
                if (k->cap_refs == 0 && !owned_part && !carrier)
                    return fail_with("object outlived its last capability");
            }
        }
        return true;
    }

    bool check_against_model() {
        u64 alive = 0;
        for (usize i = 0; i < objects_.size(); ++i) {
            MObject& o = objects_[i];
            if (!o.alive) continue;
            ++alive;
            if (o.real->type != o.type) return fail_with("object type differs");
            auto p = phys_.find(static_cast<int>(i));
            if (p != phys_.end() && p->second != o.real->phys) return fail_with("object placed elsewhere");
            if (o.type == ObjectType::untyped) {
                auto* u = static_cast<Untyped*>(o.real);
                if (u->used() != o.used || u->watermark() != o.watermark ||
                    u->children() != static_cast<u32>(o.children)) {
                    return fail_with("untyped state differs from the model");
                }
            }
            if (o.type == ObjectType::domain && static_cast<Domain*>(o.real)->mapped_bytes() != o.mapped) {
                return fail_with("mapped bytes differ");
            }
            if (o.type == ObjectType::cnode) {
                auto* cn = static_cast<CNode*>(o.real);
                for (u64 s = 0; s < cn->slot_count(); ++s) {
                    if (cn->slot(s).empty() != (cap_at({static_cast<int>(i), static_cast<i64>(s)}) < 0)) {
                        return fail_with("slot occupancy differs");
                    }
                }
            }
        }
        if (alive != booted_.system.live_objects()) return fail_with("live object count differs from the model");
        for (auto& [key, id] : slots_) {
            MCap& c = caps_[id];
            Slot& s = real_slot(key);
            if (s.cap.type != c.type || s.cap.rights != c.rights || s.cap.object != objects_[c.object].real) {
                return fail_with("slot contents differ");
            }
            if (c.type == ObjectType::notification && s.cap.badge != c.badge) return fail_with("badge differs");
            Slot* parent = c.parent >= 0 ? &real_slot({caps_[c.parent].container, caps_[c.parent].index}) : nullptr;
            if (s.cdt_parent != parent) return fail_with("derivation parent differs");
            Domain* mapped = c.mapped_domain >= 0 ? static_cast<Domain*>(objects_[c.mapped_domain].real) : nullptr;
            if (s.cap.mapped_in != mapped) return fail_with("mapping differs");
        }
        return true;
    }

    Booted booted_;
    std::vector<MObject> objects_;
    std::vector<MCap> caps_;
    std::map<SlotKey, int> slots_;
    std::map<int, paddr> phys_;
    std::vector<int> doomed_;
    int root_cnode_ = -1;
    Untyped* boot_untyped_ = nullptr;  // alive as long as the boot domain carved from it
    int domain_of_root_ = -1;
    bool dead_ = false;
    u64 steps_ = 0;
    u64 successes_ = 0;
    std::string failure_;
};

}  // namespace nestor::cap::model
