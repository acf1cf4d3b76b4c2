// An L1 hypervisor on Intel VMX that runs every VMX instruction Nestor emulates, the good cases
// and the failures, and prints what each did: #UD, VMfailInvalid, VMfailValid with the
// VM-instruction error it reads back with VMREAD, or VMsucceed (nested.vmx_l1_instructions).
// It runs no L2: VMLAUNCH and VMRESUME are tried only where their checks fail. Memory operands
// go through L1's paging as the CPU's do, Accessed and Dirty flags included.
#include "nestor/arch/vmx_vmcs.hpp"
#include "nestor/guest.hpp"

using namespace nestor::guest;
namespace iv = nestor::intel_vmx;

namespace {

constexpr u64 kRflagsCf = 1, kRflagsZf = u64{1} << 6;

alignas(4096) u8 vmxon_region[4096];
alignas(4096) u8 vmcs_a[4096];
alignas(4096) u8 vmcs_b[4096];

u64 address(const u8* region) { return reinterpret_cast<u64>(region); }
void set_revision(u8* region, u32 revision) { __builtin_memcpy(region, &revision, sizeof(revision)); }

// RFLAGS after each instruction: CF is VMfailInvalid, ZF VMfailValid, neither VMsucceed.
u64 vmxon(u64 pointer) {
    u64 flags;
    asm volatile("vmxon %1; pushfq; popq %0" : "=r"(flags) : "m"(pointer) : "cc", "memory");
    return flags;
}
u64 vmclear(u64 pointer) {
    u64 flags;
    asm volatile("vmclear %1; pushfq; popq %0" : "=r"(flags) : "m"(pointer) : "cc", "memory");
    return flags;
}
u64 vmptrld(u64 pointer) {
    u64 flags;
    asm volatile("vmptrld %1; pushfq; popq %0" : "=r"(flags) : "m"(pointer) : "cc", "memory");
    return flags;
}
u64 vmptrst(u64& pointer) {
    u64 flags;
    asm volatile("vmptrst %1; pushfq; popq %0" : "=r"(flags), "=m"(pointer) : : "cc", "memory");
    return flags;
}
u64 vmwrite(u64 field, u64 value) {
    u64 flags;
    asm volatile("vmwrite %2, %1; pushfq; popq %0" : "=r"(flags) : "r"(field), "r"(value) : "cc", "memory");
    return flags;
}
u64 vmread(u64 field, u64& value) {
    u64 flags;
    asm volatile("vmread %2, %1; pushfq; popq %0" : "=r"(flags), "=r"(value) : "r"(field) : "cc", "memory");
    return flags;
}
u64 vmread_to_memory(u64 field, u64& value) {
    u64 flags;
    asm volatile("vmread %2, %1; pushfq; popq %0" : "=r"(flags), "=m"(value) : "r"(field) : "cc", "memory");
    return flags;
}
u64 vmlaunch() {
    u64 flags;
    asm volatile("vmlaunch; pushfq; popq %0" : "=r"(flags) : : "cc", "memory");
    return flags;
}
u64 vmresume() {
    u64 flags;
    asm volatile("vmresume; pushfq; popq %0" : "=r"(flags) : : "cc", "memory");
    return flags;
}
struct alignas(16) Descriptor {
    u64 first, second;
};
u64 invept(u64 type, const Descriptor& d) {
    u64 flags;
    asm volatile("invept %1, %2; pushfq; popq %0" : "=r"(flags) : "m"(d), "r"(type) : "cc", "memory");
    return flags;
}
u64 invvpid(u64 type, const Descriptor& d) {
    u64 flags;
    asm volatile("invvpid %1, %2; pushfq; popq %0" : "=r"(flags) : "m"(d), "r"(type) : "cc", "memory");
    return flags;
}
u64 vmxoff() {
    u64 flags;
    asm volatile("vmxoff; pushfq; popq %0" : "=r"(flags) : : "cc", "memory");
    return flags;
}

// "VMsucceed", "VMfailInvalid" or "VMfailValid(N)" (N read back from the current VMCS).
void report(const char* what, u64 flags) {
    if (flags & kRflagsCf) {
        println(what, ": VMfailInvalid");
    } else if (flags & kRflagsZf) {
        u64 error = 0;
        vmread(iv::field::instruction_error, error);
        println(what, ": VMfailValid(", error, ")");
    } else {
        println(what, ": VMsucceed");
    }
}

template <typename F> void report_exception(const char* what, const F& fn) {
    ExceptionRecord e = try_run(fn);
    println(what, ": ", e.raised ? exception_name(e.vector) : "no exception");
}

void write_cr4(u64 value) { asm volatile("mov %0, %%cr4" ::"r"(value) : "memory"); }
void flush_tlb() { asm volatile("mov %%cr3, %%rax; mov %%rax, %%cr3" ::: "rax", "memory"); }

// Fresh tables at 512 GiB (PML4 entry 1) that map one page of L1's twice, every entry with its
// Accessed and Dirty flags clear. As the CPU's walk, Nestor's for a VMX instruction's memory
// operand sets the Accessed flag of each entry it uses and, for a write, the Dirty flag of the
// leaf: a VMPTRST through the first alias, a VMPTRLD (a read) through the second.
alignas(4096) u64 alias_pdpt[512];
alignas(4096) u64 alias_pd[512];
alignas(4096) u64 alias_pt[512];
alignas(4096) u64 alias_page[512];
constexpr u64 kAliasBase = u64{1} << 39;
constexpr u64 kPresentWritable = 3, kAccessed = 1 << 5, kDirty = 1 << 6, kAddress = 0x000FFFFFFFFFF000;

const char* yes_no(bool b) { return b ? "yes" : "no"; }

void operand_flags(u64 vmcs) {
    u64* pml4 = reinterpret_cast<u64*>(read_cr3() & kAddress);
    pml4[1] = reinterpret_cast<u64>(alias_pdpt) | kPresentWritable;
    alias_pdpt[0] = reinterpret_cast<u64>(alias_pd) | kPresentWritable;
    alias_pd[0] = reinterpret_cast<u64>(alias_pt) | kPresentWritable;
    alias_pt[0] = reinterpret_cast<u64>(alias_page) | kPresentWritable;
    alias_pt[1] = reinterpret_cast<u64>(alias_page) | kPresentWritable;
    flush_tlb();
    u64 flags = 0;
    asm volatile("vmptrst (%1); pushfq; popq %0" : "=r"(flags) : "r"(kAliasBase + 8) : "cc", "memory");
    int accessed = ((pml4[1] & kAccessed) != 0) + ((alias_pdpt[0] & kAccessed) != 0) +
                   ((alias_pd[0] & kAccessed) != 0) + ((alias_pt[0] & kAccessed) != 0);
    bool upper_dirty = ((pml4[1] | alias_pdpt[0] | alias_pd[0]) & kDirty) != 0;
    println("vmptrst through fresh tables: accessed ", accessed, " of 4, leaf dirty ", yes_no(alias_pt[0] & kDirty),
            ", others dirty ", yes_no(upper_dirty), ", stored ", yes_no(alias_page[1] == vmcs));
    asm volatile("vmptrld (%1); pushfq; popq %0" : "=r"(flags) : "r"(kAliasBase + 0x1000 + 8) : "cc", "memory");
    report("vmptrld through fresh tables", flags);
    println("its leaf: accessed ", yes_no(alias_pt[1] & kAccessed), ", dirty ", yes_no(alias_pt[1] & kDirty));
    pml4[1] = 0;
    flush_tlb();
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    u64 basic = rdmsr(iv::vmx_msr::vmx_basic);
    u32 revision = static_cast<u32>(basic & iv::basic::revision_mask);
    println("vmx basic: revision ", hex(revision), ", region ", (basic >> 32) & 0x1FFF, " bytes, true controls ",
            (basic >> 55) & 1);
    println("feature control: ", hex(rdmsr(iv::vmx_msr::feature_control)));
    set_revision(vmxon_region, revision);
    set_revision(vmcs_a, revision);
    set_revision(vmcs_b, revision);

    // CR4.VMXE clear: every VMX instruction is #UD.
    write_cr4(read_cr4() & ~kCr4Vmxe);
    report_exception("vmxon without cr4.vmxe", [] { vmxon(address(vmxon_region)); });
    report_exception("vmptrld without cr4.vmxe", [] { vmptrld(address(vmcs_a)); });
    write_cr4(read_cr4() | kCr4Vmxe);
    // Outside VMX operation: the other instructions are #UD too.
    report_exception("vmptrst outside vmx operation", [] {
        u64 p;
        vmptrst(p);
    });
    report_exception("vmxoff outside vmx operation", [] { vmxoff(); });

    set_revision(vmxon_region, revision ^ 1);
    report("vmxon with a wrong revision", vmxon(address(vmxon_region)));
    set_revision(vmxon_region, revision);
    report("vmxon unaligned", vmxon(address(vmxon_region) + 8));
    report("vmxon", vmxon(address(vmxon_region)));
    report("vmxon twice", vmxon(address(vmxon_region)));
    report("vmptrld of the vmxon region, no current vmcs", vmptrld(address(vmxon_region)));

    report("vmclear a", vmclear(address(vmcs_a)));
    report("vmptrld a", vmptrld(address(vmcs_a)));
    report("vmwrite guest rip", vmwrite(iv::field::guest_rip, 0x123456789abc));
    u64 value = 0;
    report("vmread guest rip", vmread(iv::field::guest_rip, value));
    println("guest rip read back: ", hex(value));
    value = 0;
    report("vmread guest rip to memory", vmread_to_memory(iv::field::guest_rip, value));
    println("guest rip read back from memory: ", hex(value));
    u64 current = 0;
    report("vmptrst", vmptrst(current));
    println("vmptrst is vmcs a: ", current == address(vmcs_a) ? "yes" : "no");
    operand_flags(address(vmcs_a));

    report("vmptrld of the vmxon region", vmptrld(address(vmxon_region)));
    report("vmptrld unaligned", vmptrld(address(vmcs_b) + 0x10));
    set_revision(vmcs_b, revision ^ 1);
    report("vmptrld with a wrong revision", vmptrld(address(vmcs_b)));
    set_revision(vmcs_b, revision);
    report("vmclear of the vmxon region", vmclear(address(vmxon_region)));
    report("vmclear unaligned", vmclear(address(vmcs_b) + 0x10));
    report("vmwrite of the exit reason", vmwrite(iv::field::exit_reason, 1));
    report("vmread of an unsupported field", vmread(0x2804, value));  // guest PAT: not offered
    report("vmxon in vmx operation", vmxon(address(vmxon_region)));
    report("vmresume of a clear vmcs", vmresume());
    report("vmlaunch with zero controls", vmlaunch());
    Descriptor d{0, 0};
    report("invept type 0", invept(0, d));
    report("invept all contexts", invept(iv::kInveptAllContext, d));
    d.first = 5;
    report("invvpid single context", invvpid(iv::kInvvpidSingleContext, d));
    d.first = 0;
    report("invvpid single context vpid 0", invvpid(iv::kInvvpidSingleContext, d));

    // VMCLEAR writes vmcs a back to its region: B becomes current, A is reloaded with its value.
    report("vmptrld b", vmptrld(address(vmcs_b)));
    report("vmclear a while b is current", vmclear(address(vmcs_a)));
    report("vmptrld a again", vmptrld(address(vmcs_a)));
    value = 0;
    vmread(iv::field::guest_rip, value);
    println("guest rip after the round trip: ", hex(value));

    report("vmxoff", vmxoff());
    report_exception("vmptrst after vmxoff", [] {
        u64 p;
        vmptrst(p);
    });
    println("done");
    return 0;
}
