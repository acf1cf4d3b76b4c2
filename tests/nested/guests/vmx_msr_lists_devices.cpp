// An L1 hypervisor on Intel VMX in a PC domain (nested.vmx_msr_lists_devices) whose MSR lists name
// an MSR a device of the domain serves: IA32_MTRR_DEF_TYPE, the PC's MSR file's, which the vCPU
// does not own. The VM-entry MSR-load list sets L2's value, L2 reads it (L1's MSR bitmap is all
// clear: L2's RDMSR and WRMSR reach the device) and writes another, the VM-exit MSR-store list
// keeps that one and the VM-exit MSR-load list gives L1 its own back. Then two entries fail at the
// entry that fails, as the SDM says: a value the device refuses (a reserved bit: #GP for WRMSR)
// and an MSR nothing serves.
#include "nestor/guest.hpp"
#include "nestor/vmx.hpp"

using namespace nestor::guest;
namespace vmx = nestor::guest::vmx;
namespace iv = nestor::intel_vmx;
using nestor::x86_regs::kMsrMtrrDefType;

// L2 reads IA32_MTRR_DEF_TYPE (0x2FF) into vmx_l2_def_type, writes 0xC06 and exits.
extern "C" char vmx_l2_mtrr[];
extern "C" u64 vmx_l2_def_type;
asm(R"(
    .pushsection .text
    .globl vmx_l2_mtrr
vmx_l2_mtrr:
    mov $0x2ff, %ecx
    rdmsr
    mov %eax, vmx_l2_def_type(%rip)
    mov %edx, vmx_l2_def_type+4(%rip)
    mov $0xc06, %eax
    xor %edx, %edx
    wrmsr
    vmcall
1:  jmp 1b
    .popsection
    .pushsection .data
    .globl vmx_l2_def_type
    .balign 8
vmx_l2_def_type:
    .quad 0
    .popsection
)");

namespace {

static_assert(kMsrMtrrDefType == 0x2FF, "vmx_l2_mtrr's RDMSR / WRMSR");
constexpr u64 kL1DefType = 0x806;     // MTRRs enabled, default type WB
constexpr u64 kEntryDefType = 0xC00;  // MTRRs and fixed MTRRs enabled, default type UC
constexpr u64 kL2DefType = 0xC06;     // what L2 writes
constexpr u64 kReservedBit = u64{1} << 12;
constexpr u32 kServedByNothing = 0x40000000;

alignas(4096) u8 vmxon_region[4096];
alignas(4096) u8 vmcs[4096];
alignas(4096) u8 msr_bitmap[4096];  // all clear: no MSR access of L2 exits to L1
alignas(16) u8 l2_stack[8192];
// Each list's entries: index (bits 31:0; 63:32 reserved), value.
alignas(16) u64 entry_load[4];
alignas(16) u64 exit_store[2];
alignas(16) u64 exit_load[2];

u64 address(const void* p) { return reinterpret_cast<u64>(p); }

u64 exit_reason() { return vmx::vmread(iv::field::exit_reason); }

void set_entry(u64* list, u64 i, u32 index, u64 value) {
    list[2 * i] = index;
    list[2 * i + 1] = value;
}

// One entry that must fail with the entry's number (from 1) as its qualification.
bool entry_fails(const char* what, u32 count, u64 expected_qualification) {
    vmx::vmwrite(iv::field::entry_msr_load_count, count);
    if (u64 failed = vmx::enter(false)) {
        println(what, ": vmresume failed, error ", vmx::vmread(iv::field::instruction_error), ", flags ", hex(failed));
        return false;
    }
    const u64 qualification = vmx::vmread(iv::field::exit_qualification);
    println(what, ": exit reason ", hex(exit_reason()), ", qualification ", qualification,
            ", l1's value kept: ", rdmsr(kMsrMtrrDefType) == kL1DefType ? "yes" : "no");
    return exit_reason() == (iv::exit_reason::msr_loading | iv::exit_reason::entry_failure) &&
           qualification == expected_qualification;
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    wrmsr(kMsrMtrrDefType, kL1DefType);
    if (!vmx::enter_vmx_operation(vmxon_region, vmcs)) return 1;
    vmx::write_64bit_controls(0, iv::primary::use_msr_bitmaps, 0);
    vmx::vmwrite(iv::field::msr_bitmap, address(msr_bitmap));
    vmx::write_own_host_state();
    vmx::write_own_guest_state(address(vmx_l2_mtrr), address(l2_stack + sizeof(l2_stack)));
    set_entry(entry_load, 0, kMsrMtrrDefType, kEntryDefType);
    set_entry(exit_store, 0, kMsrMtrrDefType, 0);
    set_entry(exit_load, 0, kMsrMtrrDefType, kL1DefType);
    vmx::vmwrite(iv::field::entry_msr_load_address, address(entry_load));
    vmx::vmwrite(iv::field::entry_msr_load_count, 1);
    vmx::vmwrite(iv::field::exit_msr_store_address, address(exit_store));
    vmx::vmwrite(iv::field::exit_msr_store_count, 1);
    vmx::vmwrite(iv::field::exit_msr_load_address, address(exit_load));
    vmx::vmwrite(iv::field::exit_msr_load_count, 1);
    if (u64 failed = vmx::enter(true)) {
        println("vmlaunch failed, error ", vmx::vmread(iv::field::instruction_error), ", flags ", hex(failed));
        return 1;
    }
    const u64 reason = exit_reason();
    const u64 l1_after = rdmsr(kMsrMtrrDefType);
    println("L2's exit reason ", reason);
    println("L2 read the entry list's value: ", vmx_l2_def_type == kEntryDefType ? "yes" : "no");
    println("the exit MSR-store list holds L2's write: ", exit_store[1] == kL2DefType ? "yes" : "no");
    println("L1's own back from the exit MSR-load list: ", l1_after == kL1DefType ? "yes" : "no");
    if (reason != iv::exit_reason::vmcall || vmx_l2_def_type != kEntryDefType || exit_store[1] != kL2DefType ||
        l1_after != kL1DefType) {
        println("L2 read ", hex(vmx_l2_def_type), ", stored ", hex(exit_store[1]), ", L1 reads ", hex(l1_after));
        return 1;
    }
    set_entry(entry_load, 1, kMsrMtrrDefType, kEntryDefType | kReservedBit);
    if (!entry_fails("a reserved bit in the second entry", 2, 2)) return 1;
    set_entry(entry_load, 0, kServedByNothing, 0);
    if (!entry_fails("an MSR nothing serves in the first entry", 1, 1)) return 1;
    println("done");
    return 0;
}
