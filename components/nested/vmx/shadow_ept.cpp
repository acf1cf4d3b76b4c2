// The shadow EPT (see shadow_ept.hpp).
#include "shadow_ept.hpp"

#include "nestor/arch/vmx_vmcs.hpp"

namespace nestor::nested::vmx {
namespace {

namespace e = intel_vmx::ept;

constexpr u64 kPageBytes = 4096;
constexpr u64 kRwx = e::read | e::write | e::execute;
// Bits 6:3 of a non-leaf entry (and of every PML4 entry with bit 7) are reserved.
constexpr u64 kNonLeafReserved = 0x78;
constexpr ShadowFormat kEptFormat{kRwx, kRwx, e::address_mask};
// Leaf memory types 2, 3 and 7 are reserved.
constexpr bool reserved_memory_type(u64 entry) {
    u64 type = (entry & e::memory_type_mask) >> e::memory_type_shift;
    return type == 2 || type == 3 || type == 7;
}
// What the violation qualification keeps of the hardware's: the access (bits 2:0), whether a
// linear address was being translated (7, 8), NMI unblocking by IRET (12).
constexpr u64 kQualificationKept = 0x7 | (u64{1} << 7) | (u64{1} << 8) | (u64{1} << 12);
constexpr u32 kRightsShift = 3;  // bits 5:3: the rights the walk found

u64 address_bits_beyond(u32 bits) { return bits >= 52 ? 0 : e::address_mask & (~u64{0} << bits); }

// The shadow's frames and format, from the domain's L0 memory.
struct EptSpace {
    explicit EptSpace(Host& host) : frames(host), space{frames, kEptFormat, kMaxShadowEptTables} {}
    HostTableFrames frames;
    ShadowSpace space;
};

// Whether `entry` (present) at `level` is malformed: an EPT misconfiguration. Execute-only and
// 1 GiB pages are not offered (EPT_VPID_CAP), so they are malformed too.
bool misconfigured(u64 entry, unsigned level, u32 physical_bits) {
    if ((entry & (e::write | e::execute)) && !(entry & e::read)) return true;
    if (entry & address_bits_beyond(physical_bits)) return true;
    bool large = level <= 3 && (entry & e::large_page);
    if (level == 4 && (entry & (e::large_page | kNonLeafReserved))) return true;
    if (level == 3 && large) return true;
    bool leaf = level == 1 || large;
    if (!leaf) return (entry & kNonLeafReserved) != 0;
    if (reserved_memory_type(entry)) return true;
    return level == 2 && (entry & 0x1FF000);  // a 2 MiB leaf's address bits 20:12
}

struct Walk {
    u64 l1_physical;  // the 4 KiB page of L1-physical memory the access reaches
    u64 rights;       // R / W / X along the walk
};

EptResult result(EptOutcome outcome, u64 qualification = 0, u64 l1_physical = 0) {
    return EptResult{outcome, qualification, l1_physical};
}

EptResult walk_l1(const ShadowEpt& s, Host& host, u64 l2_physical, u64 access, u32 bits, Walk& walk) {
    u64 table = s.l1_root;
    walk.rights = kRwx;
    for (unsigned level = kShadowLevels; level >= 1; --level) {
        u64 entry = 0;  // read once: L1 may be rewriting it
        if (!host.read(table + shadow_level_index(l2_physical, level) * sizeof(u64), &entry, sizeof(entry)))
            return result(EptOutcome::l1_table_not_ram);
        if (!(entry & kRwx)) {
            walk.rights = 0;
            break;
        }
        if (misconfigured(entry, level, bits)) return result(EptOutcome::misconfiguration);
        walk.rights &= entry & kRwx;
        if (level == 1 || (entry & e::large_page)) {
            u64 size = u64{1} << shadow_level_shift(level);
            walk.l1_physical = (entry & e::address_mask & ~(size - 1)) + (l2_physical & (size - 1) & ~(kPageBytes - 1));
            break;
        }
        table = entry & e::address_mask;
    }
    if ((access & ~walk.rights & kRwx) || walk.rights == 0)
        return result(EptOutcome::violation, (access & kQualificationKept) | (walk.rights << kRightsShift));
    return result(EptOutcome::mapped);
}

}  // namespace

void shadow_ept_drop(ShadowEpt& s, Host& host) { shadow_drop(s.tree, EptSpace(host).space); }

u64 shadow_ept_prepare(ShadowEpt& s, Host& host, u64 l1_eptp, u64 generation) {
    u64 l1_root = l1_eptp & e::address_mask;
    if (l1_root != s.l1_root || generation != s.generation) shadow_drop(s.tree, EptSpace(host).space);
    s.l1_root = l1_root;
    s.generation = generation;
    // Every VMLAUNCH / VMRESUME comes here: the frames are looked at only when there is no root.
    paddr root = s.tree.root ? s.tree.root : shadow_new_root(s.tree, EptSpace(host).space);
    if (!root) return 0;
    return root | e::memory_type_wb | (u64{3} << e::eptp_walk_length_shift);
}

EptResult shadow_ept_fault(ShadowEpt& s, Host& host, u64 l2_physical, u64 qualification, u32 bits) {
    // Four levels translate 48 bits: nothing of L1's maps an address beyond them.
    if (l2_physical >> 48) return result(EptOutcome::violation, qualification & kQualificationKept);
    Walk walk{};
    EptResult walked = walk_l1(s, host, l2_physical, qualification, bits, walk);
    if (walked.outcome != EptOutcome::mapped) return walked;
    GuestPage page = host.page(walk.l1_physical);
    bool write = qualification & e::write, fetch = qualification & e::execute;
    if (!page.ram || (write && !page.writable) || (fetch && !page.executable))
        return result(EptOutcome::l0_fault, 0, walk.l1_physical);
    u64 leaf = (page.host & e::address_mask) | e::read | (e::memory_type_wb << e::memory_type_shift) |
               ((walk.rights & e::write) && page.writable ? e::write : 0) |
               ((walk.rights & e::execute) && page.executable ? e::execute : 0);
    ShadowInstall installed = shadow_install(s.tree, EptSpace(host).space, l2_physical, leaf);
    if (installed == ShadowInstall::out_of_memory) return result(EptOutcome::out_of_memory);
    if (installed == ShadowInstall::replaced) s.tree.flush = true;  // an upgrade: the old rights may be cached
    return result(EptOutcome::mapped);
}

}  // namespace nestor::nested::vmx
