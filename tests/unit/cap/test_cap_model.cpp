// Model-based property test: thousands of random operations, run against the real runtime (via
// hypercall dispatch) and a reference model, with every invariant checked after each step.
// NESTOR_CAP_SEED changes the seed; NESTOR_CAP_STEPS the number of steps.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <memory>
#include <random>

#include "cap_model.hpp"

using namespace nestor;
using namespace nestor::cap;

namespace {

class RandomOps final : public model::OpSource {
public:
    explicit RandomOps(u64 seed) : rng_(seed) {}
    u64 next(u64 bound) override { return bound == 0 ? 0 : std::uniform_int_distribution<u64>(0, bound - 1)(rng_); }
    bool done() const override { return false; }

private:
    std::mt19937_64 rng_;
};

u64 env_or(const char* name, u64 fallback) {
    const char* value = std::getenv(name);
    return value != nullptr ? std::strtoull(value, nullptr, 0) : fallback;
}

}  // namespace

TEST_CASE("cap_model.random_ops") {
    const u64 seed = env_or("NESTOR_CAP_SEED", 0x6e6573746f72ull);
    const u64 total = env_or("NESTOR_CAP_STEPS", 20000);
    const u64 runs_per_boot = 2000;
    RandomOps ops(seed);
    u64 steps = 0, successes = 0, boots = 0, caller_deaths = 0;
    while (steps < total) {
        auto harness = std::make_unique<model::Harness>();
        ++boots;
        REQUIRE(harness->check());
        for (u64 i = 0; i < runs_per_boot && steps < total && !harness->dead(); ++i, ++steps) {
            bool ok = harness->step(ops);
            if (!ok) FAIL("seed " << seed << ": " << harness->failure());
        }
        successes += harness->successes();
        if (harness->dead()) ++caller_deaths;
        bool clean = harness->finish();
        if (!clean) FAIL("seed " << seed << ": " << harness->failure());
    }
    std::printf(
        "cap_model.random_ops: seed %#llx, %llu steps (%llu succeeded) over %llu boots, %llu ended by the "
        "boot domain destroying itself; all invariants held\n",
        static_cast<unsigned long long>(seed), static_cast<unsigned long long>(steps),
        static_cast<unsigned long long>(successes), static_cast<unsigned long long>(boots),
        static_cast<unsigned long long>(caller_deaths));
    CHECK(successes > steps / 10);
}
