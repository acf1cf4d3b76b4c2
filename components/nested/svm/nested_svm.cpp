// Nested SVM: what an L1 hypervisor on AMD sees of SVM, and running its L2. The L1 discovers SVM
// (CPUID), turns on EFER.SVME, sets up VM_HSAVE_PA and VM_CR, and runs L2 with VMRUN: the core
// (nested_vmrun.hpp) checks a snapshot of vmcb12 and builds vmcb02, which the SVM backend runs
// (nestor/x86/svm/nested_hardware.hpp); L2's exits are routed (exit_reflect.hpp) to L1 as a
// #VMEXIT, to L0's own rules, or to the shadow nested page table. Built only with AMD_SVM=ON.
#include "../nested_component.hpp"

#include "nestor/lib/placement_new.hpp"
#include "nestor/x86/svm/nested_hardware.hpp"
#include "nested_vmrun.hpp"

namespace nestor::nested {
namespace svm {

// The large per-vCPU state (the vmcb12 snapshot alone is 4 KiB), in L0 memory the kernel lends
// (Host::allocate), with the adapters the core works through.
class HostL1Memory final : public L1Memory {
public:
    explicit HostL1Memory(Host& host) : host_(host) {}
    bool read(u64 l1_physical, void* out, usize bytes) override { return host_.read(l1_physical, out, bytes); }
    bool write(u64 l1_physical, const void* in, usize bytes) override { return host_.write(l1_physical, in, bytes); }
    u8* window(u64 l1_physical, usize bytes, bool writable) override {
        return host_.window(l1_physical, bytes, writable);
    }
    L1Page page(u64 l1_physical) override {
        GuestPage p = host_.page(l1_physical);
        return L1Page{p.ram, p.host, p.writable, p.executable};
    }
    bool set_bits(u64 l1_physical, u64 bits) override { return host_.set_bits(l1_physical, bits); }

private:
    Host& host_;
};

// At most this many shadow tables per vCPU (reached: the shadow starts over).
constexpr u32 kMaxShadowTables = 512;
// L1's MAXPHYADDR as the checks see it; the CPU refuses anything wider it cannot address itself,
// which reaches L1 as VMEXIT_INVALID (Route::vmexit_invalid).
constexpr u8 kL1PhysicalBits = 48;

struct VcpuBlock {
    explicit VcpuBlock(Host& host) : memory(host), frames(host), nested(frames, kL1PhysicalBits, kMaxShadowTables) {}
    HostL1Memory memory;
    HostTableFrames frames;
    NestedSvmVcpu nested;
    VmcbSave vmload_buffer;  // a VMCB's save area in transit for VMLOAD / VMSAVE
};

namespace {

using x86::svm::NestedHardware;

constexpr u32 kMsrVmCr = 0xC0010114;
using amd_svm::kMsrVmHsavePa;
using arch::kEferSvme;
// VM_CR bits an L1 may set: DPD, R_INIT, DIS_A20M. LOCK and SVMDIS stay clear (SVM usable).
constexpr u64 kVmCrWritable = 0x7;
using arch::kPageMask;
constexpr u64 kBlockBytes = align_up(sizeof(VcpuBlock), kPageSize);

// The intercepted instructions' exit codes are the backend's VmExit::vendor_code.
namespace exit_code = arch::exit_code;

// CPUID as an L1 sees it: SVM revision 1 with nested paging and NRIP save (NRIPS is emulated: the
// kernel knows every exit's instruction length).
constexpr u32 kCpuidExt1EcxSvm = 1u << 2;
constexpr u32 kSvmRevision = 1;
constexpr u32 kL1Asids = 64;
constexpr u32 kSvmFeatureNp = 1u << 0;
constexpr u32 kSvmFeatureNrips = 1u << 3;

// What a vmcb12 may ask for: the EFER bits L1's CPU has, the CR4 bits its CPUID can offer (no
// VMXE, SMXE, PKE, CET or LA57).
constexpr u64 kL1Efer = arch::kEferSce | arch::kEferLme | arch::kEferLma | arch::kEferNxe | arch::kEferSvme;
constexpr u64 kL1Cr4 =
    arch::kCr4Baseline | arch::kCr4Fsgsbase | arch::kCr4Pcide | arch::kCr4Osxsave | arch::kCr4Smep | arch::kCr4Smap;

SvmVcpu& svm_of(NestedVcpu& vcpu) { return core(vcpu).svm; }
NestedHardware* hardware_of(NestedVcpu& vcpu) { return static_cast<NestedHardware*>(vcpu.hardware); }

Availability availability(const CpuFeatures& cpu) {
    if (!cpu.svm) return {false, "the CPU has no SVM"};
    if (!cpu.npt) return {false, "the CPU has no nested paging (NPT), which nested SVM needs"};
    return {true, ""};
}

// The block, allocated on first use; nullptr if the kernel has no memory (or lent no Host).
VcpuBlock* block_of(NestedVcpu& vcpu) {
    SvmVcpu& s = svm_of(vcpu);
    if (s.block || !vcpu.host) return s.block;
    paddr physical = 0;
    void* memory = vcpu.host->allocate(kBlockBytes, physical);
    if (!memory) return nullptr;
    s.block = new (memory) VcpuBlock(*vcpu.host);
    s.block_pa = physical;
    return s.block;
}

// Whether vmcb02 runs on the shadow NPT (or the empty root), not on L0's tables of L1.
bool on_shadow(const NestedHardware& hw) {
    return hw.resources().vmcb02->control.nested_cr3 != hw.resources().vmcb01->control.nested_cr3;
}

// Back to L1 without a #VMEXIT (reset, teardown): the backend runs vmcb01 again. The shadow's
// tables are freed, so vmcb02 moves to the empty root: no VMCB ever points at freed tables.
void leave_guest_mode(NestedVcpu& vcpu) {
    SvmVcpu& s = svm_of(vcpu);
    if (s.block) abandon_guest_mode(s.block->nested);
    if (NestedHardware* hw = hardware_of(vcpu)) {
        if (on_shadow(*hw)) hw->resources().vmcb02->control.nested_cr3 = hw->resources().empty_npt_root;
        hw->reset_to_l1();  // the kernel resets the state itself
    }
    vcpu.guest_exit = nullptr;
}

// Starts the shadow NPT over (its frames go back to the kernel) without leaving vmcb02 on them.
// While L2 runs on the shadow, vmcb02 gets a fresh root and L2's ASID is flushed; outside guest
// mode (the next VMRUN builds vmcb02 again and takes the flush request) or with no frame left (L2
// faults on it and shadow_fault tries again), the empty root.
void restart_shadow(NestedHardware& hw, VcpuBlock& block) {
    block.nested.shadow.drop_all();
    if (!on_shadow(hw)) return;  // vmcb02 runs on L0's tables of L1
    VmcbControl& c = hw.resources().vmcb02->control;
    paddr root = hw.running_l2() ? block.nested.shadow.root() : 0;
    c.nested_cr3 = root ? root : hw.resources().empty_npt_root;
    if (!hw.running_l2()) return;
    block.nested.shadow.take_flush_request();
    c.tlb_control = x86::svm::kTlbControlFlushAll;
}

void vcpu_reset(NestedVcpu& vcpu) {
    leave_guest_mode(vcpu);
    SvmVcpu& s = svm_of(vcpu);
    VcpuBlock* block = s.block;
    paddr block_pa = s.block_pa;
    s = SvmVcpu{false, false, true, 0, 0, block, block_pa};
}

void vcpu_destroy(NestedVcpu& vcpu) {
    leave_guest_mode(vcpu);
    SvmVcpu& s = svm_of(vcpu);
    if (s.block) {
        s.block->~VcpuBlock();  // frees the shadow tables
        if (vcpu.host) vcpu.host->release(s.block_pa, kBlockBytes);
    }
    s.block = nullptr;
    s.block_pa = 0;
}

// Long mode first: an L2 that exits to its L1 runs in it nearly always.
u64 next_rip(const virt::VmExit& exit, const virt::VcpuState& state) {
    if (exit.instruction_length == 0) return 0;
    u64 next = state.rip + exit.instruction_length;
    if (state.mode == virt::CpuMode::long64) [[likely]]
        return next;
    return state.mode == virt::CpuMode::protected32 ? next & 0xFFFFFFFF : next & 0xFFFF;
}

Decision reflect_exit(NestedVcpu& vcpu, const virt::VmExit& exit, virt::VcpuState& state);

// --- L1's SVM instructions ------------------------------------------------------------------

Decision vmrun(NestedVcpu& vcpu, const virt::VmExit& exit, virt::VcpuState& state) {
    NestedHardware* hw = hardware_of(vcpu);
    if (!hw) return stop("nested SVM: this backend cannot run an L2");
    if (exit.instruction_length == 0) return stop("nested SVM: the length of L1's VMRUN is unknown");
    VcpuBlock* block = block_of(vcpu);
    if (!block) return stop("nested SVM: no memory for L1's nested state");
    const x86::svm::NestedResources& r = hw->resources();
    Vmcb& vmcb01 = *r.vmcb01;
    hw->write_state(state);  // L1's registers into vmcb01, which L1 runs with
    const VmcbControl& l1c = vmcb01.control;
    L1Offer offer{true, kL1PhysicalBits, kL1Efer, kL1Cr4};
    // L0's controls for L2 are those it has for L1, without the CR4-write intercept (which keeps
    // CR4.VMXE / SMXE from L1 on QEMU): an L2's CR4 is L1's business.
    L0Controls l0{};
    l0.intercept_dr = l1c.intercept_dr;
    l0.intercept_exceptions = l1c.intercept_exceptions;
    l0.intercept_misc1 = l1c.intercept_misc1;
    l0.intercept_misc2 = l1c.intercept_misc2;
    l0.intercept_misc3 = l1c.intercept_misc3;
    l0.tsc_offset = l1c.tsc_offset;
    l0.l2_asid = r.l2_asid;
    l0.l1_asid = l1c.guest_asid;
    l0.iopm_pa = r.merged_iopm_pa;
    l0.msrpm_pa = r.merged_msrpm_pa;
    l0.l1_npt_root = l1c.nested_cr3;
    VmrunEnvironment env{.memory = block->memory,
                         .offer = offer,
                         .l0 = l0,
                         .l0_iopm = r.l0_iopm,
                         .l0_msrpm = r.l0_msrpm,
                         .merged_iopm = r.merged_iopm,
                         .merged_msrpm = r.merged_msrpm,
                         .mapping_generation = *r.mapping_generation};
    VmrunOutcome o = emulate_vmrun(block->nested, env, vmcb01.save, state.rax(), next_rip(exit, state), *r.vmcb02);
    switch (o.result) {
    case VmrunResult::entered:
        hw->enter_l2(state);             // vmcb02 was just built under this mapping generation (emulate_vmrun)
        vcpu.guest_exit = reflect_exit;  // the kernel sends L2's exits straight here
        svm_of(vcpu).gif = true;
        svm_of(vcpu).l2_svme = true;  // the checks let no vmcb12 without EFER.SVME through
        return resume();
    case VmrunResult::vmexit_invalid:  // L1 continues after its VMRUN, GIF clear
        hw->enter_l1(state);
        svm_of(vcpu).gif = false;
        return resume();
    case VmrunResult::inject_gp: return inject_gp();
    case VmrunResult::stop: break;
    }
    return stop("nested SVM: L0 could not build the VMCB for L2");
}

// VMLOAD / VMSAVE move the "VMLOAD state" between the VMCB at `address` in L1's memory and the
// virtual CPU's, vmcb01's save area, for L1 and L2 alike (the backend's world switch loads it into
// the CPU with its own VMLOAD before every entry, L2's included, and saves it after every exit).
Decision move_vmload_state(VcpuBlock& block, u64 address, bool load, VmcbSave& cpu) {
    constexpr u64 kSave = __builtin_offsetof(Vmcb, save);
    if (!is_l1_ram(block.memory, address, sizeof(Vmcb))) return inject_gp();
    VmcbSave& buffer = block.vmload_buffer;
    if (!block.memory.read(address + kSave, &buffer, sizeof(VmcbSave))) return inject_gp();
    if (load) {
        copy_vmload_state(buffer, cpu);
    } else {
        copy_vmload_state(cpu, buffer);
        if (!block.memory.write(address + kSave, &buffer, sizeof(VmcbSave))) return inject_gp();
    }
    return complete();
}

u64 address_operand(const virt::VcpuState& state) {
    u64 rax = state.reg(virt::Gpr::rax);
    return state.mode == virt::CpuMode::long64 ? rax : rax & 0xFFFFFFFF;
}

// L1's VMLOAD / VMSAVE: RAX is L1-physical.
Decision vmload_vmsave(NestedVcpu& vcpu, const virt::VmExit& exit, virt::VcpuState& state) {
    NestedHardware* hw = hardware_of(vcpu);
    VcpuBlock* block = block_of(vcpu);
    if (!hw || !block) return stop("nested SVM: no memory for L1's nested state");
    u64 address = address_operand(state);
    if (address & kPageMask) return inject_gp();
    return move_vmload_state(*block, address, exit.vendor_code == exit_code::vmload, hw->resources().vmcb01->save);
}

// L1's INVLPGA, or L2's that L1 does not intercept: the shadow starts over (shadow_npt.hpp).
Decision invlpga(NestedVcpu& vcpu) {
    NestedHardware* hw = hardware_of(vcpu);
    VcpuBlock* block = svm_of(vcpu).block;
    if (hw && block) restart_shadow(*hw, *block);
    return complete();
}

// EFER.SVME of the CPU the vCPU is now: L2's in guest mode, else L1's.
bool& efer_svme(NestedVcpu& vcpu) { return in_guest_mode(vcpu) ? svm_of(vcpu).l2_svme : svm_of(vcpu).svme; }

Decision virtualization_instruction(NestedVcpu& vcpu, const virt::VmExit& exit, virt::VcpuState& state) {
    // As on the CPU: SVM instructions #UD unless EFER.SVME is set, and outside protected mode.
    // SKINIT is not offered in CPUID, so it always #UDs.
    if (!efer_svme(vcpu) || state.mode == virt::CpuMode::real16 || exit.vendor_code == exit_code::skinit)
        return inject_ud();
    switch (exit.vendor_code) {
    case exit_code::vmrun: return vmrun(vcpu, exit, state);
    case exit_code::vmload:
    case exit_code::vmsave: return vmload_vmsave(vcpu, exit, state);
    case exit_code::stgi:
        svm_of(vcpu).gif = true;
        if (VcpuBlock* block = svm_of(vcpu).block) block->nested.gif = true;
        return complete();
    case exit_code::clgi:
        svm_of(vcpu).gif = false;
        if (VcpuBlock* block = svm_of(vcpu).block) block->nested.gif = false;
        return complete();
    case exit_code::invlpga: return invlpga(vcpu);
    default: break;
    }
    return stop("nested SVM: an unknown SVM instruction exit");
}

Decision msr_read(NestedVcpu& vcpu, u32 index, const virt::VcpuState& state) {
    switch (index) {
    case virt::kMsrEfer: return complete(state.efer | (efer_svme(vcpu) ? kEferSvme : 0));
    case kMsrVmCr: return complete(svm_of(vcpu).vm_cr);
    case kMsrVmHsavePa: return complete(svm_of(vcpu).hsave_pa);
    default: return not_nested();
    }
}

// EFER.SVME is the component's; the rest of EFER is the kernel's, as for every guest. A write
// the kernel would refuse changes nothing, SVME included. L2's write (L1's MSR permission map lets
// it through) is L2's EFER: L1's SVME stays as L1 set it.
Decision write_efer(NestedVcpu& vcpu, u64 value) {
    if ((value & ~(virt::kEferGuestWritable | virt::kEferLma | kEferSvme)) != 0) return inject_gp();
    efer_svme(vcpu) = (value & kEferSvme) != 0;
    return Decision{Action::forward, {value & ~kEferSvme}};
}

// The host save area must be a page of the L1's own memory.
Decision write_hsave_pa(NestedVcpu& vcpu, u64 value) {
    if ((value & kPageMask) != 0 || value >= core(vcpu).memory_bytes || core(vcpu).memory_bytes - value < kPageMask + 1)
        return inject_gp();
    svm_of(vcpu).hsave_pa = value;
    return complete();
}

Decision msr_write(NestedVcpu& vcpu, u32 index, u64 value, const virt::VcpuState&) {
    switch (index) {
    case virt::kMsrEfer: return write_efer(vcpu, value);
    case kMsrVmCr:
        if ((value & ~kVmCrWritable) != 0) return inject_gp();
        svm_of(vcpu).vm_cr = value;
        return complete();
    case kMsrVmHsavePa: return write_hsave_pa(vcpu, value);
    default: return not_nested();
    }
}

void cpuid(const NestedVcpu&, u32 leaf, u32, virt::CpuidValues& guest) {
    if (leaf == 0x80000001) guest.ecx |= kCpuidExt1EcxSvm;
    if (leaf == 0x8000000A) guest = {kSvmRevision, kL1Asids, 0, kSvmFeatureNp | kSvmFeatureNrips};
}

// --- while L2 runs ----------------------------------------------------------------------------

// A #VMEXIT into L1: vmcb12 gets the exit, L1 resumes after its VMRUN with GIF clear. vmcb02's
// save area must hold L2's newest state (vmexit_to_l1 puts it there). Inlined into each caller:
// it is on the reflected exit's path, where a call of its own would be a tenth of the #VMEXIT.
[[gnu::always_inline]] inline Decision vmexit_from_vmcb02(NestedVcpu& vcpu, NestedHardware& hw, VcpuBlock& block,
                                                          const VmexitInfo& info, virt::VcpuState& state) {
    const x86::svm::NestedResources& r = hw.resources();
    bool written = emulate_vmexit(block.nested, block.memory, *r.vmcb02, info, r.vmcb01->save, *r.mapping_generation);
    hw.enter_l1(state);
    vcpu.guest_exit = nullptr;
    svm_of(vcpu).gif = false;
    if (!written) return stop("nested SVM: vmcb12 is no longer in L1's memory");
    return resume();
}

// The same when `state` is L2's and newer than vmcb02: after an exit L0 handled for L2
// (exception_for_l2, route_interrupt), whose changes the backend writes only at its next entry.
[[gnu::always_inline]] inline Decision vmexit_to_l1(NestedVcpu& vcpu, NestedHardware& hw, VcpuBlock& block,
                                                    const VmexitInfo& info, virt::VcpuState& state) {
    hw.write_state(state);
    return vmexit_from_vmcb02(vcpu, hw, block, info, state);
}

// L0 unmapped part of L1 while L2 ran on the shadow (the backend noticed): start it over.
void refresh_shadow(NestedHardware& hw, VcpuBlock& block) {
    block.nested.shadow_generation = *hw.resources().mapping_generation;
    restart_shadow(hw, block);
}

Decision shadow_fault(NestedVcpu& vcpu, NestedHardware& hw, VcpuBlock& block, const L2Exit& e, virt::VcpuState& state) {
    ShadowResult r = block.nested.shadow.fault(block.memory, e.info_2, e.info_1);
    VmcbControl& vmcb02 = hw.resources().vmcb02->control;
    switch (r.outcome) {
    case ShadowOutcome::mapped:
        // A dropped-and-rebuilt root (budget spent) or an upgraded entry: flush L2's translations.
        vmcb02.nested_cr3 = block.nested.shadow.root();
        block.nested.shadow.take_flush_request();
        vmcb02.tlb_control = x86::svm::kTlbControlFlushAll;
        return resume();
    case ShadowOutcome::reflect_npf:
        return vmexit_to_l1(vcpu, hw, block,
                            VmexitInfo{x86::svm::exit_code::npf, r.exit_info_1, r.exit_info_2, e.exit_int_info, 0},
                            state);
    case ShadowOutcome::l0_fault: return stop("nested SVM: L1's nested page table sends L2 outside L1's memory");
    case ShadowOutcome::l1_table_not_ram: return stop("nested SVM: L1's nested page table is not in L1's memory");
    case ShadowOutcome::out_of_memory: break;
    }
    vmcb02.nested_cr3 = hw.resources().empty_npt_root;  // the shadow started over and got no root
    return stop("nested SVM: no memory for the shadow nested page table");
}

// L2's VMLOAD / VMSAVE that L1 does not intercept act on the CPU (vmcb01's VMLOAD state, which L2
// runs with). RAX is L2-physical:
// through L1's nested page table when L1 has one, as the CPU's virtualized VMLOAD / VMSAVE
// translate it (a refusal is L1's #NPF), else it is L1-physical. Never a host address.
Decision l2_vmload_vmsave(NestedVcpu& vcpu, NestedHardware& hw, VcpuBlock& block, const virt::VmExit& exit,
                          virt::VcpuState& state) {
    u64 address = address_operand(state);
    // Unaligned or beyond the physical address width: #GP, as on the CPU (never an alias below it).
    if ((address & kPageMask) || (address >> kL1PhysicalBits) != 0) return inject_gp();
    bool load = exit.vendor_code == exit_code::vmload;
    if (uses_nested_paging(block.nested.snapshot)) {
        u64 access = arch::npf_info::final_address | (load ? 0 : arch::npf_info::write);
        ShadowResult t = block.nested.shadow.translate(block.memory, address, access);
        if (t.outcome == ShadowOutcome::reflect_npf)
            return vmexit_to_l1(vcpu, hw, block,
                                VmexitInfo{x86::svm::exit_code::npf, t.exit_info_1, t.exit_info_2, 0, 0}, state);
        if (t.outcome != ShadowOutcome::mapped) return stop("nested SVM: L1's nested page table is not in L1's memory");
        address = t.l1_physical;
    }
    return move_vmload_state(block, address, load, hw.resources().vmcb01->save);
}

// Out of reflect_exit's line, so that the common paths carry none of its set-up.
[[gnu::cold, gnu::noinline]] Decision no_l2() { return stop("nested SVM: an L2 exit without an L2"); }

Decision reflect_exit(NestedVcpu& vcpu, const virt::VmExit& exit, virt::VcpuState& state) {
    NestedHardware* hw = hardware_of(vcpu);
    VcpuBlock* block = svm_of(vcpu).block;
    if (!hw || !block || !hw->running_l2()) [[unlikely]]
        return no_l2();
    if (hw->take_stale_shadow()) [[unlikely]]
        refresh_shadow(*hw, *block);
    const VmcbControl& c = hw->resources().vmcb02->control;
    // Called as the exit is reported: `state` is what the backend just read from vmcb02's save
    // area, so a #VMEXIT from here needs no write_state.
    // The common case, an instruction L1 intercepts: what route_l2_exit would answer, in one test.
    if (reflected_instruction(block->nested.reflected, c.exit_code))
        return vmexit_from_vmcb02(
            vcpu, *hw, *block,
            VmexitInfo{c.exit_code, c.exit_info_1, c.exit_info_2, c.exit_int_info, next_rip(exit, state)}, state);
    L2Exit e{c.exit_code, c.exit_info_1, c.exit_info_2, c.exit_int_info, static_cast<u32>(state.rcx())};
    switch (route_l2_exit(block->nested.snapshot, e, block->memory)) {
    case Route::reflect:
        return vmexit_from_vmcb02(
            vcpu, *hw, *block, VmexitInfo{e.code, e.info_1, e.info_2, e.exit_int_info, next_rip(exit, state)}, state);
    case Route::vmexit_invalid:
        return vmexit_from_vmcb02(vcpu, *hw, *block, VmexitInfo{x86::svm::exit_code::invalid, 0, 0, 0, 0}, state);
    case Route::shadow_npt: return shadow_fault(vcpu, *hw, *block, e, state);
    case Route::inject_ud: return inject_ud();
    case Route::reflect_as_ud:
        return vmexit_from_vmcb02(vcpu, *hw, *block, VmexitInfo{kExitUd, 0, 0, e.exit_int_info, 0}, state);
    case Route::emulate_for_l2:
        // L1 lets L2 run them: they act on the virtual CPU, as on the CPU, where they #UD while
        // L2's EFER.SVME is clear (a #UD that is L1's when it intercepts #UD).
        if (!svm_of(vcpu).l2_svme) [[unlikely]] {
            if (!l1_intercepts(block->nested.snapshot, kExitUd)) return inject_ud();
            return vmexit_from_vmcb02(vcpu, *hw, *block, VmexitInfo{kExitUd, 0, 0, e.exit_int_info, 0}, state);
        }
        if (e.code == exit_code::stgi || e.code == exit_code::clgi || e.code == exit_code::invlpga)
            return virtualization_instruction(vcpu, exit, state);
        return l2_vmload_vmsave(vcpu, *hw, *block, exit, state);
    case Route::l0:
    case Route::reinject_exception: break;  // the kernel's rule: #DB / #AC go back to L2
    }
    return not_nested();
}

// An exception the kernel raised for L2 (while handling an exit that was L0's) is L1's if L1
// intercepts the vector: exceptions injected through EVENTINJ are never checked against
// intercepts by the CPU, so L0 does it. EXITINFO1 is the error code, as for the CPU's own.
Decision exception_for_l2(NestedVcpu& vcpu, u8 vector, bool has_error_code, u32 error_code, virt::VcpuState& state) {
    NestedHardware* hw = hardware_of(vcpu);
    VcpuBlock* block = svm_of(vcpu).block;
    if (!hw || !block || !hw->running_l2()) return not_nested();
    u64 code = arch::exit_code::exception_base + vector;
    if (!l1_intercepts(block->nested.snapshot, code)) return not_nested();
    VmexitInfo info{code, has_error_code ? error_code : 0, 0, 0, 0};
    return vmexit_to_l1(vcpu, *hw, *block, info, state);
}

// vmcb02 still holds an event L1 injected (EVENTINJ.V: L2 has not been entered with it).
bool event_injected(NestedHardware& hw) { return hw.resources().vmcb02->control.event_inject & arch::event::valid; }

// The #VMEXIT that waits for that event comes right after its delivery, not at L2's next exit.
Decision after_the_event(NestedHardware& hw) {
    hw.request_immediate_exit();
    return resume();
}

// L1's virtual interrupt: GIF holds it back; while L2 runs, L1 either takes it as a
// #VMEXIT(INTR) (then, with GIF clear, once it sets GIF again) or lets L2 take it. SVM's
// #VMEXIT(INTR) never acknowledges the interrupt: L1 takes it itself once it sets GIF.
Decision route_interrupt(NestedVcpu& vcpu, virt::VcpuState& state, u8) {
    if (!svm_of(vcpu).gif) return resume();
    if (!in_guest_mode(vcpu)) return not_nested();
    NestedHardware* hw = hardware_of(vcpu);
    VcpuBlock* block = svm_of(vcpu).block;
    if (!hw || !block || !hw->running_l2()) return resume();
    switch (route_l1_interrupt(true, block->nested.snapshot, hw->resources().vmcb01->save.rflags, state.rflags)) {
    case L1Interrupt::blocked: return resume();
    // The kernel's rule for any guest with IF clear: its injection waits for the interrupt window
    // (L2's: the backend opens it in vmcb02), and the window's exit brings it here again.
    case L1Interrupt::l2_interrupts_off:
    case L1Interrupt::deliver_to_l2: return not_nested();
    case L1Interrupt::vmexit_intr: break;
    }
    // An event L1 injected that L2 has not been entered with yet goes first, as the CPU delivers
    // EVENTINJ before it recognises an interrupt: the #VMEXIT(INTR) comes right after that entry
    // (every #VMEXIT clears EVENTINJ.V). Exiting now instead, with the event handed back in
    // EXITINTINFO, never lets L2 run when L1 raises the interrupt itself to exit at once, as Linux
    // KVM does (a self-IPI) when it injects an interrupt with another one waiting.
    if (event_injected(*hw)) return after_the_event(*hw);
    // Between two runs of L2: the exit that got here was L0's and is done, so the state is L2's.
    // An event whose delivery that exit interrupted goes to L1 in EXITINTINFO, as on the CPU.
    VmexitInfo info{x86::svm::exit_code::intr, 0, 0, hw->resources().vmcb02->control.exit_int_info, 0};
    return vmexit_to_l1(vcpu, *hw, *block, info, state);
}

// L1's NMI: GIF holds it back; while L2 runs and L1 intercepts NMI it becomes a #VMEXIT(NMI),
// which leaves it pending: GIF is clear after it, and L1 takes the NMI once it sets GIF again
// (APM 15.21.2). Not intercepted, it is L2's, which the backend delivers once L1 runs again.
Decision route_nmi(NestedVcpu& vcpu, virt::VcpuState& state) {
    if (!svm_of(vcpu).gif) return resume();
    if (!in_guest_mode(vcpu)) return not_nested();
    NestedHardware* hw = hardware_of(vcpu);
    VcpuBlock* block = svm_of(vcpu).block;
    if (!hw || !block || !hw->running_l2()) return resume();
    if (!l1_intercepts(block->nested.snapshot, x86::svm::exit_code::nmi)) return not_nested();
    // As for an interrupt: an event L1 injected goes first, one whose delivery the last exit
    // interrupted goes to L1 in EXITINTINFO.
    if (event_injected(*hw)) return after_the_event(*hw);
    VmexitInfo info{x86::svm::exit_code::nmi, 0, 0, hw->resources().vmcb02->control.exit_int_info, 0};
    return vmexit_to_l1(vcpu, *hw, *block, info, state);
}

// An INIT for the vCPU: GIF holds it back; while L2 runs and L1 intercepts INIT it becomes a
// #VMEXIT(INIT), which leaves it pending, held by the GIF the #VMEXIT clears until L1 sets it
// again; else the vCPU takes it (as KVM's svm_apic_init_signal_blocked and nested events).
Decision init_signal(NestedVcpu& vcpu, virt::VcpuState& state) {
    if (!svm_of(vcpu).gif) return resume();
    if (!in_guest_mode(vcpu)) return not_nested();
    NestedHardware* hw = hardware_of(vcpu);
    VcpuBlock* block = svm_of(vcpu).block;
    if (!hw || !block || !hw->running_l2()) return resume();
    if (!l1_intercepts(block->nested.snapshot, x86::svm::exit_code::init)) return not_nested();
    if (event_injected(*hw)) return after_the_event(*hw);
    VmexitInfo info{x86::svm::exit_code::init, 0, 0, hw->resources().vmcb02->control.exit_int_info, 0};
    return vmexit_to_l1(vcpu, *hw, *block, info, state);
}

// An NPT fault the kernel judges: L1's own access, or L2's when L1 has no nested paging (L2's
// guest-physical addresses are then L1's). Shadow faults never get here (reflect_exit).
Decision nested_page_fault(NestedVcpu&, const virt::NestedPageFaultExit&) { return not_nested(); }

constexpr VendorPart kPart = {
    .name = "svm",
    .availability = availability,
    .vcpu_reset = vcpu_reset,
    .vcpu_destroy = vcpu_destroy,
    .virtualization_instruction = virtualization_instruction,
    .msr_read = msr_read,
    .msr_write = msr_write,
    .cpuid = cpuid,
    .reflect_exit = reflect_exit,
    .exception_for_l2 = exception_for_l2,
    .route_interrupt = route_interrupt,
    .route_nmi = route_nmi,
    .init_signal = init_signal,
    .nested_page_fault = nested_page_fault,
};

}  // namespace
}  // namespace svm

const VendorPart* svm_part() { return &svm::kPart; }

}  // namespace nestor::nested
