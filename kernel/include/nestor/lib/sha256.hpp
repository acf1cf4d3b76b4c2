// SHA-256 (FIPS 180-4): the kernel checks a boot module against the digest its manifest records.
// Incremental, no allocation, no hardware access: also built into the host tools and unit tests.
#pragma once

#include "nestor/lib/types.hpp"

namespace nestor {

inline constexpr usize kSha256Bytes = 32;

struct Sha256Digest {
    u8 bytes[kSha256Bytes];
};

bool operator==(const Sha256Digest& a, const Sha256Digest& b);

class Sha256 {
public:
    Sha256();
    void update(const void* data, usize size);
    Sha256Digest finish();  // the object must not be updated afterwards

private:
    void compress(const u8* block);

    u32 state_[8];
    u8 block_[64];
    usize block_used_ = 0;
    u64 total_bytes_ = 0;
};

Sha256Digest sha256(const void* data, usize size);

}  // namespace nestor
