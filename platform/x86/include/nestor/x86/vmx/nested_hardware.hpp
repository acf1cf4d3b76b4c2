// The contract between the VMX backend and the nested VMX component (components/nested/vmx): what
// the backend lends the component for a vCPU of a domain with nested virtualization, as the SVM
// backend lends nested SVM its NestedHardware (nestor/x86/svm/nested_hardware.hpp). The kernel
// only passes it along, opaque (InitialMode::nested_hardware, NestedVcpu::hardware).
//
// It serves L1's VMX instructions: what the exit recorded of the instruction (its qualification
// and instruction information), the part of L1's CPU an instruction is checked against (segments,
// CR4 as L1 sees it, interruptibility), L1's own paging for its memory operands, and the
// exceptions the kernel's Decision cannot name (#SS). And it runs L2: the backend keeps a second
// VMCS per vCPU (vmcs02), which the component fills from vmcs12 (in batches of fields) under L0's
// controls (L0Controls), and switches between vmcs01 (L1) and vmcs02 only when the component
// says so (enter_l2, enter_l1). The operations are virtual, so a NESTED_VIRT=MODULE component
// reaches them through this table, never a symbol. They act on the VMCSs of the vCPU whose exit
// is being handled.
#pragma once

#include "nestor/x86/guest_walk.hpp"
#include "nestor/lib/types.hpp"
#include "nestor/virt/vcpu_state.hpp"

namespace nestor::x86::vmx {

// One of L1's segment registers as the VMCS holds it (access rights in VMCS format: type in bits
// 3:0, S 4, DPL 6:5, P 7, D/B 14, unusable 16).
struct GuestSegment {
    u64 base;
    u32 limit;
    u32 access_rights;
};

// What a VMX-instruction exit recorded: the displacement of a memory operand (the exit
// qualification) and the VM-exit instruction-information field (SDM 28.2.5).
struct InstructionExit {
    u64 qualification;
    u32 information;
};

// What L0 needs in every vmcs02: its controls for L1, which the component ORs L1's into, and the
// resources the backend allocated for L2 with the vCPU (fixed for its life).
struct L0Controls {
    u32 pin;        // without the preemption timer (the backend's, per run)
    u32 primary;    // without the event windows (the backend's, per run)
    u32 secondary;  // EPT, VPID, unrestricted guest, WBINVD exiting, and what L1 may use as on the host
    u32 exit;
    u32 entry;  // without "IA-32e mode guest"
    u32 exception_bitmap;
    u64 cr0_fixed0, cr0_fixed1;  // the CPU's: what vmcs02's guest CR0 / CR4 must hold
    u64 cr4_fixed0, cr4_fixed1;
    u64 cr0_mask;  // the CR0 / CR4 bits L0 owns in every guest: L2's writes of them exit
    u64 cr4_mask;
    u64 l1_eptp;                     // L0's EPT of L1: L2's tables when L1 gives it no EPT of its own
    u64 empty_eptp;                  // a root that maps nothing (a shadow EPT L0 invalidated)
    paddr io_bitmap_a, io_bitmap_b;  // L0's: every port exits
    const u8* l0_msr_bitmap;         // L0's MSR bitmap for L1 (the MSRs the vCPU owns pass)
    u8* merged_msr_bitmap;           // vmcs02's, which the component fills (L0's OR L1's)
    paddr merged_msr_bitmap_pa;
    u16 l2_vpid;  // every L2 of the vCPU runs with it (never L1's, never 0)
    bool load_efer;
    bool save_efer;
};

enum class Level : u8 { l1, l2 };  // vmcs01 (L1 as L0 runs it) or vmcs02

// L1's TPR shadow for its L2 (vmcs12's "use TPR shadow"): L2's CR8 is VTPR in L1's virtual-APIC
// page, at guest-physical `page`, which L0 maps at `frame` (writable RAM of the domain), and a MOV
// to CR8 below `threshold` is L1's exit.
struct L2TprShadow {
    u64 page;
    paddr frame;
    u32 threshold;
};

// L1's control registers and EFER as the VM exit into it loads them (the vmcs12 host state), in
// L1's view: the backend forces the fixed bits behind its own masks, as for every guest.
struct L1ControlState {
    u64 cr0, cr3, cr4;
    u64 efer;
};

class NestedHardware {
public:
    virtual InstructionExit instruction_exit() = 0;
    // ES, CS, SS, DS, FS, GS for 0-5 (the instruction-information field's numbering).
    virtual GuestSegment segment(u32 index) = 0;
    // CR4 as L1 sees it: the read shadow for the bits L0 owns (VMXE is always set in the real one).
    virtual u64 cr4() = 0;
    virtual u64 interruptibility() = 0;  // the guest interruptibility state (STI, MOV SS blocking)
    // L1's linear `linear` through L1's own paging (with L1's `efer`) for a supervisor data access
    // (a write when `write`), checked as the CPU checks it (x86::guest_translate_data, with L1's
    // RFLAGS.AC and MAXPHYADDR): the guest-physical address or the page fault.
    virtual LinearTranslation translate(u64 linear, u64 efer, bool write) = 0;
    // Delivers `vector` with `error_code` to L1 at its next entry, on the instruction that exited.
    virtual void inject_exception(u8 vector, u32 error_code) = 0;
    // Delivers a page fault at `linear` (CR2) with `error_code` the same way.
    virtual void inject_page_fault(u64 linear, u32 error_code) = 0;
    virtual u32 physical_address_bits() = 0;  // MAXPHYADDR as L1's CPUID reports it
    // L1 in VMX operation: a MOV to CR0 or CR4 of L1's that would clear one of these bits (its
    // CR0 / CR4 fixed-0 bits, e.g. CR0.PE, NE, PG and CR4.VMXE) takes a #GP instead (SDM 24.8).
    // 0, 0 when L1 leaves VMX operation.
    virtual void pin_control_bits(u64 cr0, u64 cr4) = 0;

    // --- running L2 ---
    virtual const L0Controls& l0_controls() = 0;
    // VMREAD / VMWRITE of vmcs01 or vmcs02. A field the CPU does not have reads 0, a write of it
    // is ignored (write_ok() says false until the next enter_l2).
    virtual u64 read(Level level, u32 field) = 0;
    virtual void write(Level level, u32 field, u64 value) = 0;
    // The same for `count` fields in one call (a VM entry or exit copies dozens).
    virtual void read_fields(Level level, const u32* fields, u64* values, usize count) = 0;
    virtual void write_fields(Level level, const u32* fields, const u64* values, usize count) = 0;
    virtual bool write_ok() = 0;
    // vmcs02, whose controls and guest state the component wrote, runs from the next entry; the
    // backend adds its host state and the kernel's `state` becomes vmcs02's guest state. L2's
    // cached translations are dropped when `flush` (a new shadow, a new L2). With `tpr_shadow`
    // L2's CR8 is L1's TPR shadow for it, and L0's TPR threshold stays vmcs01's alone; without it
    // L2's CR8 is L1's own (vmcs02 shares vmcs01's virtual-APIC page and L0's threshold), as on a
    // CPU whose L1 lets L2 write CR8. If L0 unmaps L1's page while L2 runs, vmcs02 no longer
    // enters: L2's next entry fails (the component stops the domain).
    virtual void enter_l2(virt::VcpuState& state, bool flush, const L2TprShadow* tpr_shadow) = 0;
    // A VM exit into L1: vmcs01 runs from the next entry, with `control` (and the rest of L1's
    // state the component wrote into vmcs01) as its guest state, no event pending for L1; the
    // kernel's `state` becomes L1's.
    virtual void enter_l1(const L1ControlState& control, virt::VcpuState& state) = 0;
    // Back to L1 without a VM exit (a reset, the vCPU's end): vmcs01 runs from the next entry.
    virtual void reset_to_l1() = 0;
    // Writes the kernel's `state` (RIP, RSP, RFLAGS, EFER), newer than the running VMCS, into it.
    virtual void write_state(const virt::VcpuState& state) = 0;
    // While L2 runs on a shadow EPT: points vmcs02 at `eptp` and drops L2's cached translations.
    virtual void use_l2_eptp(u64 eptp) = 0;
    // The VM's mapping generation: every unmap changes it, before the memory can be reused.
    virtual u64 mapping_generation() = 0;

    // L1's VMX-preemption timer for L2: from the next entry of L2 until enter_l1 or reset_to_l1,
    // L2 exits with reason 52 (ExitKind::unknown, vendor_code 52: an exit only the component
    // judges) once it has run `ticks` TSC ticks (0: before its first instruction). The backend
    // runs vmcs02 with the smaller of that and its own time slice; a slice that ends first ends
    // as ExitKind::preemption and keeps the ticks left for L2's next run (the timer counts only
    // while L2 runs, as a CPU's counts only in VMX non-root operation).
    virtual void arm_l2_timer(u64 ticks) = 0;
    virtual void disarm_l2_timer() = 0;
    // The TSC ticks left before L1's timer expires: 0 once it has (or with none armed).
    virtual u64 l2_timer_left() = 0;
    // L2's next run exits (ExitKind::preemption, L0's) right after the entry, before L2's first
    // instruction but after the event the entry delivers (the VMX-preemption timer at 0, as KVM's
    // req_immediate_exit): an interrupt or NMI of L1's that waits for that event is L1's VM exit
    // then, not at L2's next exit of its own.
    virtual void request_immediate_exit() = 0;
    // An MSR of the VM-entry / VM-exit MSR lists, as L1's own WRMSR / RDMSR reaches it: only the
    // MSRs the vCPU owns that L0's MSR bitmap lets L1 access without an exit (the SYSCALL MSRs,
    // KERNEL_GS_BASE, TSC_AUX in the CPU; the SYSENTER MSRs in `level`'s VMCS, whose entry and
    // exit switch them). False, nothing written, for any other MSR and for a value the
    // instruction would refuse with #GP (not canonical, reserved bits set).
    virtual bool write_msr(Level level, u32 index, u64 value) = 0;
    virtual bool read_msr(Level level, u32 index, u64& value) = 0;

    bool running_l2() const { return running_l2_; }
    // Whether L0 unmapped part of the VM while vmcs02 ran on a shadow EPT (the backend has pointed
    // vmcs02 at the empty root meanwhile); answers true once.
    bool take_stale_shadow() {
        bool stale = shadow_stale_;
        shadow_stale_ = false;
        return stale;
    }

protected:
    NestedHardware() = default;
    ~NestedHardware() = default;
    NestedHardware(const NestedHardware&) = delete;
    NestedHardware& operator=(const NestedHardware&) = delete;

    bool running_l2_ = false;
    bool shadow_stale_ = false;
};

}  // namespace nestor::x86::vmx
