// Untyped: a range of physical memory from which every other object is carved. Carving moves a
// watermark up; memory below it is not handed out again while anything carved from this untyped
// lives. When the last carved object dies the untyped resets to empty; freeing the most recently
// carved object rewinds the watermark to where that carve began.
#pragma once

#include "nestor/cap/object.hpp"
#include "nestor/cap/system.hpp"
#include "nestor/lib/placement_new.hpp"
#include "nestor/lib/util.hpp"

namespace nestor::cap {

struct CarveRequest {
    u64 size;
    u64 align;
};

class Untyped final : public KernelObject {
public:
    static constexpr u64 kObjectAlign = 64;
    // The header lives in the first bytes of the range it describes.
    static u64 header_bytes();

    // Makes an untyped over [base, base + size) with its header at base. size must exceed the
    // header; base must be page aligned.
    static Untyped* create_at(System& system, paddr base, u64 size);

    System& system() const { return *system_; }
    paddr base() const { return phys; }
    u64 size() const { return size_; }
    u64 capacity() const { return size_ - header_bytes(); }
    u64 watermark() const { return watermark_; }
    u64 used() const { return used_; }
    u32 children() const { return children_; }
    KernelObject* first_carved() const { return first_carved_; }

    // Whether all requests, carved in order, fit above the watermark.
    bool fits(const CarveRequest* requests, usize count) const;
    // Carves one request (which must fit) and returns its physical address; begin receives the
    // offset the carve started at (before alignment padding).
    paddr carve(const CarveRequest& request, u64& begin);
    // Records object as carved from here, charging footprint bytes.
    void adopt(KernelObject& object, u64 begin, u64 end, u64 footprint);
    // Pays back object's memory; true if this untyped is now unreferenced and must die too.
    bool give_back(KernelObject& object);

    // Builds a T in carved memory; bytes covers T and anything laid out after it.
    template <typename T, typename... Args> T* construct(paddr where, u64 bytes, Args&&... args) {
        void* memory = system_->memory().window(where, bytes);
        return new (memory) T(forward<Args>(args)...);
    }

private:
    Untyped(System& system, paddr base, u64 size);
    paddr usable_base() const { return phys + header_bytes(); }

    System* system_;
    u64 size_;
    u64 watermark_ = 0;  // offset from usable_base()
    u64 used_ = 0;
    u32 children_ = 0;
    KernelObject* first_carved_ = nullptr;
};

}  // namespace nestor::cap
