// fuzz.nested_vmx: a random L1 on nested VMX. Random VMX instructions (operands, instruction
// information, registers), random L1 memory (its VMCS regions, MSR lists, bitmaps, EPT tables),
// random L1 CPU state, MSR accesses, L2 exits and interrupts go through the kernel's exit
// handler into the nested VMX component (its own fuzzer-instrumented copy) on a fake VMX
// backend, asserting the invariants L0's safety rests on whatever L1 does:
//  - nothing reads or writes out of bounds, nothing is undefined (ASan, UBSan);
//  - while L2 runs, vmcs02 holds L0's controls (pin, primary, exit, entry, the exception bitmap,
//    the CR0 / CR4 masks), L0's I/O bitmaps, the merged MSR bitmap, L2's VPID, and an EPT
//    pointer that is L0's EPT of L1, the empty root or a shadow root L0 allocated;
//  - every leaf of a shadow EPT maps a frame of L1's RAM;
//  - while the component counts on the control and host-state checks of the last entry
//    (L2State::entry_checks_hold), running them all on vmcs12 as it is now passes, but for what
//    a VM entry checks again anyway (recheck_controls, recheck_host_state);
//  - at the vCPU's end everything the component allocated is released.
//
// Input: 24-byte operations (see run_op) on an L1 that starts in VMX operation with a current
// VMCS (the first bytes pick how much of a runnable vmcs12 to keep).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "../../components/nested/vmx/vmcs12.hpp"
#include "fuzz_assert.hpp"
#include "../../components/nested/vmx/vmx_capabilities.hpp"
#include "../../components/nested/vmx/vmx_entry_checks.hpp"
#include "../../components/nested/vmx/vmx_l2.hpp"
#include "fake_vmx_hardware.hpp"
#include "l1_ram_host.hpp"
#include "nested_fixture.hpp"

using namespace nested_test;
namespace nv = nestor::nested::vmx;

namespace {

constexpr u64 kL1Bytes = L1RamHost::kL1Bytes;
constexpr u64 kHostFrameBase = L1RamHost::kHostFrameBase;
constexpr u64 kVmxon = 0x10000;
constexpr u64 kVmcs = 0x11000;
constexpr u64 kOperand = 0x20000;
constexpr u64 kCr0 = 0x80000031;  // PG, NE, ET, PE

// L1's memory (l1_ram_host.hpp) and L0's (the C heap, "physical" = the pointer), with what is
// live kept to catch leaks.
class FuzzHost final : public L1RamHost {
public:
    // A PC domain's: MTRR_DEF_TYPE (bits 9:8 and 63:12 refused) and the TSC deadline.
    FuzzHost() {
        device_msrs = {{0x2FF, 0}, {0x6E0, 0}};
        device_msr_reserved = ~u64{0xCFF};
    }
    ~FuzzHost() {
        for (void* p : live) std::free(p);
    }
    void* allocate(usize bytes, paddr& physical) override {
        void* p = std::aligned_alloc(4096, bytes);
        std::memset(p, 0, bytes);
        physical = reinterpret_cast<paddr>(p);
        live.push_back(p);
        return p;
    }
    void release(paddr physical, usize) override {
        for (auto it = live.begin(); it != live.end(); ++it)
            if (reinterpret_cast<paddr>(*it) == physical) {
                std::free(*it);
                live.erase(it);
                return;
            }
        FUZZ_ASSERT(!"released memory that was not allocated");
    }
    void* pointer(paddr physical) override { return reinterpret_cast<void*>(physical); }
    bool is_live(paddr physical) const {
        for (void* p : live)
            if (reinterpret_cast<paddr>(p) == physical) return true;
        return false;
    }
    void put(u64 gpa, u64 value) { (void)write(gpa, &value, sizeof(value)); }

    std::vector<void*> live;
};

struct L1 : Guest {
    FuzzHost& host;
    FakeVmxHardware hw;
    nested::NestedDomain domain;
    nested::NestedVcpu vcpu;
    bool stopped = false;

    explicit L1(FuzzHost& memory) : host(memory) {
        FUZZ_ASSERT(nested_domain_initialise(domain, intel_cpu(), kL1Bytes).ok());
        vcpu.host = &host;
        vcpu.hardware = static_cast<x86::vmx::NestedHardware*>(&hw);
        FUZZ_ASSERT(nested_vcpu_initialise(vcpu, domain).ok());
        env.nested = &vcpu;
        state.mode = CpuMode::long64;
        state.efer = x86_regs::kEferLme | x86_regs::kEferLma;
        state.cr0 = kCr0;
        state.rflags = 2;
        hw.vmcs[0][iv::field::guest_efer] = state.efer;
    }
    ~L1() {
        nested_vcpu_destroy(vcpu);
        nested_domain_teardown(domain);
    }
    void exit(const VmExit& e) {
        if (stopped) return;
        ExitOutcome o = run(e);
        stopped = o.stop;
    }
    void instruction(u32 reason, u64 operand_register) {
        VmExit e{};
        e.kind = ExitKind::virtualization_instruction;
        e.vendor_code = reason;
        e.instruction_length = 3;
        state.rax() = operand_register;
        exit(e);
    }
};

constexpr u32 kVmxReasons[] = {iv::exit_reason::vmclear, iv::exit_reason::vmlaunch, iv::exit_reason::vmptrld,
                               iv::exit_reason::vmptrst, iv::exit_reason::vmread,   iv::exit_reason::vmresume,
                               iv::exit_reason::vmwrite, iv::exit_reason::vmxoff,   iv::exit_reason::vmxon,
                               iv::exit_reason::invept,  iv::exit_reason::invvpid};
constexpr usize kVmxReasonCount = sizeof(kVmxReasons) / sizeof(kVmxReasons[0]);

// vmcs12 fields L1 writes with VMWRITE (operand in registers), picked by index.
constexpr u32 kFields[] = {iv::field::pin_based_controls,
                           iv::field::primary_controls,
                           iv::field::secondary_controls,
                           iv::field::exit_controls,
                           iv::field::entry_controls,
                           iv::field::exception_bitmap,
                           iv::field::cr0_guest_host_mask,
                           iv::field::cr4_guest_host_mask,
                           iv::field::cr0_read_shadow,
                           iv::field::cr4_read_shadow,
                           iv::field::ept_pointer,
                           iv::field::msr_bitmap,
                           iv::field::io_bitmap_a,
                           iv::field::entry_msr_load_count,
                           iv::field::entry_msr_load_address,
                           iv::field::exit_msr_store_count,
                           iv::field::exit_msr_store_address,
                           iv::field::exit_msr_load_count,
                           iv::field::exit_msr_load_address,
                           iv::field::vmcs_link_pointer,
                           iv::field::guest_cr0,
                           iv::field::guest_cr3,
                           iv::field::guest_cr4,
                           iv::field::guest_rip,
                           iv::field::guest_rflags,
                           iv::field::guest_interruptibility,
                           iv::field::guest_activity_state,
                           iv::field::guest_efer,
                           iv::field::entry_interruption_info,
                           iv::field::preemption_timer_value,
                           iv::field::vpid,
                           iv::field::host_rip,
                           iv::field::host_cr4,
                           iv::field::guest_cs_access_rights,
                           iv::field::guest_pdpte0,
                           iv::field::tsc_offset};
constexpr usize kFieldCount = sizeof(kFields) / sizeof(kFields[0]);

void vmwrite(L1& l1, u32 field, u64 value) {
    l1.state.rcx() = field;
    l1.state.rdx() = value;
    l1.hw.exit = {0, info_register(2, 1)};
    l1.instruction(iv::exit_reason::vmwrite, 0);
}

// L1 enters VMX operation with a current VMCS that (mostly) passes the entry checks: the
// capability MSRs' must-be-one controls, a 64-bit host and guest in L1's own mode.
void set_up(L1& l1, u8 how) {
    u32 revision = nested::vmx::kVmcs12Revision;
    (void)l1.host.write(kVmxon, &revision, 4);
    (void)l1.host.write(kVmcs, &revision, 4);
    l1.host.put(kOperand, kVmxon);
    l1.hw.exit = {0, info_memory()};
    l1.instruction(iv::exit_reason::vmxon, kOperand);
    l1.host.put(kOperand, kVmcs);
    l1.instruction(iv::exit_reason::vmptrld, kOperand);
    if (how & 1) return;  // a blank vmcs12
    const nested::vmx::Capabilities& caps = nested::vmx::capabilities();
    vmwrite(l1, iv::field::pin_based_controls, caps.true_pin.must_be_one);
    vmwrite(l1, iv::field::primary_controls,
            caps.true_primary.must_be_one | iv::primary::hlt_exiting | iv::primary::activate_secondary);
    vmwrite(l1, iv::field::secondary_controls, (how & 2) ? iv::secondary::enable_ept : 0);
    vmwrite(l1, iv::field::ept_pointer, 0x30000 | (3 << 3) | 6);
    vmwrite(l1, iv::field::exit_controls, caps.true_exit.must_be_one | iv::exit_ctl::host_address_space_size);
    vmwrite(l1, iv::field::entry_controls, caps.true_entry.must_be_one | iv::entry_ctl::ia32e_mode_guest);
    vmwrite(l1, iv::field::host_cr0, kCr0);
    vmwrite(l1, iv::field::host_cr4, kCr4);
    vmwrite(l1, iv::field::host_cr3, 0x1000);
    vmwrite(l1, iv::field::host_cs_selector, 0x8);
    vmwrite(l1, iv::field::host_ss_selector, 0x10);
    vmwrite(l1, iv::field::host_tr_selector, 0x18);
    vmwrite(l1, iv::field::host_rip, 0x7000);
    vmwrite(l1, iv::field::guest_cr0, kCr0);
    vmwrite(l1, iv::field::guest_cr4, kCr4);
    vmwrite(l1, iv::field::guest_cr3, 0x2000);
    vmwrite(l1, iv::field::guest_rflags, 2);
    vmwrite(l1, iv::field::guest_rip, 0x4000);
    vmwrite(l1, iv::field::vmcs_link_pointer, ~u64{0});
    if (how & 4) {  // an EPT of L1's own: PML4 -> PDPT -> PD of 2 MiB pages over L1's RAM
        l1.host.put(0x30000, 0x31000 | 7);
        l1.host.put(0x31000, 0x32000 | 7);
        l1.host.put(0x32000, 0x80 | 7 | (6 << 3));
    }
}

// The shadow EPT below `table` (level 4 .. 1): every present leaf maps a frame of L1's RAM.
void check_shadow_table(const FuzzHost& host, paddr table, int level) {
    FUZZ_ASSERT(host.is_live(table));
    const u64* entries = reinterpret_cast<const u64*>(table);
    for (int i = 0; i < 512; ++i) {
        u64 e = entries[i];
        if (!(e & 7)) continue;
        u64 address = e & 0x000FFFFFFFFFF000;
        bool leaf = level == 1 || (e & 0x80);
        if (leaf) {
            FUZZ_ASSERT(address >= kHostFrameBase && address < kHostFrameBase + kL1Bytes);
        } else {
            check_shadow_table(host, address, level - 1);
        }
    }
}

void check_vmcs02(L1& l1) {
    if (!l1.hw.running_l2()) return;
    auto& v02 = l1.hw.vmcs[1];
    const x86::vmx::L0Controls& l0 = l1.hw.controls;
    FUZZ_ASSERT((v02[iv::field::pin_based_controls] & l0.pin) == l0.pin);
    FUZZ_ASSERT((v02[iv::field::primary_controls] & l0.primary) == l0.primary);
    FUZZ_ASSERT((v02[iv::field::exit_controls] & l0.exit) == l0.exit);
    FUZZ_ASSERT((v02[iv::field::entry_controls] & l0.entry) == l0.entry);
    FUZZ_ASSERT((v02[iv::field::exception_bitmap] & l0.exception_bitmap) == l0.exception_bitmap);
    FUZZ_ASSERT((v02[iv::field::cr0_guest_host_mask] & l0.cr0_mask) == l0.cr0_mask);
    FUZZ_ASSERT((v02[iv::field::cr4_guest_host_mask] & l0.cr4_mask) == l0.cr4_mask);
    FUZZ_ASSERT(v02[iv::field::io_bitmap_a] == l0.io_bitmap_a && v02[iv::field::io_bitmap_b] == l0.io_bitmap_b);
    FUZZ_ASSERT(v02[iv::field::msr_bitmap] == l0.merged_msr_bitmap_pa);
    FUZZ_ASSERT(v02[iv::field::vpid] == l0.l2_vpid);
    u64 eptp = v02[iv::field::ept_pointer];
    if (eptp != l0.l1_eptp && eptp != l0.empty_eptp) check_shadow_table(l1.host, eptp & ~u64{0xFFF}, 4);
}

// The checks a VM entry skips while entry_checks_hold: every check on vmcs12 with what the entry
// checks again set to values that pass (the "IA-32e mode guest" and L1 mode they passed with, no
// event to inject, a HOST_RIP below 4 GiB, a VTPR above any threshold) must pass.
void check_entry_checks_hold(L1& l1) {
    const nested::VmxVcpu& vmx = nested::core(l1.vcpu).vmx;
    if (!vmx.cache || vmx.current_vmcs == ~u64{0}) return;
    const nv::L2State& l2 = reinterpret_cast<const nv::CacheBlock*>(vmx.cache)->l2;
    if (!l2.entry_checks_hold) return;
    nv::Vmcs12 v = *vmx.cache;
    nv::write_field(v, iv::field::entry_controls, l2.checked_entry_controls);
    nv::write_field(v, iv::field::entry_interruption_info, 0);
    nv::write_field(v, iv::field::host_rip, 0x1000);
    const u32 bits = l1.hw.physical_address_bits();
    FUZZ_ASSERT(nv::check_controls(v, bits, 0xFF) == nv::EntryCheck::ok);
    FUZZ_ASSERT(nv::check_host_state(v, bits, l2.checked_long_mode) == nv::EntryCheck::ok);
}

// An exit of L2 with `reason`, decoded as the backend would into the neutral kind.
void l2_exit(L1& l1, u64 a, u64 b, u64 c) {
    static constexpr u32 kReasons[] = {iv::exit_reason::external_interrupt,
                                       iv::exit_reason::triple_fault,
                                       iv::exit_reason::interrupt_window,
                                       iv::exit_reason::cpuid,
                                       iv::exit_reason::hlt,
                                       iv::exit_reason::vmcall,
                                       iv::exit_reason::cr_access,
                                       iv::exit_reason::io_instruction,
                                       iv::exit_reason::rdmsr,
                                       iv::exit_reason::wrmsr,
                                       iv::exit_reason::exception_or_nmi,
                                       iv::exit_reason::ept_violation,
                                       iv::exit_reason::ept_misconfiguration,
                                       iv::exit_reason::preemption_timer,
                                       iv::exit_reason::xsetbv,
                                       iv::exit_reason::vmptrld,
                                       iv::exit_reason::rdtsc,
                                       iv::exit_reason::invalid_guest_state};
    u32 reason = kReasons[(a >> 8) % (sizeof(kReasons) / sizeof(kReasons[0]))];
    if (reason == iv::exit_reason::invalid_guest_state) reason |= iv::exit_reason::entry_failure;
    VmExit e{};
    e.vendor_code = reason;
    e.instruction_length = static_cast<u8>(1 + (b % 15));
    switch (reason & 0xFFFF) {
    case iv::exit_reason::external_interrupt: e.kind = ExitKind::external_interrupt; break;
    case iv::exit_reason::triple_fault: e.kind = ExitKind::triple_fault; break;
    case iv::exit_reason::interrupt_window: e.kind = ExitKind::interrupt_window; break;
    case iv::exit_reason::cpuid: e.kind = ExitKind::cpuid; break;
    case iv::exit_reason::hlt: e.kind = ExitKind::hlt; break;
    case iv::exit_reason::vmcall: e.kind = ExitKind::hypercall; break;
    case iv::exit_reason::io_instruction:
        e.kind = ExitKind::io;
        e.io.port = static_cast<u16>(c);
        e.io.size = static_cast<u8>(1u << ((c >> 16) % 3));
        e.io.direction = (c >> 20) & 1 ? IoDirection::in : IoDirection::out;
        break;
    case iv::exit_reason::rdmsr:
    case iv::exit_reason::wrmsr:
        e.kind = reason == iv::exit_reason::rdmsr ? ExitKind::msr_read : ExitKind::msr_write;
        e.msr.index = static_cast<u32>(c);
        e.msr.value = b;
        break;
    case iv::exit_reason::exception_or_nmi:
        e.kind = ExitKind::exception;
        e.exception.vector = static_cast<u8>(c % 32);
        e.exception.has_error_code = (c >> 8) & 1;
        e.exception.error_code = static_cast<u32>(c >> 32);
        break;
    case iv::exit_reason::ept_violation:
    case iv::exit_reason::ept_misconfiguration:
        e.kind = ExitKind::nested_page_fault;
        e.npf.guest_physical = c & ((u64{1} << 39) - 1);
        e.npf.access = static_cast<MemoryAccess>((c >> 40) % 3);
        break;
    case iv::exit_reason::xsetbv: e.kind = ExitKind::xsetbv; break;
    case iv::exit_reason::vmptrld: e.kind = ExitKind::virtualization_instruction; break;
    case iv::exit_reason::invalid_guest_state: e.kind = ExitKind::invalid_state; break;
    default: e.kind = ExitKind::unknown; break;
    }
    l1.hw.l2_exits(reason, c, e.instruction_length);
    l1.hw.vmcs[1][iv::field::guest_physical_address] = e.npf.guest_physical;
    l1.state.rcx() = b;
    l1.exit(e);
}

// One operation: a % 8 says which; the rest of a, b and c are its operands.
void run_op(L1& l1, u64 a, u64 b, u64 c) {
    switch (a % 8) {
    case 0: l1.host.put((b % kL1Bytes) & ~u64{7}, c); break;  // L1 writes its memory
    case 1:                                                   // L1 runs a VMX instruction
        if (l1.hw.running_l2()) break;
        l1.hw.exit = {c, static_cast<u32>(b)};
        l1.state.gpr[(a >> 8) % 16] = c >> ((a >> 12) % 64);
        l1.instruction(kVmxReasons[(a >> 16) % kVmxReasonCount], (b >> 32) % (kL1Bytes + 0x2000));
        break;
    case 2:  // L1 VMWRITEs a field that matters, then enters
        if (l1.hw.running_l2()) break;
        vmwrite(l1, kFields[(a >> 8) % kFieldCount], c);
        l1.hw.exit = {0, info_memory()};
        l1.instruction((a >> 16) & 1 ? iv::exit_reason::vmresume : iv::exit_reason::vmlaunch, 0);
        break;
    case 3:
        if (l1.hw.running_l2()) l2_exit(l1, a, b, c);
        break;
    case 4: {  // an MSR access of L1's (or of L2's, routed)
        VmExit e{};
        e.kind = (a >> 8) & 1 ? ExitKind::msr_write : ExitKind::msr_read;
        e.vendor_code = (a >> 8) & 1 ? iv::exit_reason::wrmsr : iv::exit_reason::rdmsr;
        e.instruction_length = 2;
        e.msr.index = (a >> 9) & 1 ? static_cast<u32>(0x480 + b % 20) : static_cast<u32>(b);
        e.msr.value = c;
        l1.hw.l2_exits(e.vendor_code, 0, 2);
        l1.exit(e);
        break;
    }
    case 5:  // L1's CPU state changes (mode, CR4, RFLAGS, its segments' rights)
        l1.hw.l1_cr4 = (a >> 8) & 1 ? kCr4 : c;
        l1.state.rflags = 2 | (b & 0x240D5);
        l1.state.mode = static_cast<CpuMode>((a >> 12) % 4);
        l1.hw.segments[(a >> 16) % 6].access_rights = static_cast<u32>(c >> 32);
        l1.hw.blocking = (a >> 20) & 3;
        break;
    case 6:  // an INIT for the vCPU, or an interrupt or an NMI for L1 while L2 runs
        if (((a >> 1) & 3) == 0 && !l1.stopped) {
            const bool in_l2 = l1.hw.running_l2();
            const nested::Decision d = l1.vcpu.ops->init_signal(l1.vcpu, l1.state);
            // Only a VM exit from L2 takes an INIT (outside VMX operation the vCPU does).
            FUZZ_ASSERT(d.action != nested::Action::complete || (in_l2 && !l1.hw.running_l2()));
            FUZZ_ASSERT(d.action != nested::Action::resume || in_l2 == l1.hw.running_l2());
            l1.stopped = d.action == nested::Action::stop;
        } else if (l1.hw.running_l2() && !l1.stopped) {
            if (a & 1)
                (void)l1.vcpu.ops->route_nmi(l1.vcpu, l1.state);
            else
                (void)l1.vcpu.ops->route_interrupt(l1.vcpu, l1.state, static_cast<u8>(b));
        }
        break;
    default:  // 7: L0 unmaps part of L1 (the backend's mapping generation moves)
        ++l1.hw.generation;
        break;
    }
    check_vmcs02(l1);
    check_entry_checks_hold(l1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    FuzzHost host;
    {
        L1 l1(host);
        set_up(l1, data[0]);
        check_vmcs02(l1);
        for (size_t at = 1; at + 24 <= size && !l1.stopped; at += 24) {
            u64 a, b, c;
            std::memcpy(&a, data + at, 8);
            std::memcpy(&b, data + at + 8, 8);
            std::memcpy(&c, data + at + 16, 8);
            run_op(l1, a, b, c);
        }
    }
    FUZZ_ASSERT(host.live.empty());  // the domain's end releases everything, in whatever state
    return 0;
}
