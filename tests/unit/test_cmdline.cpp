#include <catch2/catch.hpp>
#include <string>

#include "nestor/lib/cmdline.hpp"

using nestor::cmdline_option;

static std::string value_of(const char* cmdline, const char* key, bool* found = nullptr) {
    char buf[16] = "untouched";
    bool ok = cmdline_option(cmdline, key, buf, sizeof(buf));
    if (found) *found = ok;
    return ok ? std::string(buf) : std::string("<absent>");
}

TEST_CASE("cmdline.finds_key_value") {
    CHECK(value_of("nestor.log=debug nestor.selftest=pf", "nestor.selftest") == "pf");
    CHECK(value_of("  nestor.log=debug\tx", "nestor.log") == "debug");
}

TEST_CASE("cmdline.bare_key_has_empty_value") { CHECK(value_of("quiet nestor.log=info", "quiet") == ""); }

TEST_CASE("cmdline.prefix_is_not_a_match") {
    CHECK(value_of("nestor.logx=1 nestor.lo=2", "nestor.log") == "<absent>");
    CHECK(value_of("", "nestor.log") == "<absent>");
}

TEST_CASE("cmdline.last_occurrence_wins") { CHECK(value_of("a=1 a=2", "a") == "2"); }

TEST_CASE("cmdline.value_is_truncated_to_capacity") {
    CHECK(value_of("k=0123456789abcdefXYZ", "k") == "0123456789abcde");
}

TEST_CASE("cmdline.null_inputs_are_refused") {
    char buf[4];
    CHECK_FALSE(cmdline_option(nullptr, "k", buf, sizeof(buf)));
    CHECK_FALSE(cmdline_option("k=1", "", buf, sizeof(buf)));
    CHECK_FALSE(cmdline_option("k=1", "k", buf, 0));
}
