// SHA-256 as FIPS 180-4 section 6.2 defines it.
#include "nestor/lib/sha256.hpp"

#include "nestor/lib/util.hpp"

namespace nestor {
namespace {

constexpr u32 kRoundConstants[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

constexpr u32 kInitialState[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                  0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

constexpr u32 rotr(u32 x, int n) { return (x >> n) | (x << (32 - n)); }

}  // namespace

bool operator==(const Sha256Digest& a, const Sha256Digest& b) {
    u8 difference = 0;
    for (usize i = 0; i < kSha256Bytes; ++i) difference |= static_cast<u8>(a.bytes[i] ^ b.bytes[i]);
    return difference == 0;
}

Sha256::Sha256() { copy_bytes(state_, kInitialState, sizeof(state_)); }

void Sha256::compress(const u8* block) {
    u32 w[64];
    for (usize t = 0; t < 16; ++t)
        w[t] = u32{block[4 * t]} << 24 | u32{block[4 * t + 1]} << 16 | u32{block[4 * t + 2]} << 8 | block[4 * t + 3];
    for (int t = 16; t < 64; ++t) {
        u32 s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
        u32 s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    u32 a = state_[0], b = state_[1], c = state_[2], d = state_[3];
    u32 e = state_[4], f = state_[5], g = state_[6], h = state_[7];
    for (int t = 0; t < 64; ++t) {
        u32 t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + kRoundConstants[t] + w[t];
        u32 t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    state_[0] += a, state_[1] += b, state_[2] += c, state_[3] += d;
    state_[4] += e, state_[5] += f, state_[6] += g, state_[7] += h;
}

void Sha256::update(const void* data, usize size) {
    const u8* bytes = static_cast<const u8*>(data);
    total_bytes_ += size;
    while (size > 0) {
        usize take = min(size, sizeof(block_) - block_used_);
        copy_bytes(block_ + block_used_, bytes, take);
        block_used_ += take;
        bytes += take;
        size -= take;
        if (block_used_ == sizeof(block_)) {
            compress(block_);
            block_used_ = 0;
        }
    }
}

Sha256Digest Sha256::finish() {
    const u64 bits = total_bytes_ * 8;
    const u8 one_bit = 0x80;
    update(&one_bit, 1);
    const u8 zero = 0;
    while (block_used_ != sizeof(block_) - 8) update(&zero, 1);
    u8 length[8];
    for (int i = 0; i < 8; ++i) length[i] = static_cast<u8>(bits >> (56 - 8 * i));
    update(length, sizeof(length));
    Sha256Digest digest;
    for (int i = 0; i < 8; ++i)
        for (int j = 0; j < 4; ++j) digest.bytes[4 * i + j] = static_cast<u8>(state_[i] >> (24 - 8 * j));
    return digest;
}

Sha256Digest sha256(const void* data, usize size) {
    Sha256 hash;
    hash.update(data, size);
    return hash.finish();
}

}  // namespace nestor
