#include <catch2/catch.hpp>
#include <initializer_list>
#include <vector>

#include "nestor/x86/insn_decode.hpp"

using nestor::u8;
using nestor::virt::CpuMode;
using namespace nestor::x86;

namespace {

struct Decoded {
    bool ok;
    unsigned length;
    InsnOp op;
    InsnError error;
};

// Decodes exactly the given bytes (so reading past them would be an ASan error).
Decoded decode(std::initializer_list<int> bytes, CpuMode mode, size_t available = ~size_t{0}) {
    std::vector<u8> buffer(bytes.begin(), bytes.end());
    if (available > buffer.size()) available = buffer.size();
    buffer.resize(available);
    auto result = decode_instruction(buffer.data(), buffer.size(), mode);
    if (result) return {true, result->length, result->op, InsnError::unsupported};
    return {false, 0, InsnOp::cpuid, result.error()};
}

void check_ok(std::initializer_list<int> bytes, CpuMode mode, unsigned length, InsnOp op) {
    Decoded d = decode(bytes, mode);
    INFO("op " << insn_op_name(op));
    REQUIRE(d.ok);
    CHECK(d.length == length);
    CHECK(d.op == op);
}

void check_error(std::initializer_list<int> bytes, CpuMode mode, InsnError error, size_t available = ~size_t{0}) {
    Decoded d = decode(bytes, mode, available);
    REQUIRE_FALSE(d.ok);
    CHECK(d.error == error);
}

constexpr CpuMode kAllModes[] = {CpuMode::real16, CpuMode::protected16, CpuMode::protected32, CpuMode::long64};

}  // namespace

TEST_CASE("insn.cpuid_length") {
    for (CpuMode mode : kAllModes) check_ok({0x0F, 0xA2}, mode, 2, InsnOp::cpuid);
}

TEST_CASE("insn.svm_instructions") {
    const std::pair<int, InsnOp> svm[] = {{0xD8, InsnOp::vmrun},  {0xD9, InsnOp::vmmcall}, {0xDA, InsnOp::vmload},
                                          {0xDB, InsnOp::vmsave}, {0xDC, InsnOp::stgi},    {0xDD, InsnOp::clgi},
                                          {0xDE, InsnOp::skinit}, {0xDF, InsnOp::invlpga}};
    for (auto [modrm, op] : svm)
        for (CpuMode mode : kAllModes) check_ok({0x0F, 0x01, modrm}, mode, 3, op);
}

TEST_CASE("insn.vmx_instructions") {
    check_ok({0x0F, 0x01, 0xC1}, CpuMode::long64, 3, InsnOp::vmcall);
    check_ok({0x0F, 0x01, 0xC2}, CpuMode::long64, 3, InsnOp::vmlaunch);
    check_ok({0x0F, 0x01, 0xC3}, CpuMode::long64, 3, InsnOp::vmresume);
    check_ok({0x0F, 0x01, 0xC4}, CpuMode::long64, 3, InsnOp::vmxoff);
    check_ok({0x0F, 0x78, 0xC1}, CpuMode::long64, 3, InsnOp::vmx_other);              // vmread rcx, rax
    check_ok({0x0F, 0x79, 0x44, 0x24, 0x08}, CpuMode::long64, 5, InsnOp::vmx_other);  // vmwrite rax, [rsp+8]
    check_ok({0x0F, 0xC7, 0x30}, CpuMode::long64, 3, InsnOp::vmx_other);              // vmptrld [rax]
    check_ok({0xF3, 0x0F, 0xC7, 0x34, 0x24}, CpuMode::long64, 5, InsnOp::vmx_other);  // vmxon [rsp]
    check_ok({0x66, 0x0F, 0x38, 0x80, 0x08}, CpuMode::long64, 5, InsnOp::vmx_other);  // invept rcx, [rax]
    check_error({0x0F, 0xC7, 0xF0}, CpuMode::long64, InsnError::unsupported);         // rdrand eax
}

TEST_CASE("insn.one_byte_and_msr_instructions") {
    check_ok({0xF4}, CpuMode::real16, 1, InsnOp::hlt);
    check_ok({0x0F, 0x32}, CpuMode::long64, 2, InsnOp::rdmsr);
    check_ok({0x0F, 0x30}, CpuMode::protected32, 2, InsnOp::wrmsr);
    check_ok({0x0F, 0x31}, CpuMode::long64, 2, InsnOp::rdtsc);
    check_ok({0x0F, 0x01, 0xF9}, CpuMode::long64, 3, InsnOp::rdtscp);
    check_ok({0xF3, 0x90}, CpuMode::long64, 2, InsnOp::pause);
    check_ok({0x0F, 0x09}, CpuMode::long64, 2, InsnOp::wbinvd);
    check_ok({0x0F, 0x01, 0xD1}, CpuMode::long64, 3, InsnOp::xsetbv);
    check_ok({0x0F, 0x22, 0xD8}, CpuMode::long64, 3, InsnOp::mov_cr);  // mov cr3, rax
    check_ok({0x0F, 0x22, 0x18}, CpuMode::long64, 3, InsnOp::mov_cr);  // mod field ignored: no displacement
    check_ok({0x0F, 0x21, 0xC0}, CpuMode::long64, 3, InsnOp::mov_dr);
}

TEST_CASE("insn.io_instructions") {
    check_ok({0xE6, 0xF4}, CpuMode::real16, 2, InsnOp::out);
    check_ok({0xE4, 0x60}, CpuMode::real16, 2, InsnOp::in);
    check_ok({0xEE}, CpuMode::real16, 1, InsnOp::out);
    check_ok({0x66, 0xEF}, CpuMode::real16, 2, InsnOp::out);
    check_ok({0xED}, CpuMode::long64, 1, InsnOp::in);
    check_ok({0xF3, 0x6E}, CpuMode::protected32, 2, InsnOp::outs);
    check_ok({0xF3, 0x66, 0x6D}, CpuMode::long64, 3, InsnOp::ins);
}

TEST_CASE("insn.legacy_prefixes_count") {
    check_ok({0x66, 0x0F, 0xA2}, CpuMode::real16, 3, InsnOp::cpuid);
    check_ok({0x67, 0x0F, 0xA2}, CpuMode::protected32, 3, InsnOp::cpuid);
    check_ok({0xF2, 0x0F, 0xA2}, CpuMode::long64, 3, InsnOp::cpuid);
    check_ok({0xF3, 0x0F, 0x01, 0xD9}, CpuMode::long64, 4, InsnOp::vmmcall);
    check_ok({0x2E, 0x3E, 0x26, 0x36, 0x64, 0x65, 0x0F, 0x32}, CpuMode::protected32, 8, InsnOp::rdmsr);
    check_ok({0xF0, 0x66, 0x67, 0xF4}, CpuMode::long64, 4, InsnOp::hlt);
    auto insn = decode_instruction(std::vector<u8>{0x66, 0x67, 0xF3, 0x2E, 0x0F, 0xA2}.data(), 6, CpuMode::long64);
    REQUIRE(insn);
    CHECK(insn->prefix_count == 4);
    CHECK(insn->operand_size);
    CHECK(insn->address_size);
    CHECK(insn->rep);
    CHECK(insn->segment == 0x2E);
}

TEST_CASE("insn.rex_only_in_long_mode") {
    check_ok({0x48, 0x0F, 0xA2}, CpuMode::long64, 3, InsnOp::cpuid);
    check_ok({0x41, 0x48, 0x0F, 0x32}, CpuMode::long64, 4, InsnOp::rdmsr);  // two REX: the last counts, both are bytes
    check_ok({0x48, 0x66, 0x0F, 0xA2}, CpuMode::long64, 4, InsnOp::cpuid);  // REX cancelled by a later prefix
    auto insn = decode_instruction(std::vector<u8>{0x48, 0x66, 0x0F, 0xA2}.data(), 4, CpuMode::long64);
    REQUIRE(insn);
    CHECK(insn->rex == 0);
    // Outside 64-bit mode 0x40..0x4F are INC/DEC.
    check_error({0x48, 0x0F, 0xA2}, CpuMode::protected32, InsnError::unsupported);
    check_error({0x40, 0xF4}, CpuMode::real16, InsnError::unsupported);
}

TEST_CASE("insn.modrm_16bit_addressing") {
    check_ok({0x0F, 0x01, 0x38}, CpuMode::real16, 3, InsnOp::invlpg);                        // invlpg [bx+si]
    check_ok({0x0F, 0x01, 0x3E, 0x34, 0x12}, CpuMode::real16, 5, InsnOp::invlpg);            // invlpg [0x1234]
    check_ok({0x0F, 0x01, 0x78, 0x10}, CpuMode::real16, 4, InsnOp::invlpg);                  // [bx+si+disp8]
    check_ok({0x0F, 0x01, 0xB8, 0x00, 0x10}, CpuMode::real16, 5, InsnOp::invlpg);            // [bx+si+disp16]
    check_ok({0x0F, 0x01, 0x16, 0x00, 0x20}, CpuMode::real16, 5, InsnOp::descriptor_table);  // lgdt [0x2000]
    // 67 switches a 16-bit segment to 32-bit addressing: rm=100 takes a SIB.
    check_ok({0x67, 0x0F, 0x01, 0x3C, 0x24}, CpuMode::real16, 5, InsnOp::invlpg);
}

TEST_CASE("insn.modrm_32_and_64bit_addressing") {
    check_ok({0x0F, 0x01, 0x38}, CpuMode::protected32, 3, InsnOp::invlpg);                    // [eax]
    check_ok({0x0F, 0x01, 0x3D, 1, 2, 3, 4}, CpuMode::protected32, 7, InsnOp::invlpg);        // [disp32]
    check_ok({0x0F, 0x01, 0x3C, 0x24}, CpuMode::protected32, 4, InsnOp::invlpg);              // [esp]
    check_ok({0x0F, 0x01, 0x3C, 0x25, 1, 2, 3, 4}, CpuMode::long64, 8, InsnOp::invlpg);       // [disp32] via SIB
    check_ok({0x0F, 0x01, 0x7C, 0x24, 0x08}, CpuMode::long64, 5, InsnOp::invlpg);             // [rsp+8]
    check_ok({0x0F, 0x01, 0xBC, 0x88, 1, 2, 3, 4}, CpuMode::long64, 8, InsnOp::invlpg);       // [rax+rcx*4+disp32]
    check_ok({0x0F, 0x01, 0x3D, 1, 2, 3, 4}, CpuMode::long64, 7, InsnOp::invlpg);             // [rip+disp32]
    check_ok({0x67, 0x0F, 0x01, 0x3E, 0x34, 0x12}, CpuMode::protected32, 6, InsnOp::invlpg);  // 16-bit addressing
    check_ok({0x67, 0x0F, 0x01, 0x3D, 1, 2, 3, 4}, CpuMode::long64, 8, InsnOp::invlpg);       // 32-bit addressing
}

TEST_CASE("insn.truncated_input") {
    check_error({}, CpuMode::long64, InsnError::truncated);
    check_error({0x0F}, CpuMode::long64, InsnError::truncated);
    check_error({0x0F, 0x01}, CpuMode::long64, InsnError::truncated);
    check_error({0x66, 0x67}, CpuMode::real16, InsnError::truncated);
    check_error({0xE6}, CpuMode::real16, InsnError::truncated);
    check_error({0x0F, 0x01, 0x3D, 1, 2, 3}, CpuMode::long64, InsnError::truncated);  // disp32 cut short
    check_error({0x0F, 0x01, 0x3C}, CpuMode::long64, InsnError::truncated);           // SIB missing
    check_error({0x0F, 0x01, 0xD9}, CpuMode::long64, InsnError::truncated, 2);        // only 2 of 3 bytes readable
}

TEST_CASE("insn.longer_than_15_bytes") {
    // 14 prefixes + 2 opcode bytes = 16.
    check_error({0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x0F, 0xA2},
                CpuMode::long64, InsnError::too_long);
    // 13 prefixes + 2 = 15: still legal.
    check_ok({0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x0F, 0xA2},
             CpuMode::long64, 15, InsnOp::cpuid);
    // Endless prefixes never read past 15 bytes.
    check_error({0x2E, 0x2E, 0x2E, 0x2E, 0x2E, 0x2E, 0x2E, 0x2E, 0x2E, 0x2E,
                 0x2E, 0x2E, 0x2E, 0x2E, 0x2E, 0x2E, 0x2E, 0x2E, 0x2E, 0x2E},
                CpuMode::real16, InsnError::too_long);
}

TEST_CASE("insn.unknown_opcodes_are_refused") {
    check_error({0x90}, CpuMode::long64, InsnError::unsupported);                    // plain NOP
    check_error({0xC4, 0xE2, 0x79, 0x18}, CpuMode::long64, InsnError::unsupported);  // VEX
    check_error({0x0F, 0x0B}, CpuMode::long64, InsnError::unsupported);              // UD2
    check_error({0x0F, 0x01, 0xEE}, CpuMode::long64, InsnError::unsupported);
    check_error({0x0F, 0x01, 0xF8}, CpuMode::protected32, InsnError::unsupported);  // SWAPGS outside 64-bit mode
    check_ok({0x0F, 0x01, 0xF8}, CpuMode::long64, 3, InsnOp::swapgs);
}
