// The MMIO operand decoder against real encodings. Every byte string here was produced (or, where
// a hand-made prefix order is tested, read back) with LLVM 19's assembler and disassembler
// (`llvm-mc-19 -show-encoding`, `llvm-mc-19 --disassemble`); the comment beside it is the
// instruction in AT&T syntax.
#include <catch2/catch.hpp>
#include <initializer_list>
#include <vector>

#include "nestor/virt/mmio_access.hpp"

using nestor::u64;
using nestor::u8;
using nestor::usize;
using namespace nestor::virt;

namespace {

constexpr auto kRead = MmioDirection::read;
constexpr auto kWrite = MmioDirection::write;

// The bytes in a buffer of exactly their size, so that reading past them is an ASan error.
std::vector<u8> bytes_of(std::initializer_list<int> bytes) { return std::vector<u8>(bytes.begin(), bytes.end()); }

MmioAccess decode_ok(std::initializer_list<int> bytes, CpuMode mode) {
    std::vector<u8> buffer = bytes_of(bytes);
    auto result = decode_mmio_instruction(buffer.data(), buffer.size(), mode);
    if (!result) FAIL("refused: " << mmio_decode_error_name(result.error()));
    return *result;
}

MmioDecodeError decode_error(std::initializer_list<int> bytes, CpuMode mode) {
    std::vector<u8> buffer = bytes_of(bytes);
    auto result = decode_mmio_instruction(buffer.data(), buffer.size(), mode);
    if (result) FAIL("decoded, length " << int{result->length});
    return result.error();
}

// A register operand: direction, memory size, register, whether it is AH..BH, instruction length.
void check_register(std::initializer_list<int> bytes, CpuMode mode, MmioDirection direction, u8 size, Gpr reg,
                    bool high_byte, u8 length) {
    MmioAccess a = decode_ok(bytes, mode);
    CHECK(a.direction == direction);
    CHECK(int{a.size} == size);
    CHECK(a.operand == MmioOperand::gpr);
    CHECK(static_cast<int>(a.reg) == static_cast<int>(reg));
    CHECK(a.high_byte == high_byte);
    CHECK(int{a.register_size} == size);
    CHECK(int{a.length} == length);
}

void check_immediate(std::initializer_list<int> bytes, CpuMode mode, u8 size, u64 immediate, u8 length) {
    MmioAccess a = decode_ok(bytes, mode);
    CHECK(a.direction == kWrite);
    CHECK(a.operand == MmioOperand::immediate);
    CHECK(int{a.size} == size);
    CHECK(a.immediate == immediate);
    CHECK(int{a.length} == length);
    VcpuState state{};
    CHECK(mmio_store_value(a, state) == immediate);
}

// A widening read (MOVZX, MOVSX, MOVSXD).
void check_widening(std::initializer_list<int> bytes, CpuMode mode, u8 size, u8 register_size, MmioExtension extension,
                    Gpr reg, u8 length) {
    MmioAccess a = decode_ok(bytes, mode);
    CHECK(a.direction == kRead);
    CHECK(int{a.size} == size);
    CHECK(int{a.register_size} == register_size);
    CHECK(a.extension == extension);
    CHECK(static_cast<int>(a.reg) == static_cast<int>(reg));
    CHECK_FALSE(a.high_byte);
    CHECK(int{a.length} == length);
}

constexpr CpuMode k64 = CpuMode::long64;
constexpr CpuMode k32 = CpuMode::protected32;
constexpr CpuMode k16 = CpuMode::real16;

}  // namespace

TEST_CASE("mmio.linux_accessors") {
    // Linux's readb..readq and writeb..writeq on x86-64 (a pointer in RDI).
    check_register({0x8B, 0x07}, k64, kRead, 4, Gpr::rax, false, 2);                // movl (%rdi), %eax
    check_register({0x89, 0x47, 0x10}, k64, kWrite, 4, Gpr::rax, false, 3);         // movl %eax, 16(%rdi)
    check_register({0x48, 0x8B, 0x07}, k64, kRead, 8, Gpr::rax, false, 3);          // movq (%rdi), %rax
    check_register({0x48, 0x89, 0x07}, k64, kWrite, 8, Gpr::rax, false, 3);         // movq %rax, (%rdi)
    check_register({0x66, 0x8B, 0x07}, k64, kRead, 2, Gpr::rax, false, 3);          // movw (%rdi), %ax
    check_register({0x66, 0x89, 0x07}, k64, kWrite, 2, Gpr::rax, false, 3);         // movw %ax, (%rdi)
    check_register({0x8A, 0x07}, k64, kRead, 1, Gpr::rax, false, 2);                // movb (%rdi), %al
    check_register({0x88, 0x07}, k64, kWrite, 1, Gpr::rax, false, 2);               // movb %al, (%rdi)
    check_register({0x64, 0x8B, 0x07}, k64, kRead, 4, Gpr::rax, false, 3);          // movl %fs:(%rdi), %eax
    check_register({0x89, 0x1D, 0xB0, 0x00, 0xE0, 0xFE}, k32, kWrite, 4, Gpr::rbx,  // movl %ebx, 0xfee000b0
                   false, 6);
}

TEST_CASE("mmio.high_byte_registers") {
    // Without REX, byte registers 4-7 are AH, CH, DH, BH: bits 15:8 of RAX, RCX, RDX, RBX.
    check_register({0x88, 0x27}, k64, kWrite, 1, Gpr::rax, true, 2);        // movb %ah, (%rdi)
    check_register({0x88, 0x7E, 0x08}, k64, kWrite, 1, Gpr::rbx, true, 3);  // movb %bh, 8(%rsi)
    check_register({0x8A, 0x2F}, k64, kRead, 1, Gpr::rcx, true, 2);         // movb (%rdi), %ch
    check_register({0x88, 0x34, 0x4B}, k32, kWrite, 1, Gpr::rdx, true, 3);  // movb %dh, (%ebx,%ecx,2)
    check_register({0x88, 0x66, 0x00}, k16, kWrite, 1, Gpr::rax, true, 3);  // movb %ah, (%bp)
    check_register({0x88, 0x66, 0x00}, CpuMode::protected16, kWrite, 1, Gpr::rax, true, 3);
    // With any REX, even 40, they are SPL, BPL, SIL, DIL.
    check_register({0x40, 0x88, 0x37}, k64, kWrite, 1, Gpr::rsi, false, 3);  // movb %sil, (%rdi)
    check_register({0x40, 0x8A, 0x3F}, k64, kRead, 1, Gpr::rdi, false, 3);   // movb (%rdi), %dil
    check_register({0x41, 0x8A, 0x27}, k64, kRead, 1, Gpr::rsp, false, 3);   // movb (%r15), %spl
    check_register({0x44, 0x88, 0x27}, k64, kWrite, 1, Gpr::r12, false, 3);  // movb %r12b, (%rdi)

    VcpuState state{};
    state.reg(Gpr::rbx) = 0x1122334455667788;
    MmioAccess bh = decode_ok({0x88, 0x7E, 0x08}, k64);
    CHECK(mmio_store_value(bh, state) == 0x77);
    MmioAccess ch = decode_ok({0x8A, 0x2F}, k64);
    state.reg(Gpr::rcx) = 0xAAAAAAAAAAAAAAAA;
    mmio_load_register(ch, state, 0x1234);  // only the low byte of the value counts
    CHECK(state.reg(Gpr::rcx) == 0xAAAAAAAAAAAA34AA);
}

TEST_CASE("mmio.rex_and_operand_size") {
    check_register({0x45, 0x8B, 0x88, 0x00, 0x10, 0x00, 0x00}, k64, kRead, 4, Gpr::r9, false, 7);  // 4096(%r8)
    check_register({0x4D, 0x89, 0x3C, 0x24}, k64, kWrite, 8, Gpr::r15, false, 4);                  // movq %r15, (%r12)
    check_register({0x46, 0x8B, 0x14, 0xA8}, k64, kRead, 4, Gpr::r10, false, 4);   // (%rax,%r13,4), %r10d
    check_register({0x66, 0x41, 0x89, 0x07}, k64, kWrite, 2, Gpr::rax, false, 4);  // movw %ax, (%r15)
    // REX.W wins over 66.
    check_register({0x66, 0x48, 0x8B, 0x07}, k64, kRead, 8, Gpr::rax, false, 4);  // movq (%rdi), %rax
    // A REX before a legacy prefix is ignored (objdump: "rex.W; mov (%rdi),%ax"); 66 still applies.
    check_register({0x48, 0x66, 0x8B, 0x07}, k64, kRead, 2, Gpr::rax, false, 4);
    check_register({0x48, 0x2E, 0x8B, 0x07}, k64, kRead, 4, Gpr::rax, false, 4);
    // Outside 64-bit mode 48 is DEC EAX, not a prefix.
    CHECK(decode_error({0x48, 0x8B, 0x07}, k32) == MmioDecodeError::unsupported);
}

TEST_CASE("mmio.addressing_forms_lengths") {
    check_register({0x8B, 0x05, 0x78, 0x56, 0x34, 0x12}, k64, kRead, 4, Gpr::rax, false, 6);        // 0x12345678(%rip)
    check_register({0x89, 0x0D, 0x20, 0x00, 0x00, 0x00}, k64, kWrite, 4, Gpr::rcx, false, 6);       // %ecx, 32(%rip)
    check_register({0x8B, 0x94, 0x24, 0x00, 0x01, 0x00, 0x00}, k64, kRead, 4, Gpr::rdx, false, 7);  // 256(%rsp)
    check_register({0x41, 0x8B, 0x45, 0x00}, k64, kRead, 4, Gpr::rax, false, 4);                    // (%r13): disp8 0
    check_register({0x8B, 0x04, 0xDD, 0x00, 0x00, 0x00, 0x00}, k64, kRead, 4, Gpr::rax, false, 7);  // (,%rbx,8)
    check_register({0x67, 0x8B, 0x04, 0x24}, k64, kRead, 4, Gpr::rax, false, 4);                    // movl (%esp), %eax
    check_register({0x65, 0x8B, 0x04, 0x25, 0x10, 0x00, 0x00, 0x00}, k64, kRead, 4, Gpr::rax, false, 8);  // %gs:16
    // The short path's forms (at most REX): an absolute address through SIB, REX.W and REX.R.
    check_register({0x8B, 0x04, 0x25, 0x30, 0x00, 0xE0, 0xFE}, k64, kRead, 4, Gpr::rax, false, 7);  // 0xfee00030
    check_register({0x4C, 0x89, 0x4C, 0x24, 0x08}, k64, kWrite, 8, Gpr::r9, false, 5);              // movq %r9, 8(%rsp)
    check_register({0x89, 0x88, 0xB0, 0x00, 0x00, 0x00}, k32, kWrite, 4, Gpr::rcx, false, 6);       // 0xb0(%eax)
    // 15 bytes, the longest an instruction may be: movq %gs:0x10000000(%eax,%ecx,4), %rax
    check_register({0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0x67, 0x48, 0x8B, 0x84, 0x88, 0x00, 0x00, 0x00, 0x10}, k64,
                   kRead, 8, Gpr::rax, false, 15);
    // One prefix more is 16 bytes: the CPU raises #GP.
    CHECK(decode_error({0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0x67, 0x48, 0x8B, 0x84, 0x88, 0x00, 0x00, 0x00, 0x10},
                       k64) == MmioDecodeError::too_long);
    // 32-bit mode: mod 00 rm 101 is an absolute disp32 (no RIP-relative form); 67 selects 16-bit forms.
    check_register({0x8B, 0x4D, 0x10}, k32, kRead, 4, Gpr::rcx, false, 3);              // 16(%ebp)
    check_register({0x66, 0x8B, 0x16}, k32, kRead, 2, Gpr::rdx, false, 3);              // movw (%esi), %dx
    check_register({0x67, 0x8B, 0x00}, k32, kRead, 4, Gpr::rax, false, 3);              // (%bx,%si)
    check_register({0x3E, 0x8B, 0x44, 0x24, 0x10}, k32, kRead, 4, Gpr::rax, false, 5);  // %ds:16(%esp)
    // 16-bit mode: 16-bit forms by default, 66 for 32-bit operands, 67 for 32-bit forms with SIB.
    check_register({0x8B, 0x07}, k16, kRead, 2, Gpr::rax, false, 2);              // movw (%bx), %ax
    check_register({0x89, 0x4C, 0x10}, k16, kWrite, 2, Gpr::rcx, false, 3);       // movw %cx, 16(%si)
    check_register({0x66, 0x8B, 0x01}, k16, kRead, 4, Gpr::rax, false, 3);        // movl (%bx,%di), %eax
    check_register({0x8B, 0x06, 0x34, 0x12}, k16, kRead, 2, Gpr::rax, false, 4);  // movw 0x1234, %ax
    check_register({0x67, 0x66, 0x8B, 0x08}, k16, kRead, 4, Gpr::rcx, false, 4);  // movl (%eax), %ecx
    check_register({0x67, 0x8B, 0x94, 0x98, 0x00, 0x01, 0x00, 0x00}, k16, kRead, 2, Gpr::rdx, false,
                   8);  // movw 256(%eax,%ebx,4), %dx
}

TEST_CASE("mmio.immediate_writes") {
    check_immediate({0xC6, 0x07, 0x5A}, k64, 1, 0x5A, 3);                                // movb $0x5a, (%rdi)
    check_immediate({0xC6, 0x47, 0x10, 0x80}, k64, 1, 0x80, 4);                          // movb $-128, 16(%rdi)
    check_immediate({0x66, 0xC7, 0x07, 0x34, 0x12}, k64, 2, 0x1234, 5);                  // movw $0x1234, (%rdi)
    check_immediate({0xC7, 0x47, 0x40, 0xEF, 0xBE, 0xAD, 0xDE}, k64, 4, 0xDEADBEEF, 7);  // movl, 64(%rdi)
    check_immediate({0x48, 0xC7, 0x07, 0xFF, 0xFF, 0xFF, 0xFF}, k64, 8, ~u64{0}, 7);     // movq $-1, (%rdi)
    check_immediate({0x48, 0xC7, 0x44, 0x4A, 0x08, 0xFF, 0xFF, 0xFF, 0x7F}, k64, 8, 0x7FFFFFFF,
                    9);  // movq $0x7fffffff, 8(%rdx,%rcx,2)
    // RIP-relative with an immediate behind the displacement; imm32 sign-extends to 64 bits.
    check_immediate({0x48, 0xC7, 0x05, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80}, k64, 8, 0xFFFFFFFF80000000,
                    11);                                                       // movq $-2147483648, 16(%rip)
    check_immediate({0xC7, 0x00, 0x01, 0x00, 0x00, 0x00}, k32, 4, 1, 6);       // movl $1, (%eax)
    check_immediate({0x66, 0xC7, 0x40, 0x04, 0xEF, 0xBE}, k32, 2, 0xBEEF, 6);  // movw $0xbeef, 4(%eax)
    check_immediate({0xC7, 0x05, 0xAA, 0x55}, k16, 2, 0x55AA, 4);              // movw $0x55aa, (%di)
    check_immediate({0x66, 0xC7, 0x47, 0x08, 0x78, 0x56, 0x34, 0x12}, k16, 4, 0x12345678, 8);  // movl, 8(%bx)
}

TEST_CASE("mmio.moffs_forms") {
    // The offset is as wide as the address: 8 bytes in 64-bit mode (4 with 67), 4 in 32-bit, 2 in 16-bit.
    check_register({0xA0, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11}, k64, kRead, 1, Gpr::rax, false, 9);
    check_register({0xA1, 0x00, 0x00, 0xD0, 0xFE, 0x00, 0x00, 0x00, 0x00}, k64, kRead, 4, Gpr::rax, false, 9);
    check_register({0x48, 0xA3, 0xB0, 0x00, 0xE0, 0xFE, 0x00, 0x00, 0x00, 0x00}, k64, kWrite, 8, Gpr::rax, false, 10);
    check_register({0x66, 0xA3, 0x10, 0x00, 0xC0, 0xFE, 0x00, 0x00, 0x00, 0x00}, k64, kWrite, 2, Gpr::rax, false, 10);
    check_register({0x67, 0xA1, 0x00, 0x00, 0xD0, 0xFE}, k64, kRead, 4, Gpr::rax, false, 6);
    check_register({0x67, 0xA2, 0x10, 0x00, 0xD0, 0xFE}, k64, kWrite, 1, Gpr::rax, false, 6);
    check_register({0xA1, 0x00, 0x00, 0xC0, 0xFE}, k32, kRead, 4, Gpr::rax, false, 5);   // movl 0xfec00000, %eax
    check_register({0xA2, 0x78, 0x56, 0x34, 0x12}, k32, kWrite, 1, Gpr::rax, false, 5);  // movb %al, 0x12345678
    check_register({0x67, 0xA1, 0x34, 0x12}, k32, kRead, 4, Gpr::rax, false, 4);
    check_register({0xA1, 0x34, 0x12}, k16, kRead, 2, Gpr::rax, false, 3);  // movw 0x1234, %ax
}

TEST_CASE("mmio.zero_and_sign_extending_reads") {
    const auto zero = MmioExtension::zero, sign = MmioExtension::sign;
    check_widening({0x0F, 0xB6, 0x07}, k64, 1, 4, zero, Gpr::rax, 3);              // movzbl (%rdi), %eax
    check_widening({0x44, 0x0F, 0xB7, 0x1F}, k64, 2, 4, zero, Gpr::r11, 4);        // movzwl (%rdi), %r11d
    check_widening({0x48, 0x0F, 0xB6, 0x07}, k64, 1, 8, zero, Gpr::rax, 4);        // movzbq (%rdi), %rax
    check_widening({0x66, 0x0F, 0xB6, 0x07}, k64, 1, 2, zero, Gpr::rax, 4);        // movzbw (%rdi), %ax
    check_widening({0x0F, 0xBE, 0x07}, k64, 1, 4, sign, Gpr::rax, 3);              // movsbl (%rdi), %eax
    check_widening({0x48, 0x0F, 0xBF, 0x0F}, k64, 2, 8, sign, Gpr::rcx, 4);        // movswq (%rdi), %rcx
    check_widening({0x48, 0x0F, 0xBE, 0x27}, k64, 1, 8, sign, Gpr::rsp, 4);        // movsbq (%rdi), %rsp: not AH
    check_widening({0x48, 0x63, 0x07}, k64, 4, 8, sign, Gpr::rax, 3);              // movslq (%rdi), %rax
    check_widening({0x4C, 0x63, 0x07}, k64, 4, 8, sign, Gpr::r8, 3);               // movslq (%rdi), %r8
    check_widening({0x0F, 0xB6, 0x17}, k32, 1, 4, zero, Gpr::rdx, 3);              // movzbl (%edi), %edx
    check_widening({0x0F, 0xBF, 0x70, 0x02}, k32, 2, 4, sign, Gpr::rsi, 4);        // movswl 2(%eax), %esi
    check_widening({0x67, 0x0F, 0xB7, 0x46, 0x00}, k32, 2, 4, zero, Gpr::rax, 5);  // movzwl (%bp), %eax
    check_widening({0x0F, 0xB6, 0x04}, k16, 1, 2, zero, Gpr::rax, 3);              // movzbw (%si), %ax
    check_widening({0x66, 0x0F, 0xBE, 0x07}, k16, 1, 4, sign, Gpr::rax, 4);        // movsbl (%bx), %eax
    // 63 is ARPL outside 64-bit mode.
    CHECK(decode_error({0x63, 0x07}, k32) == MmioDecodeError::unsupported);
}

TEST_CASE("mmio.refused_instructions") {
    using E = MmioDecodeError;
    CHECK(decode_error({0xF0, 0x83, 0x07, 0x01}, k64) == E::unsupported);  // lock addl $1, (%rdi)
    CHECK(decode_error({0xF0, 0x89, 0x07}, k64) == E::unsupported);        // LOCK MOV is #UD
    CHECK(decode_error({0xF3, 0x89, 0x07}, k64) == E::unsupported);        // F3 89: XRELEASE MOV where TSX exists
    CHECK(decode_error({0xF3, 0xA4}, k64) == E::unsupported);              // rep movsb
    CHECK(decode_error({0xAB}, k64) == E::unsupported);                    // stosl
    CHECK(decode_error({0x87, 0x07}, k64) == E::unsupported);              // xchgl %eax, (%rdi)
    CHECK(decode_error({0x8E, 0x07}, k64) == E::unsupported);              // movw (%rdi), %es
    CHECK(decode_error({0x0F, 0x38, 0xF0, 0x07}, k64) == E::unsupported);  // movbe (%rdi), %eax
    CHECK(decode_error({0xC5, 0xF9, 0x6E, 0x07}, k64) == E::unsupported);  // vmovd (%rdi), %xmm0
    CHECK(decode_error({0xC7, 0xF8, 0x00, 0x00, 0x00, 0x00}, k64) == E::unsupported);  // xbegin
    CHECK(decode_error({0xC6, 0x4F, 0x10, 0x00}, k64) == E::unsupported);              // C6 /1
    CHECK(decode_error({0x89, 0xC3}, k64) == E::no_memory_operand);                    // movl %eax, %ebx
    CHECK(decode_error({0x0F, 0xB6, 0xC0}, k64) == E::no_memory_operand);              // movzbl %al, %eax
    CHECK(decode_error({0x63, 0xC0}, k64) == E::no_memory_operand);                    // movslq %eax, %eax
    CHECK(decode_error({}, k64) == E::truncated);
    CHECK(decode_error({0x0F}, k64) == E::truncated);
    CHECK(decode_error({0x66, 0x48}, k64) == E::truncated);
    CHECK(decode_error({0xC6, 0x47, 0x10}, k64) == E::truncated);  // the immediate is missing
    CHECK(decode_error(
              {0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x8B, 0x07},
              k64) == E::too_long);
}

TEST_CASE("mmio.every_shorter_prefix_is_truncated") {
    // Cut short anywhere, a good encoding is reported truncated, never decoded from bytes beyond
    // the buffer (each cut is a buffer of exactly that size).
    const std::initializer_list<int> encodings[] = {
        {0x48, 0xC7, 0x05, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80},
        {0x48, 0xA3, 0xB0, 0x00, 0xE0, 0xFE, 0x00, 0x00, 0x00, 0x00},
        {0x65, 0x8B, 0x04, 0x25, 0x10, 0x00, 0x00, 0x00},
        {0x44, 0x0F, 0xB7, 0x1F},
        {0x66, 0xC7, 0x47, 0x08, 0x78, 0x56, 0x34, 0x12},
    };
    for (const auto& encoding : encodings) {
        std::vector<u8> whole = bytes_of(encoding);
        CpuMode mode = whole[0] == 0x66 && whole[1] == 0xC7 ? k16 : k64;
        for (usize cut = 0; cut < whole.size(); ++cut) {
            std::vector<u8> part(whole.begin(), whole.begin() + static_cast<long>(cut));
            auto result = decode_mmio_instruction(part.data(), part.size(), mode);
            INFO("cut at " << cut);
            REQUIRE_FALSE(result);
            CHECK(result.error() == MmioDecodeError::truncated);
        }
        auto result = decode_mmio_instruction(whole.data(), whole.size(), mode);
        REQUIRE(result);
        CHECK(result->length == whole.size());
    }
}

TEST_CASE("mmio.load_register_rules") {
    VcpuState state{};
    const u64 old = 0xFFFFFFFFFFFFFFFF;

    // movl (%rdi), %eax: a 32-bit destination clears bits 63:32.
    state.rax() = old;
    mmio_load_register(decode_ok({0x8B, 0x07}, k64), state, 0x12345678);
    CHECK(state.rax() == 0x12345678);
    // movw (%rdi), %ax and movb (%rdi), %al keep the rest.
    state.rax() = old;
    mmio_load_register(decode_ok({0x66, 0x8B, 0x07}, k64), state, 0xABCD1234);
    CHECK(state.rax() == 0xFFFFFFFFFFFF1234);
    state.rax() = old;
    mmio_load_register(decode_ok({0x8A, 0x07}, k64), state, 0x5A);
    CHECK(state.rax() == 0xFFFFFFFFFFFFFF5A);
    // movq (%rdi), %rax
    mmio_load_register(decode_ok({0x48, 0x8B, 0x07}, k64), state, 0x0123456789ABCDEF);
    CHECK(state.rax() == 0x0123456789ABCDEF);
    // movzbl / movsbl / movswq / movslq widen the device's bytes.
    state.rax() = old;
    mmio_load_register(decode_ok({0x0F, 0xB6, 0x07}, k64), state, 0x80);
    CHECK(state.rax() == 0x80);
    mmio_load_register(decode_ok({0x0F, 0xBE, 0x07}, k64), state, 0x80);
    CHECK(state.rax() == 0xFFFFFF80);
    mmio_load_register(decode_ok({0x48, 0x0F, 0xBF, 0x0F}, k64), state, 0x8001);
    CHECK(state.rcx() == 0xFFFFFFFFFFFF8001);
    mmio_load_register(decode_ok({0x48, 0x63, 0x07}, k64), state, 0x7FFFFFFF);
    CHECK(state.rax() == 0x7FFFFFFF);
    mmio_load_register(decode_ok({0x48, 0x63, 0x07}, k64), state, 0x80000000);
    CHECK(state.rax() == 0xFFFFFFFF80000000);
    // movzbw (%rdi), %ax: a 16-bit destination keeps bits 63:16.
    state.rax() = old;
    mmio_load_register(decode_ok({0x66, 0x0F, 0xB6, 0x07}, k64), state, 0x7F);
    CHECK(state.rax() == 0xFFFFFFFFFFFF007F);
    // Nothing but the destination changes.
    VcpuState before{};
    for (usize i = 0; i < static_cast<usize>(Gpr::count); ++i) before.gpr[i] = i * 0x1111;
    VcpuState after = before;
    mmio_load_register(decode_ok({0x45, 0x8B, 0x88, 0x00, 0x10, 0x00, 0x00}, k64), after, 0xCAFE);
    for (usize i = 0; i < static_cast<usize>(Gpr::count); ++i)
        CHECK(after.gpr[i] == (i == static_cast<usize>(Gpr::r9) ? 0xCAFE : before.gpr[i]));
}

TEST_CASE("mmio.store_values") {
    VcpuState state{};
    state.rax() = 0x1122334455667788;
    state.reg(Gpr::r15) = 0x8877665544332211;
    CHECK(mmio_store_value(decode_ok({0x88, 0x07}, k64), state) == 0x88);                            // %al
    CHECK(mmio_store_value(decode_ok({0x88, 0x27}, k64), state) == 0x77);                            // %ah
    CHECK(mmio_store_value(decode_ok({0x66, 0x89, 0x07}, k64), state) == 0x7788);                    // %ax
    CHECK(mmio_store_value(decode_ok({0x89, 0x07}, k64), state) == 0x55667788);                      // %eax
    CHECK(mmio_store_value(decode_ok({0x4D, 0x89, 0x3C, 0x24}, k64), state) == 0x8877665544332211);  // %r15
}

namespace {

// A guest whose code at CS:RIP is `code`, of which `readable` bytes can be read.
struct FakeCode {
    std::vector<u8> code;
    usize readable;
};
FakeCode* fake_code = nullptr;

GuestCode fake_guest_code(VcpuHandle, const VcpuState&, u8* scratch, usize size) {
    usize n = fake_code->readable < size ? fake_code->readable : size;
    for (usize i = 0; i < n; ++i) scratch[i] = fake_code->code[i];
    return {scratch, n};
}

}  // namespace

TEST_CASE("mmio.decode_at_rip") {
    VirtOps ops{};
    VcpuState state{};
    state.mode = k64;
    // A backend without the operation reads nothing.
    auto none = decode_mmio_at_rip(ops, nullptr, state);
    REQUIRE_FALSE(none);
    CHECK(none.error() == MmioDecodeError::unreadable);

    ops.guest_code = fake_guest_code;
    FakeCode code{{0x48, 0x89, 0x07, 0xF4, 0xF4, 0xF4, 0xF4, 0xF4, 0xF4, 0xF4, 0xF4, 0xF4, 0xF4, 0xF4, 0xF4}, 15};
    fake_code = &code;
    auto full = decode_mmio_at_rip(ops, nullptr, state);
    REQUIRE(full);
    CHECK(full->direction == kWrite);
    CHECK(full->size == 8);
    CHECK(full->length == 3);

    code.readable = 2;  // the instruction crosses into a page the guest does not map
    auto cut = decode_mmio_at_rip(ops, nullptr, state);
    REQUIRE_FALSE(cut);
    CHECK(cut.error() == MmioDecodeError::truncated);

    code.readable = 0;
    auto unreadable = decode_mmio_at_rip(ops, nullptr, state);
    REQUIRE_FALSE(unreadable);
    CHECK(unreadable.error() == MmioDecodeError::unreadable);
    fake_code = nullptr;
}
