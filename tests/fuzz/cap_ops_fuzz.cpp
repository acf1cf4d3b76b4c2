// libFuzzer target: the fuzzer's bytes choose a stream of capability operations, which run
// against the real runtime (via hypercall dispatch) and the reference model of the property
// test; any divergence, broken invariant, sanitizer report or kernel ASSERT is a crash.
#include <cstdio>
#include <cstdlib>

#include "cap_model.hpp"

namespace {

using namespace nestor;

class ByteOps final : public cap::model::OpSource {
public:
    ByteOps(const u8* data, usize size) : data_(data), size_(size) {}
    u64 next(u64 bound) override {
        u64 value = 0;
        for (int i = 0; i < 2 && at_ < size_; ++i) value = (value << 8) | data_[at_++];
        return bound == 0 ? 0 : value % bound;
    }
    bool done() const override { return at_ >= size_; }

private:
    const u8* data_;
    usize size_;
    usize at_ = 0;
};

[[noreturn]] void report(const cap::model::Harness& harness) {
    std::fprintf(stderr, "cap_ops: %s\n", harness.failure().c_str());
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const u8* data, usize size) {
    ByteOps ops(data, size);
    cap::model::Harness harness(1u << 20);
    if (!harness.check()) report(harness);
    while (!ops.done() && !harness.dead()) {
        if (!harness.step(ops)) report(harness);
    }
    if (!harness.finish()) report(harness);
    return 0;
}
