// A domain's guest-physical memory as the kernel reaches it: through the domain's mapping table
// (the memory capabilities it holds), with the rights each mapping grants. The one checked path
// from a guest-physical address to kernel memory: the loader, the platform hypercalls and the
// nested component's host services all go through it. Every range is checked for wrapping and
// for each byte's mapping and right before anything is copied.
#pragma once

#include "nestor/cap/domain.hpp"

namespace nestor::virt {

// One piece of a range: the kernel's view of `bytes` bytes at offset `done` of the range.
struct GuestPiece {
    u8* host;
    usize done;
    usize bytes;
};

class GuestMemory {
public:
    constexpr GuestMemory() = default;
    explicit constexpr GuestMemory(const cap::Domain* domain) : domain_(domain) {}

    // The mapping holding `gpa` if it grants every right in `rights` (NESTOR_RIGHT_MEMORY_*).
    const cap::Mapping* mapping_at(u64 gpa, u32 rights) const;

    // Copies [gpa, gpa + bytes) out of memory the domain may read; false (nothing copied) if
    // any byte is not.
    bool read(u64 gpa, void* out, usize bytes) const;
    // Copies into memory the domain may write; false (nothing written) if any byte may not be.
    bool write(u64 gpa, const void* in, usize bytes) const;
    bool fill(u64 gpa, u8 value, usize bytes) const;
    // The kernel's view of [gpa, gpa + bytes) when it lies in one mapping granting `rights`;
    // nullptr otherwise.
    u8* window(u64 gpa, usize bytes, u32 rights) const;

    // Calls f(GuestPiece) for each mapping-sized piece of [gpa, gpa + bytes), once the whole
    // range is known to be mapped with `rights`; false (f never called) if it is not.
    template <typename F> bool each_piece(u64 gpa, usize bytes, u32 rights, F f) const {
        if (!covered(gpa, bytes, rights)) return false;
        for (usize done = 0; done < bytes;) {
            GuestPiece piece = piece_at(gpa, done, bytes, rights);
            f(piece);
            done += piece.bytes;
        }
        return true;
    }

private:
    bool covered(u64 gpa, usize bytes, u32 rights) const;
    // The piece at offset `done` of a range covered() accepted.
    GuestPiece piece_at(u64 gpa, usize done, usize bytes, u32 rights) const;

    const cap::Domain* domain_ = nullptr;
};

}  // namespace nestor::virt
