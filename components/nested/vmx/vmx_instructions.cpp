#include "vmx_instructions.hpp"

#include "nestor/arch/apic_regs.hpp"
#include "nestor/arch/vmx_vmcs.hpp"
#include "vmx_capabilities.hpp"
#include "vmx_entry_checks.hpp"
#include "vmx_l2.hpp"

namespace nestor::nested::vmx {
namespace {

using namespace intel_vmx;
using namespace x86_regs;

constexpr u64 kPageBytes = 4096;
constexpr u64 kRflagsCf = u64{1} << 0;
constexpr u64 kRflagsZf = u64{1} << 6;
// CF, PF, AF, ZF, SF, OF: what VMsucceed clears and VMfail sets one of.
constexpr u64 kRflagsArithmetic =
    kRflagsCf | (u64{1} << 2) | (u64{1} << 4) | kRflagsZf | (u64{1} << 7) | (u64{1} << 11);

constexpr const char* kOperandNotRam =
    "nested VMX: a VMX instruction's memory operand (or a page table on its way) is not L1's RAM";
constexpr const char* kNoCacheMemory = "nested VMX: no L0 memory for the VMCS cache";

Result succeed() { return {Outcome::succeed, 0, nullptr}; }
Result fail_invalid() { return {Outcome::fail_invalid, 0, nullptr}; }
Result undefined_opcode() { return {Outcome::undefined_opcode, 0, nullptr}; }
Result general_protection() { return {Outcome::general_protection, 0, nullptr}; }
Result stop(const char* report) { return {Outcome::stop, 0, report}; }

bool has_current_vmcs(const VmxVcpu& vmx) { return vmx.current_vmcs != kNoCurrentVmcs; }

// VMfail(error): VMfailValid into the current VMCS when there is one, else VMfailInvalid.
Result vm_fail(InstructionContext& c, u32 error) {
    if (!has_current_vmcs(c.vmx)) return fail_invalid();
    write_field(*c.vmx.cache, field::instruction_error, error);
    return {Outcome::fail_valid, error, nullptr};
}

// The #UD conditions every VMX instruction shares: real or virtual-8086 mode, compatibility
// mode, and CR4.VMXE clear (VMXON) / outside VMX operation (the others; CR4.VMXE cannot be clear
// inside it on the CPU).
bool undefined_here(const InstructionContext& c, bool needs_vmx_operation) {
    const L1Cpu& cpu = c.cpu;
    if (!(cpu.cr0 & kCr0Pe) || cpu.mode == virt::CpuMode::real16 || (cpu.rflags & kRflagsVm)) return true;
    if ((cpu.efer & kEferLma) && !cpu.long_mode64()) return true;
    if (!(cpu.cr4 & kCr4Vmxe)) return true;
    return needs_vmx_operation && !c.vmx.vmxon;
}

// The checks of every instruction but VMXON before its own: #UD, then #GP for CPL > 0.
bool common_checks(const InstructionContext& c, Result& failed) {
    if (undefined_here(c, true)) {
        failed = undefined_opcode();
        return false;
    }
    if (c.cpu.cpl() > 0) {
        failed = general_protection();
        return false;
    }
    return true;
}

Result operand_fault(OperandFault fault) {
    return fault == OperandFault::stack ? Result{Outcome::stack_fault, 0, nullptr} : general_protection();
}

// Translates the page of `linear` for the operand; false with `failed` set on a page fault or
// memory that is not L1's RAM.
bool translate_operand(InstructionContext& c, u64 linear, bool write, u64& gpa, Result& failed) {
    x86::LinearTranslation t = c.hardware.translate(linear, c.cpu.efer, write);
    if (t.fault == x86::LinearFault::page_fault) {
        failed = Result{Outcome::page_fault, t.error_code, nullptr, linear};
        return false;
    }
    if (t.fault != x86::LinearFault::none) {
        failed = stop(kOperandNotRam);
        return false;
    }
    gpa = t.gpa;
    return true;
}

// Copies between L1's linear memory and `buffer`. Operands are at most 16 bytes, so at most two
// pages; both are translated through L1's paging, checked as the CPU checks a supervisor data
// access, before any byte moves, so a page fault leaves L1's memory as it was.
bool access_linear(InstructionContext& c, u64 linear, u8* buffer, usize bytes, bool write, Result& failed) {
    usize first = static_cast<usize>(kPageBytes - (linear & (kPageBytes - 1)));
    if (first > bytes) first = bytes;
    u64 gpa[2] = {};
    const usize chunk[2] = {first, bytes - first};
    if (!translate_operand(c, linear, write, gpa[0], failed)) return false;
    if (chunk[1] && !translate_operand(c, linear + first, write, gpa[1], failed)) return false;
    for (usize i = 0; i < 2 && chunk[i]; ++i) {
        bool moved = write ? c.host.write(gpa[i], buffer, chunk[i]) : c.host.read(gpa[i], buffer, chunk[i]);
        if (!moved) {
            failed = stop(kOperandNotRam);
            return false;
        }
        buffer += chunk[i];
    }
    return true;
}

// Reads (or writes) the instruction's memory operand of `bytes`; false with `failed` set when a
// check faults or the operand is not L1's RAM.
bool memory_access(InstructionContext& c, void* value, usize bytes, bool write, Result& failed) {
    InstructionInfo info = decode_information(c.cpu.exit.information);
    MemoryOperand operand = memory_operand(info, c.cpu, c.state, bytes, write);
    if (operand.fault != OperandFault::none) {
        failed = operand_fault(operand.fault);
        return false;
    }
    return access_linear(c, operand.linear, static_cast<u8*>(value), bytes, write, failed);
}

bool valid_vmcs_pointer(const InstructionContext& c, u64 pointer) {
    u32 bits = c.cpu.physical_address_bits;
    return !(pointer & (kPageBytes - 1)) && (bits >= 64 || (pointer >> bits) == 0);
}

// The revision identifier at `pointer`; memory that is not L1's RAM reads as all ones, as on the
// CPU, which never matches (bit 31).
u32 revision_at(InstructionContext& c, u64 pointer) {
    u32 revision = ~u32{0};
    if (!c.host.read(pointer, &revision, sizeof(revision))) return ~u32{0};
    return revision;
}

// Writes the cached current VMCS back to its region in L1's memory and forgets it. A region L0
// no longer maps to L1 is not written.
void release_current(VmxVcpu& vmx, Host& host) {
    if (vmx.current_vmcs == kNoCurrentVmcs) return;
    (void)host.write(vmx.current_vmcs, vmx.cache, sizeof(Vmcs12));
    vmx.current_vmcs = kNoCurrentVmcs;
}

u64 operand_mask(const L1Cpu& cpu) { return cpu.long_mode64() ? ~u64{0} : 0xFFFFFFFF; }

Result vmxon(InstructionContext& c) {
    if (undefined_here(c, false)) return undefined_opcode();
    if (c.vmx.vmxon) {
        if (c.cpu.cpl() > 0) return general_protection();
        return vm_fail(c, instruction_error::vmxon_in_root);
    }
    const Capabilities& caps = capabilities();
    u64 control = feature_control();
    if (c.cpu.cpl() > 0 || !fixed_bits_hold(c.cpu.cr0, caps.cr0_fixed0, caps.cr0_fixed1) ||
        !fixed_bits_hold(c.cpu.cr4, caps.cr4_fixed0, caps.cr4_fixed1) || !(control & feature_control::lock) ||
        !(control & feature_control::vmx_outside_smx))
        return general_protection();
    u64 pointer = 0;
    Result failed{};
    if (!memory_access(c, &pointer, sizeof(pointer), false, failed)) return failed;
    if (!valid_vmcs_pointer(c, pointer) || revision_at(c, pointer) != kVmcs12Revision) return fail_invalid();
    if (!c.vmx.cache) {
        paddr physical = 0;
        void* cache = c.host.allocate(kPageBytes, physical);
        if (!cache) return stop(kNoCacheMemory);
        c.vmx.cache = static_cast<Vmcs12*>(cache);
        c.vmx.cache_physical = physical;
    }
    c.vmx.vmxon = true;
    c.vmx.vmxon_pointer = pointer;
    c.hardware.pin_control_bits(caps.cr0_fixed0, caps.cr4_fixed0);
    c.vmx.current_vmcs = kNoCurrentVmcs;
    return succeed();
}

Result vmxoff(InstructionContext& c) {
    if (undefined_here(c, true)) return undefined_opcode();
    if (c.cpu.cpl() > 0) return general_protection();
    if (c.vmx.cache) complete_vmcs12(c.vmx, c.hardware);
    leave_vmx_operation(c.vmx, c.host);
    c.hardware.pin_control_bits(0, 0);
    return succeed();
}

Result vmclear(InstructionContext& c) {
    Result failed{};
    if (!common_checks(c, failed)) return failed;
    u64 pointer = 0;
    if (!memory_access(c, &pointer, sizeof(pointer), false, failed)) return failed;
    if (!valid_vmcs_pointer(c, pointer)) return vm_fail(c, instruction_error::vmclear_invalid_address);
    if (pointer == c.vmx.vmxon_pointer) return vm_fail(c, instruction_error::vmclear_vmxon_pointer);
    if (pointer == c.vmx.current_vmcs) {
        complete_vmcs12(c.vmx, c.hardware);
        c.vmx.cache->launch_state = kLaunchStateClear;
        release_current(c.vmx, c.host);
    } else {
        u32 clear = kLaunchStateClear;
        (void)c.host.write(pointer + kLaunchStateOffset, &clear, sizeof(clear));
    }
    return succeed();
}

Result vmptrld(InstructionContext& c) {
    Result failed{};
    if (!common_checks(c, failed)) return failed;
    u64 pointer = 0;
    if (!memory_access(c, &pointer, sizeof(pointer), false, failed)) return failed;
    if (!valid_vmcs_pointer(c, pointer)) return vm_fail(c, instruction_error::vmptrld_invalid);
    if (pointer == c.vmx.vmxon_pointer) return vm_fail(c, instruction_error::vmptrld_vmxon_pointer);
    if (revision_at(c, pointer) != kVmcs12Revision) return vm_fail(c, instruction_error::vmptrld_wrong_revision);
    if (pointer == c.vmx.current_vmcs) return succeed();
    if (has_current_vmcs(c.vmx)) complete_vmcs12(c.vmx, c.hardware);
    release_current(c.vmx, c.host);
    if (!c.host.read(pointer, c.vmx.cache, sizeof(Vmcs12))) return fail_invalid();
    c.vmx.current_vmcs = pointer;
    L2State& l2 = l2_state(c.vmx);
    l2.vmcs02_matches = false;  // vmcs02 was built from another vmcs12
    l2.entry_checks_hold = false;
    return succeed();
}

Result vmptrst(InstructionContext& c) {
    Result failed{};
    if (!common_checks(c, failed)) return failed;
    u64 pointer = c.vmx.current_vmcs;
    if (!memory_access(c, &pointer, sizeof(pointer), true, failed)) return failed;
    return succeed();
}

// The field a VMREAD / VMWRITE names in its second register (the low 32 bits outside 64-bit mode).
FieldAccess named_field(const InstructionContext& c, const InstructionInfo& info) {
    return find_field(c.state.gpr[info.reg2] & operand_mask(c.cpu));
}

Result vmread(InstructionContext& c) {
    Result failed{};
    if (!common_checks(c, failed)) return failed;
    if (!has_current_vmcs(c.vmx)) return fail_invalid();
    InstructionInfo info = decode_information(c.cpu.exit.information);
    FieldAccess access = named_field(c, info);
    if (!access.field) return vm_fail(c, instruction_error::unsupported_field);
    if (kept_in_vmcs02(*access.field)) complete_vmcs12(c.vmx, c.hardware);
    u64 value = read_field(*c.vmx.cache, access) & operand_mask(c.cpu);
    if (info.register_operand) {
        c.state.gpr[info.reg1] = value;
        return succeed();
    }
    usize bytes = c.cpu.long_mode64() ? 8 : 4;
    if (!memory_access(c, &value, bytes, true, failed)) return failed;
    return succeed();
}

Result vmwrite(InstructionContext& c) {
    Result failed{};
    if (!common_checks(c, failed)) return failed;
    if (!has_current_vmcs(c.vmx)) return fail_invalid();
    InstructionInfo info = decode_information(c.cpu.exit.information);
    u64 value = 0;
    if (info.register_operand)
        value = c.state.gpr[info.reg1];
    else if (!memory_access(c, &value, c.cpu.long_mode64() ? 8 : 4, false, failed))
        return failed;
    value &= operand_mask(c.cpu);
    FieldAccess access = named_field(c, info);
    if (!access.field) return vm_fail(c, instruction_error::unsupported_field);
    if (access.field->read_only) return vm_fail(c, instruction_error::vmwrite_read_only);  // no VMWRITE-to-any
    // Else a later copy of the kept fields from vmcs02 would undo the write.
    if (kept_in_vmcs02(*access.field)) complete_vmcs12(c.vmx, c.hardware);
    write_field(*c.vmx.cache, access, value);
    L2State& l2 = l2_state(c.vmx);
    l2.written.add(*access.field);
    if (changes_entry_checks(access.field->encoding)) l2.entry_checks_hold = false;
    return succeed();
}

// VTPR, the TPR of the virtual-APIC page, for the check of the TPR threshold. A page that is not
// L1's memory passes here: L0 cannot give it to L2 and stops the domain as it builds vmcs02.
u8 virtual_apic_vtpr(InstructionContext& c) {
    constexpr u8 kPasses = 0xFF;
    const Vmcs12& v = *c.vmx.cache;
    if (!(read_field(v, field::primary_controls) & primary::use_tpr_shadow)) return kPasses;
    u8 vtpr = 0;
    if (!c.host.read(read_field(v, field::virtual_apic_page_address) + apic_regs::kXapicTpr, &vtpr, 1)) return kPasses;
    return vtpr;
}

Result vmlaunch_or_vmresume(InstructionContext& c, bool launch) {
    Result failed{};
    if (!common_checks(c, failed)) return failed;
    if (!has_current_vmcs(c.vmx)) return fail_invalid();
    if (c.cpu.interruptibility & interruptibility::mov_ss)
        return vm_fail(c, instruction_error::entry_events_blocked_by_mov_ss);
    u32 launch_state = c.vmx.cache->launch_state;
    if (launch && launch_state != kLaunchStateClear) return vm_fail(c, instruction_error::vmlaunch_nonclear);
    if (!launch && launch_state != kLaunchStateLaunched) return vm_fail(c, instruction_error::vmresume_nonlaunched);
    const Vmcs12& v = *c.vmx.cache;
    const u32 bits = c.cpu.physical_address_bits;
    const bool long_mode = c.cpu.efer & kEferLma;
    L2State& l2 = l2_state(c.vmx);
    const u32 entry_controls = static_cast<u32>(read_field(v, field::entry_controls));
    const bool known =
        l2.entry_checks_hold && l2.checked_long_mode == long_mode && l2.checked_entry_controls == entry_controls;
    const u8 vtpr = virtual_apic_vtpr(c);
    const EntryCheck controls = known ? recheck_controls(v, bits, vtpr) : check_controls(v, bits, vtpr);
    if (controls != EntryCheck::ok) return vm_fail(c, instruction_error::entry_invalid_control);
    const EntryCheck host = known ? recheck_host_state(v) : check_host_state(v, bits, long_mode);
    if (host != EntryCheck::ok) return vm_fail(c, instruction_error::entry_invalid_host_state);
    l2.entry_checks_hold = true;
    l2.checked_long_mode = long_mode;
    l2.checked_entry_controls = entry_controls;
    return {Outcome::enter_l2, launch ? 1u : 0u, nullptr};
}

struct InvalidationDescriptor {
    u64 first;  // INVEPT: the EPTP; INVVPID: the VPID in bits 15:0
    u64 second;
};

// The INVEPT / INVVPID type, from the register the instruction information names (bits 31:28).
u64 invalidation_type(const InstructionContext& c) {
    return c.state.gpr[decode_information(c.cpu.exit.information).reg2] & operand_mask(c.cpu);
}

bool type_offered(u64 type, u32 first_type_bit) {
    return type < 4 && (capabilities().ept_vpid_cap >> (first_type_bit + type)) & 1;
}

constexpr u32 kInveptTypeBit0 = 24;   // EPT_VPID_CAP bit 24 + type: type 1 bit 25, type 2 bit 26
constexpr u32 kInvvpidTypeBit0 = 40;  // bit 40 + type: individual address, single, all, single-retaining-globals
constexpr u64 kInvvpidIndividualAddress = 0;
constexpr u64 kInvvpidSingleRetainingGlobals = 3;

Result invept(InstructionContext& c) {
    const Capabilities& caps = capabilities();
    if (!(caps.secondary.may_be_one & secondary::enable_ept) || !(caps.ept_vpid_cap & ept_vpid_cap::invept))
        return undefined_opcode();
    Result failed{};
    if (!common_checks(c, failed)) return failed;
    u64 type = invalidation_type(c);
    if (!type_offered(type, kInveptTypeBit0)) return vm_fail(c, instruction_error::invalid_invept_invvpid);
    InvalidationDescriptor d{};
    if (!memory_access(c, &d, sizeof(d), false, failed)) return failed;  // read even for all-context
    if (type == kInveptSingleContext && !valid_eptp(d.first, c.cpu.physical_address_bits))
        return vm_fail(c, instruction_error::invalid_invept_invvpid);
    // Every context: the shadow of L1's EPT starts over (each entry into L2 flushes its VPID).
    if (c.vmx.cache) shadow_ept_drop(l2_state(c.vmx).shadow, c.host);
    return succeed();
}

Result invvpid(InstructionContext& c) {
    const Capabilities& caps = capabilities();
    if (!(caps.secondary.may_be_one & secondary::enable_vpid) || !(caps.ept_vpid_cap & ept_vpid_cap::invvpid))
        return undefined_opcode();
    Result failed{};
    if (!common_checks(c, failed)) return failed;
    u64 type = invalidation_type(c);
    if (!type_offered(type, kInvvpidTypeBit0)) return vm_fail(c, instruction_error::invalid_invept_invvpid);
    InvalidationDescriptor d{};
    if (!memory_access(c, &d, sizeof(d), false, failed)) return failed;
    u64 vpid = d.first & 0xFFFF;
    if (d.first >> 16) return vm_fail(c, instruction_error::invalid_invept_invvpid);
    bool needs_vpid =
        type == kInvvpidSingleContext || type == kInvvpidIndividualAddress || type == kInvvpidSingleRetainingGlobals;
    if (needs_vpid && vpid == 0) return vm_fail(c, instruction_error::invalid_invept_invvpid);
    return succeed();  // every entry into L2 flushes L2's VPID: nothing of L1's VPIDs is cached
}

}  // namespace

Result execute(u64 reason, InstructionContext& c) {
    switch (reason) {
    case exit_reason::vmxon: return vmxon(c);
    case exit_reason::vmxoff: return vmxoff(c);
    case exit_reason::vmclear: return vmclear(c);
    case exit_reason::vmptrld: return vmptrld(c);
    case exit_reason::vmptrst: return vmptrst(c);
    case exit_reason::vmread: return vmread(c);
    case exit_reason::vmwrite: return vmwrite(c);
    case exit_reason::vmlaunch: return vmlaunch_or_vmresume(c, true);
    case exit_reason::vmresume: return vmlaunch_or_vmresume(c, false);
    case exit_reason::invept: return invept(c);
    case exit_reason::invvpid: return invvpid(c);
    default: return undefined_opcode();
    }
}

void apply_flags(const Result& result, virt::VcpuState& state) {
    u64 flags = state.rflags & ~kRflagsArithmetic;
    if (result.outcome == Outcome::fail_invalid) flags |= kRflagsCf;
    if (result.outcome == Outcome::fail_valid) flags |= kRflagsZf;
    state.rflags = flags;
}

void leave_vmx_operation(VmxVcpu& vmx, Host& host) {
    if (vmx.cache) {
        shadow_ept_drop(l2_state(vmx).shadow, host);
        release_current(vmx, host);
        host.release(vmx.cache_physical, kPageBytes);
    }
    vmx = VmxVcpu{false, 0, kNoCurrentVmcs, nullptr, 0};
}

}  // namespace nestor::nested::vmx
