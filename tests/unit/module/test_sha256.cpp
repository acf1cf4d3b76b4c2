// SHA-256 against the FIPS 180-4 examples (NIST's "SHA256.pdf" and the SHAVS short/long
// messages), in one piece and fed in uneven chunks that straddle the 64-byte blocks.
#include <catch2/catch.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "nestor/lib/sha256.hpp"

namespace {

std::string hex(const nestor::Sha256Digest& digest) {
    std::string out;
    char two[3];
    for (unsigned char byte : digest.bytes) {
        std::snprintf(two, sizeof(two), "%02x", byte);
        out += two;
    }
    return out;
}

std::string hash_in_chunks(const std::string& message, std::size_t chunk) {
    nestor::Sha256 hash;
    for (std::size_t at = 0; at < message.size(); at += chunk)
        hash.update(message.data() + at, std::min(chunk, message.size() - at));
    return hex(hash.finish());
}

}  // namespace

TEST_CASE("sha256.nist_vectors") {
    struct Vector {
        std::string message;
        const char* digest;
    };
    const Vector vectors[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopq"
         "rstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
        {std::string(1000000, 'a'), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
        // 55, 56 and 64 bytes: the padding fits, just does not fit, and takes a block of its own.
        {std::string(55, 'a'), "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
        {std::string(56, 'a'), "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
        {std::string(64, 'a'), "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
    };
    for (const Vector& v : vectors) {
        INFO("message of " << v.message.size() << " bytes");
        CHECK(hex(nestor::sha256(v.message.data(), v.message.size())) == v.digest);
        for (std::size_t chunk : {1u, 3u, 63u, 65u, 4096u}) CHECK(hash_in_chunks(v.message, chunk) == v.digest);
    }
}

TEST_CASE("sha256.digests_compare_by_every_byte") {
    nestor::Sha256Digest a = nestor::sha256("abc", 3);
    nestor::Sha256Digest b = a;
    CHECK(a == b);
    for (std::size_t i = 0; i < nestor::kSha256Bytes; ++i) {
        b = a;
        b.bytes[i] ^= 0x01;
        CHECK_FALSE(a == b);
    }
}
