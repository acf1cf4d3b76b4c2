#include <catch2/catch.hpp>
#include <vector>

#include "nestor/pc/byte_ports.hpp"
#include "pc_fakes.hpp"

using namespace nestor;
using namespace nestor::pc;
using namespace nestor::pc::testing;

TEST_CASE("pc.byte_ports.wide_accesses_reach_each_byte_in_port_order") {
    std::vector<u16> read_at;
    auto read = [&](u16 port) {
        read_at.push_back(port);
        return static_cast<u8>(port);
    };
    CHECK(read_bytes(0x70, 1, read) == 0x70);
    CHECK(read_bytes(0x40, 4, read) == 0x43424140);
    CHECK(read_bytes(0xFFFF, 2, read) == 0x00FF);  // the port number wraps, as the bus's does
    CHECK(read_bytes(0x60, 0, read) == 0);
    CHECK(read_bytes(0x20, 7, read) == 0x23222120);  // never more than four
    CHECK(read_at == std::vector<u16>{0x70, 0x40, 0x41, 0x42, 0x43, 0xFFFF, 0x0000, 0x20, 0x21, 0x22, 0x23});
    std::vector<std::pair<u16, u8>> written;
    auto write = [&](u16 port, u8 byte) { written.emplace_back(port, byte); };
    write_bytes(0xA0, 2, 0x12345678, write);
    write_bytes(0x61, 0, 0xFF, write);
    write_bytes(0x80, 9, 0xAABBCCDD, write);
    CHECK(written == std::vector<std::pair<u16, u8>>{
                         {0xA0, 0x78}, {0xA1, 0x56}, {0x80, 0xDD}, {0x81, 0xCC}, {0x82, 0xBB}, {0x83, 0xAA}});
}

TEST_CASE("pc.byte_ports.timer_tsc_hz_stays_in_range") {
    CHECK(timer_tsc_hz(FakeClock(0, 2'000'000)) == 2'000'000'000);
    CHECK(timer_tsc_hz(FakeClock(0, 0)) == 1000);  // never a zero divisor
    CHECK(timer_tsc_hz(FakeClock(0, ~u64{0})) == (u64{1} << 32) * 1000);
}
