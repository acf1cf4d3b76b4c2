// A domain's guest-physical memory through its mapping table (guest_memory.hpp).
#include "nestor/virt/guest_memory.hpp"

#include "nestor/platform.hpp"

namespace nestor::virt {

const cap::Mapping* GuestMemory::mapping_at(u64 gpa, u32 rights) const {
    if (!domain_) return nullptr;
    for (u32 i = 0; i < cap::Domain::kMaxMappings; ++i) {
        const cap::Mapping& m = domain_->mapping(i);
        if (m.used && gpa >= m.gpa && gpa - m.gpa < m.size) return (m.rights & rights) == rights ? &m : nullptr;
    }
    return nullptr;
}

bool GuestMemory::covered(u64 gpa, usize bytes, u32 rights) const {
    u64 end = 0;
    if (!checked_add(gpa, u64{bytes}, end)) return false;
    for (u64 at = gpa; at < end;) {
        const cap::Mapping* m = mapping_at(at, rights);
        if (!m) return false;
        at = m->gpa + m->size;  // mappings never wrap: the runtime checks them at map time
    }
    return true;
}

GuestPiece GuestMemory::piece_at(u64 gpa, usize done, usize bytes, u32 rights) const {
    const cap::Mapping& m = *mapping_at(gpa + done, rights);
    u64 offset = gpa + done - m.gpa;
    usize n = static_cast<usize>(min<u64>(bytes - done, m.size - offset));
    return GuestPiece{static_cast<u8*>(platform::physical_to_virtual(m.hpa + offset)), done, n};
}

bool GuestMemory::read(u64 gpa, void* out, usize bytes) const {
    // Within one mapping, the usual case: one lookup and one copy.
    if (const u8* host = window(gpa, bytes, NESTOR_RIGHT_MEMORY_READ)) {
        copy_bytes(out, host, bytes);
        return true;
    }
    return each_piece(gpa, bytes, NESTOR_RIGHT_MEMORY_READ,
                      [&](GuestPiece p) { copy_bytes(static_cast<u8*>(out) + p.done, p.host, p.bytes); });
}

bool GuestMemory::write(u64 gpa, const void* in, usize bytes) const {
    return each_piece(gpa, bytes, NESTOR_RIGHT_MEMORY_WRITE,
                      [&](GuestPiece p) { copy_bytes(p.host, static_cast<const u8*>(in) + p.done, p.bytes); });
}

bool GuestMemory::fill(u64 gpa, u8 value, usize bytes) const {
    return each_piece(gpa, bytes, NESTOR_RIGHT_MEMORY_WRITE, [&](GuestPiece p) { fill_bytes(p.host, value, p.bytes); });
}

u8* GuestMemory::window(u64 gpa, usize bytes, u32 rights) const {
    const cap::Mapping* m = mapping_at(gpa, rights);
    if (!m || bytes > m->size - (gpa - m->gpa)) return nullptr;
    return static_cast<u8*>(platform::physical_to_virtual(m->hpa + (gpa - m->gpa)));
}

}  // namespace nestor::virt
